"""The registry of built-in component kinds, one file each, registered by name.

A component kind declares its properties as JSON Schema, whether it holds children, the
events it emits, and the entity references in its properties (checked at publish). Plugins
provide further components as custom elements: kind `plugin:<package>/<element-name>`."""

from __future__ import annotations

# The built-ins, listed explicitly; each module registers its item(s).
from plinth.pages.components import (  # noqa: F401
    button,
    chart,
    detail,
    form,
    grid,
    stack,
    table,
    tabs,
    task_inbox,
    text,
)
from plinth.pages.components.registry import (  # noqa: F401  (the package's face)
    BINDABLE_STRING,
    PLUGIN_KIND,
    ComponentKind,
    _components,
    catalogue,
    get,
    is_plugin,
    names,
    register,
)
