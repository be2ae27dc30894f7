"""Identifiers and slugs shared by every layer."""

from __future__ import annotations

import re
import secrets

from plinth.errors import BadRequest

SLUG = re.compile(r"^[a-z][a-z0-9-]{1,39}$")


def new_id() -> str:
    """A random, URL-safe, 22-character identifier."""
    return secrets.token_urlsafe(16)


def short_id(prefix: str) -> str:
    """A short stable id for metadata elements (`fld_3kq9x2ab`)."""
    return f"{prefix}_{secrets.token_hex(4)}"


def check_slug(value: str, what: str, path: str | None = None) -> str:
    """Refuse a name that is not a slug: lower-case letters, digits and '-', 2 to 40 long."""
    if not isinstance(value, str) or not SLUG.match(value):
        raise BadRequest(
            f"{what} {value!r} is not a valid name: use 2-40 lower-case letters, digits or '-',"
            " starting with a letter",
            path=path or "slug",
        )
    return value
