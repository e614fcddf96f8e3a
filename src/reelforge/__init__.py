"""Reelforge CLI and local mode: the whole system on one machine."""
