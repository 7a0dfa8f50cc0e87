"""Datasets on disk: where they are and whether they are complete."""
