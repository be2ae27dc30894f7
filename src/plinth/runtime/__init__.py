"""The metadata-driven data runtime: published entities become tables and validated APIs."""
