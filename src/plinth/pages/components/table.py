"""`table`: a paged query of an entity, with filter and sort."""

from plinth.pages.components.registry import BINDABLE_STRING, ComponentKind, register

TABLE = register(
    ComponentKind(
        name="table",
        events=("row_click",),
        description="Records of an entity: columns, a filter in the data API's filter language "
        "(`status eq 'open'`; may bind), sort and pages.",
        props={
            "required": ["entity"],
            "properties": {
                "entity": {"type": "string"},
                "columns": {"type": "array", "items": {"type": "string"}, "maxItems": 30},
                "filter": BINDABLE_STRING,
                "sort": {"type": "string", "pattern": "^-?[a-z_][a-z0-9_]*(,-?[a-z_][a-z0-9_]*)*$"},
                "page_size": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
                "refresh_seconds": {"type": "integer", "minimum": 0, "maximum": 86400},
                "empty_text": {"type": "string", "maxLength": 200},
            },
        },
    )
)
