"""The guest side of Plinth plugins: write plain Python, this module speaks the WIT world.

Plugin authors import from here; `plinth plugin build` bundles it with their code. Values cross
the boundary as JSON text, so authors see dicts and lists only.
"""

import json

from componentize_py_types import Err
from wit_world.imports import clock as _clock
from wit_world.imports import http as _http
from wit_world.imports import kv as _kv
from wit_world.imports import log as _log
from wit_world.imports import records as _records

_ACTIONS: dict = {}
_BEFORE_WRITE: list = []


class Reject(Exception):
    """Raise from a before-write hook to refuse the record: faults are (path, message) pairs."""

    def __init__(self, *faults):
        super().__init__("rejected")
        self.faults = [{"path": p, "message": m} for p, m in faults]


class CapabilityError(Exception):
    """A host call was refused (not granted, not allowed, or failed)."""


def action(name):
    """Register `fn(input: dict) -> dict` as the action `name`."""

    def register(fn):
        _ACTIONS[name] = fn
        return fn

    return register


def before_write(fn):
    """Register `fn(app, entity, record) -> record` as the before-write hook."""
    _BEFORE_WRITE.append(fn)
    return fn


def _call(fn, *args):
    try:
        return fn(*args)
    except Err as err:
        raise CapabilityError(err.value) from None


def log(message, level="info"):
    """Write a line to the plugin's log."""
    _log.log(level, str(message))


def now():
    """The current time (ISO 8601, UTC)."""
    return _clock.now()


class records:
    """Records of the calling tenant, with the caller's permissions."""

    @staticmethod
    def get(app, entity, id):
        return json.loads(_call(_records.get, app, entity, id))

    @staticmethod
    def query(app, entity, filter=None, limit=50):
        return json.loads(_call(_records.query, app, entity, json.dumps(filter), limit))

    @staticmethod
    def create(app, entity, data):
        return json.loads(_call(_records.create, app, entity, json.dumps(data)))

    @staticmethod
    def update(app, entity, id, changes):
        return json.loads(_call(_records.update, app, entity, id, json.dumps(changes)))


class http:
    """Outbound HTTP, only to hosts the tenant granted."""

    @staticmethod
    def fetch(url, method="GET", body=None):
        """Returns {"status": int, "body": str, "json": any-or-None}."""
        text = "" if body is None else (body if isinstance(body, str) else json.dumps(body))
        return json.loads(_call(_http.fetch, method, url, text))


class kv:
    """A small key-value store of this plugin, per tenant."""

    @staticmethod
    def get(key):
        return json.loads(_call(_kv.get, key))

    @staticmethod
    def set(key, value):
        _call(_kv.set, key, json.dumps(value))


def _error(kind, message):
    return Err(json.dumps({"kind": kind, "message": str(message)[:2000]}))


class WitWorld:
    """The exports Plinth calls; dispatches to the author's registered functions."""

    def action(self, name, input):
        fn = _ACTIONS.get(name)
        if fn is None:
            raise _error("unknown_action", f"no action named {name!r}")
        try:
            return json.dumps(fn(json.loads(input)))
        except CapabilityError as exc:
            raise _error("capability", exc) from None
        except Exception as exc:
            raise _error("exception", f"{type(exc).__name__}: {exc}") from None

    def before_write(self, app, entity, record):
        current = json.loads(record)
        try:
            for fn in _BEFORE_WRITE:
                amended = fn(app, entity, current)
                if amended is not None:
                    current = amended
        except Reject as exc:
            raise Err(json.dumps({"kind": "rejected", "faults": exc.faults})) from None
        except CapabilityError as exc:
            raise _error("capability", exc) from None
        except Exception as exc:
            raise _error("exception", f"{type(exc).__name__}: {exc}") from None
        return json.dumps(current)
