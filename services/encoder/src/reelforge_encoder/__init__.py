"""Reelforge encoder: segment MP4s and the final film, through ffmpeg."""
