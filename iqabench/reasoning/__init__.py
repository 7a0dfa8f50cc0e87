"""Reasoning texts: exporting what generative models write about images, and the file format trainers read."""
