"""Scoring images: decode workers, the scoring loop, what users hold (paths, PIL, arrays, tensors), losses and rewards."""
