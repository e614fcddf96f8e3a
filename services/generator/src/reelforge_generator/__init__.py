"""Reelforge generator: storyboard segments to frames, with diffusers."""
