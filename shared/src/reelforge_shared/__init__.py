"""Reelforge common library: what every service uses and nothing service-specific."""
