"""`app_spec`: the part of a published definition the browser needs, where the page
targets (`webcomponents`, `react`) start from."""

from __future__ import annotations

from typing import Any

# Field keys the browser needs to render inputs and validate like the server does.
CLIENT_FIELD_KEYS = (
    "label",
    "type",
    "required",
    "values",
    "min",
    "max",
    "minLength",
    "maxLength",
    "pattern",
    "precision",
    "scale",
    "entity",
    "default",
    "computed",
    "description",
)


def app_spec(
    tenant: str, slug: str, name: str, number: int, content_hash: str, definition: dict[str, Any]
) -> dict[str, Any]:
    """Pages, reusable components and the entities' field specs of one app version."""
    entities = {}
    for ename, doc in definition.get("entities", {}).items():
        fields = {}
        for fname, spec in doc.get("fields", {}).items():
            field = {k: spec[k] for k in CLIENT_FIELD_KEYS if k in spec}
            if "computed" in field:
                field["computed"] = True  # the expression stays on the server
            fields[fname] = field
        entities[ename] = {
            "label": doc.get("label", ename),
            "fields": fields,
            "title_field": doc.get("title_field"),
        }
    pages = {
        n: {k: v for k, v in d.items() if k != "id"} for n, d in definition.get("pages", {}).items()
    }
    for page in pages.values():
        # JSON parsers in browsers read 2.0 as 2; publish typed these state keys as doubles.
        doubles = sorted(k for k, v in (page.get("state") or {}).items() if isinstance(v, float))
        if doubles:
            page["doubles"] = doubles
    components = {
        n: {k: v for k, v in d.items() if k != "id"}
        for n, d in definition.get("components", {}).items()
    }
    return {
        "tenant": tenant,
        "slug": slug,
        "name": name,
        "version": number,
        "hash": content_hash,
        "pages": pages,
        "components": components,
        "entities": entities,
    }
