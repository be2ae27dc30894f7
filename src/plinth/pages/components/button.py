"""`button`: runs its `click` actions (create/update a record, start a workflow, complete a
task, navigate, set page state)."""

from plinth.pages.components.registry import ComponentKind, register

BUTTON = register(
    ComponentKind(
        name="button",
        events=("click",),
        description="Runs its click actions.",
        props={
            "required": ["label"],
            "properties": {
                "label": {"type": "string", "minLength": 1, "maxLength": 80},
                "variant": {"enum": ["primary", "secondary", "danger"], "default": "primary"},
                "disabled": {"type": "string", "maxLength": 2000},  # a binding
            },
        },
    )
)
