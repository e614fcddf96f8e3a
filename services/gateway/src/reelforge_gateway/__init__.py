"""Reelforge gateway: the jobs API, submission and job state."""
