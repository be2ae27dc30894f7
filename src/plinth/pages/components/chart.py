"""`chart`: records of an entity grouped by a field, counted or summed."""

from plinth.pages.components.registry import BINDABLE_STRING, ComponentKind, register

CHART = register(
    ComponentKind(
        name="chart",
        description="Records grouped by a field: count or sum of a number field.",
        props={
            "required": ["entity", "group_by"],
            "properties": {
                "entity": {"type": "string"},
                "group_by": {"type": "string"},
                "measure": {"enum": ["count", "sum"], "default": "count"},
                "value_field": {"type": "string"},
                "type": {"enum": ["bar", "pie"], "default": "bar"},
                "filter": BINDABLE_STRING,
                "refresh_seconds": {"type": "integer", "minimum": 0, "maximum": 86400},
            },
        },
    )
)
