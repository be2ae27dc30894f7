"""Connector kinds: one file each (`http`, `webhook_out`, `webhook_in`, `sql`), registered by
name, each with its JSON Schema beside it. This module also registers the `connector` document
kind in the metadata kinds registry, whose check validates a document against its kind."""

from __future__ import annotations

# The built-ins, listed explicitly; each module registers its item(s).
from plinth.integration.connectors import http as _http  # noqa: F401
from plinth.integration.connectors import sql as _sql  # noqa: F401
from plinth.integration.connectors import webhook_in as _webhook_in  # noqa: F401
from plinth.integration.connectors import webhook_out as _webhook_out  # noqa: F401
from plinth.integration.connectors.registry import (  # noqa: F401  (the package's face)
    CONNECTOR,
    HERE,
    CallContext,
    ConnectorKind,
    _kinds,
    all_kinds,
    check_connector,
    get,
    load_schema,
    register,
    unregister,
)
