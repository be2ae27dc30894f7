"""The registry of document kinds. Each kind lives in one file beside its JSON Schema.

A kind names the section of the app definition it occupies (`entity` → `entities`), its
schema, the nested maps whose members carry stable ids, and semantic checks. Later layers add
kinds with `register` and add checks to existing kinds with `add_check`."""

from __future__ import annotations

# The built-ins, listed explicitly; each module registers its item(s).
from plinth.metadata.kinds import component as _component  # noqa: F401
from plinth.metadata.kinds import entity as _entity  # noqa: F401
from plinth.metadata.kinds import page as _page  # noqa: F401
from plinth.metadata.kinds.registry import (  # noqa: F401  (the package's face)
    Check,
    Kind,
    _kinds,
    add_check,
    all_kinds,
    by_name,
    by_section,
    load_schema,
    register,
    sections,
)
