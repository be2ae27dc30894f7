"""Identifiers and slugs shared by every layer."""

from __future__ import annotations

import base64
import os
import re
import secrets
import threading

from plinth.errors import BadRequest

SLUG = re.compile(r"^[a-z][a-z0-9-]{1,39}$")


class _Entropy:
    """Random bytes from the OS, read a page at a time: a create takes two ids, and a system
    call each was a visible share of its CPU. The same bytes `secrets` would hand out, in the
    same order; a forked process drops what it inherited (it would repeat its parent's ids)."""

    PAGE = 4096

    def __init__(self) -> None:
        self._drop()
        os.register_at_fork(after_in_child=self._drop)

    def _drop(self) -> None:
        # A new lock too: a fork while another thread held it leaves the child's copy held
        # by a thread the child does not have, and its first id would wait forever.
        self._lock = threading.Lock()  # ids are made on threads too: no bytes handed out twice
        self._page = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            at = self._at
            if at + n > len(self._page):
                self._page, at = os.urandom(self.PAGE), 0
            self._at = at + n
            return self._page[at : at + n]


_entropy = _Entropy()


def new_id() -> str:
    """A random, URL-safe, 22-character identifier (as `secrets.token_urlsafe(16)`)."""
    return base64.urlsafe_b64encode(_entropy.take(16)).rstrip(b"=").decode("ascii")


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
