"""The server: composition only. It builds the platform and mounts each layer's router."""

from plinth.server.app import create_app
from plinth.server.platform import Platform

__all__ = ["Platform", "create_app"]
