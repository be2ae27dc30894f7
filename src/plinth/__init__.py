"""Plinth: an open-source, self-hosted, multi-tenant low-code platform."""

__version__ = "0.1.0"
