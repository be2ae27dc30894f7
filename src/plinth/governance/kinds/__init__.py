"""Document kinds the governance layer adds to the metadata registry."""
