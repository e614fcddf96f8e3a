"""Reelforge QA: gates and scores for segment videos."""
