"""Metadata to targets: every compile target (`targets/`), one artifact cache (`cache.py`)."""
