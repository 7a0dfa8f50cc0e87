"""Scoring images: decode workers, the scoring loop, and the Python API over it (inputs, scorer, losses, rewards)."""
