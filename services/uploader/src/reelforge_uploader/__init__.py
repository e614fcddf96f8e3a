"""Reelforge uploader: delivery and completion events."""
