"""Alembic migrations of the platform's own tables, applied at start.

Each layer owns a branch (its own file(s) in `versions/`, `down_revision = "0001_foundation"`
and a `branch_labels` of its name), so layers evolve without editing each other's migrations;
`upgrade` applies all heads.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

HERE = Path(__file__).parent


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(HERE / "versions"))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection) -> None:
    """Upgrade to all heads on an open connection (inside the caller's transaction)."""
    command.upgrade(config(connection), "heads")
