"""`detail`: one record's fields, read-only."""

from plinth.pages.components import BINDABLE_STRING, ComponentKind, register

DETAIL = register(
    ComponentKind(
        name="detail",
        description="One record of an entity, read-only.",
        props={
            "required": ["entity", "record"],
            "properties": {
                "entity": {"type": "string"},
                "record": BINDABLE_STRING,
                "fields": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
            },
        },
    )
)
