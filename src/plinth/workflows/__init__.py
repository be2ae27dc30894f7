"""Durable workflows: the `workflow` document kind, the engine, workers and task inboxes."""
