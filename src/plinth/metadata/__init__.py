"""The metadata repository: apps, drafts, versions, and the publish story (publish.py)."""
