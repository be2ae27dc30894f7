"""`task_inbox`: the current user's open human tasks, with a way to complete them."""

from plinth.pages.components.registry import ComponentKind, register

TASK_INBOX = register(
    ComponentKind(
        name="task_inbox",
        events=("complete",),
        description="The signed-in user's open tasks; each can be opened and completed.",
        props={
            "properties": {
                "workflow": {"type": "string"},
                "page_size": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
                "outcomes": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
            }
        },
    )
)
