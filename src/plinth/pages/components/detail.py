"""`detail`: one record's fields, read-only."""

from plinth.pages.components.registry import BINDABLE_STRING, ComponentKind, register

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
                "show_title": {
                    "type": "boolean",
                    "description": "a heading with the entity's label and the record's title "
                    "field (`Claim CLM-FR-0002`)",
                },
            },
        },
    )
)
