"""`tabs`: one child per tab, labelled in order."""

from plinth.pages.components.registry import ComponentKind, register

TABS = register(
    ComponentKind(
        name="tabs",
        container=True,
        events=("change",),
        description="One child per tab; `labels` names them in child order.",
        props={
            "required": ["labels"],
            "properties": {
                "labels": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 20,
                    "items": {"type": "string", "minLength": 1, "maxLength": 80},
                },
            },
        },
    )
)
