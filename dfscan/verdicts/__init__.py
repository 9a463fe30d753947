"""Turning a video score into a verdict a person can act on: the uncertain band, and its calibration from labels."""
