"""`form`: create or edit a record, validated from the entity's schema in the browser and
again by the data API on the server."""

from plinth.pages.components.registry import BINDABLE_STRING, ComponentKind, register

FORM = register(
    ComponentKind(
        name="form",
        events=("success", "error"),
        description="Create or edit a record of an entity.",
        props={
            "required": ["entity"],
            "properties": {
                "entity": {"type": "string"},
                "mode": {"enum": ["create", "edit"], "default": "create"},
                "record": BINDABLE_STRING,  # the id to edit (mode edit)
                "fields": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
                "submit_label": {"type": "string", "maxLength": 80},
            },
        },
    )
)
