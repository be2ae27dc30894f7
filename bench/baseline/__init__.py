"""Baselines the peer benches compare Plinth with; nothing here imports Plinth."""
