"""`text`: a heading or paragraph; `{{ }}` bindings are interpolated."""

from plinth.pages.components.registry import BINDABLE_STRING, ComponentKind, register

TEXT = register(
    ComponentKind(
        name="text",
        description="A heading or paragraph with `{{ }}` bindings.",
        props={
            "required": ["text"],
            "properties": {
                "text": BINDABLE_STRING,
                "variant": {"enum": ["h1", "h2", "h3", "p", "muted"], "default": "p"},
            },
        },
    )
)
