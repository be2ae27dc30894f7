"""`stack`: children one after the other, vertically or horizontally."""

from plinth.pages.components.registry import ComponentKind, register

STACK = register(
    ComponentKind(
        name="stack",
        container=True,
        description="Children stacked in one direction.",
        props={
            "properties": {
                "direction": {"enum": ["vertical", "horizontal"], "default": "vertical"},
                "gap": {"type": "string", "pattern": "^[0-9.]+(px|rem|em)$", "default": "1rem"},
            }
        },
    )
)
