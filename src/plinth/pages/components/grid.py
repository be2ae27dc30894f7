"""`grid`: children laid out in equal columns."""

from plinth.pages.components.registry import ComponentKind, register

GRID = register(
    ComponentKind(
        name="grid",
        container=True,
        description="Children in a grid of equal columns.",
        props={
            "properties": {
                "columns": {"type": "integer", "minimum": 1, "maximum": 12, "default": 2},
                "gap": {"type": "string", "pattern": "^[0-9.]+(px|rem|em)$", "default": "1rem"},
            }
        },
    )
)
