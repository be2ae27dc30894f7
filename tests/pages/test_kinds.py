"""Page and component documents are refused at publish with the path of each fault."""

from __future__ import annotations

import copy

import pytest

from plinth.metadata.definition import validate
from plinth.pages import components
from tests.helpers import make_app, make_tenant


def paths(definition: dict) -> dict[str, str]:
    return {f.path: f.message for f in validate(definition)}


def test_the_demo_pages_are_valid(demo):
    assert validate(demo) == []
    assert set(demo["pages"]) == {"file_claim", "claims", "claim_detail", "task_inbox"}


def test_every_builtin_declares_its_props_as_json_schema():
    catalogue = components.catalogue()
    assert {
        "grid",
        "stack",
        "tabs",
        "text",
        "table",
        "form",
        "detail",
        "chart",
        "button",
        "task_inbox",
    } <= set(catalogue)
    assert catalogue["table"]["props"]["properties"]["page_size"]["maximum"] == 200
    assert catalogue["stack"]["container"] and not catalogue["form"]["container"]


def test_unknown_kinds_bad_props_and_bindings_have_paths(demo):
    bad = copy.deepcopy(demo)
    tree = bad["pages"]["claims"]["components"]
    tree["heading"]["kind"] = "marquee"
    tree["table"]["props"]["page_size"] = 5000
    tree["table"]["props"]["columns"].append("colour")
    tree["new_claim"]["events"]["click"][0]["to"] = "/claims/{{ row. }}"
    tree["by_country"]["props"]["entity"] = "claimz"
    found = paths(bad)
    assert "unknown component kind 'marquee'" in found["pages.claims.components.heading.kind"]
    assert "pages.claims.components.table.props.page_size" in found
    assert "no field 'colour'" in found["pages.claims.components.table.props.columns[6]"]
    assert "does not parse" in found["pages.claims.components.new_claim.events.click[0].to"]
    assert "no entity named 'claimz'" in found["pages.claims.components.by_country.props.entity"]


def test_tree_structure_is_checked(demo):
    bad = copy.deepcopy(demo)
    tree = bad["pages"]["claim_detail"]["components"]
    tree["back"]["parent"] = "detail"  # a detail view holds no children
    tree["ghost"] = {"kind": "text", "parent": "nowhere", "props": {"text": "x"}}
    tree["loop_a"] = {"kind": "stack", "parent": "loop_b"}
    tree["loop_b"] = {"kind": "stack", "parent": "loop_a"}
    tree["note"] = {"kind": "text", "parent": "root", "props": {"text": "x"}}
    tree["note"]["events"] = {"click": [{"type": "navigate", "to": "/"}]}
    bad["pages"]["file_claim"]["path"] = "/claims"
    found = paths(bad)
    assert "holds no children" in found["pages.claim_detail.components.back.parent"]
    assert "pages.claim_detail.components.ghost.parent" in found
    assert "cycle" in found["pages.claim_detail.components.loop_a.parent"]
    assert "emits no 'click'" in found["pages.claim_detail.components.note.events.click"]
    assert "already serves" in found["pages.file_claim.path"]


def test_schema_faults_come_before_semantic_ones(demo):
    bad = copy.deepcopy(demo)
    bad["pages"]["claims"]["components"]["table"]["events"]["row_click"][0] = {"type": "navigate"}
    found = paths(bad)
    assert any(p.startswith("pages.claims.components.table.events.row_click[0]") for p in found)


def test_components_are_reusable_and_typed(demo):
    good = copy.deepcopy(demo)
    good["components"] = {
        "banner": {
            "props": {
                "type": "object",
                "required": ["title"],
                "properties": {"title": {"type": "string"}},
            },
            "components": {
                "root": {
                    "kind": "text",
                    "parent": None,
                    "props": {"text": "{{ props.title }}", "variant": "h2"},
                }
            },
        }
    }
    tree = good["pages"]["claims"]["components"]
    tree["banner"] = {
        "kind": "component:banner",
        "parent": "root",
        "order": 0.5,
        "props": {"title": "Hello"},
    }
    tree["widget"] = {
        "kind": "plugin:maps/geo-map",
        "parent": "root",
        "order": 9,
        "props": {"zoom": 3},
    }
    assert validate(good) == []
    tree["banner"]["props"] = {"title": 3}
    tree["other"] = {"kind": "component:nope", "parent": "root"}
    found = paths(good)
    assert "pages.claims.components.banner.props.title" in found
    assert "no component named 'nope'" in found["pages.claims.components.other.kind"]


async def test_a_draft_with_a_broken_page_is_refused_with_paths(client, demo):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    bad = copy.deepcopy(demo)
    bad["pages"]["file_claim"]["components"]["form"]["props"]["fields"].append("colour")
    r = await client.put("/api/t/acme/apps/claims/draft", json=bad)
    assert r.status_code == 422
    errors = {e["path"] for e in r.json()["errors"]}
    assert errors == {"pages.file_claim.components.form.props.fields[7]"}
    r = await client.put("/api/t/acme/apps/claims/draft", json=demo)
    assert r.status_code == 200
    r = await client.post("/api/t/acme/apps/claims/publish", json={})
    assert r.status_code == 201, r.text


def test_bindings_are_type_checked_against_state_user_and_entities(demo):
    bad = copy.deepcopy(demo)
    claims = bad["pages"]["claims"]["components"]
    claims["heading"]["props"]["text"] = "Claims of {{ user.nmae }}"
    claims["table"]["events"]["row_click"][0]["to"] = "/claims/{{ row.colour }}"
    claims["new_claim"]["visible"] = "{{ user.name }}"  # must be true or false
    filing = bad["pages"]["file_claim"]
    filing["state"] = {"step": 1}
    filing["components"]["intro"]["props"]["text"] = "Step {{ state.step + 'a' }}"
    filing["components"]["form"]["events"]["success"].append(
        {"type": "set_state", "key": "step", "value": "{{ record.amount }}"}
    )
    filing["components"]["heading"]["props"]["text"] = "{{ row.id }}"  # no row outside a table
    found = paths(bad)
    base = "pages.claims.components"
    assert "the user has no field 'nmae'" in found[f"{base}.heading.props.text"]
    assert "entity 'claim' has no field 'colour'" in found[f"{base}.table.events.row_click[0].to"]
    assert "gives string, but bool is expected" in found[f"{base}.new_claim.visible"]
    assert (
        "no matching overload for '_+_' applied to '(int, string)'"
        in found["pages.file_claim.components.intro.props.text"]
    )
    assert (
        "gives double, but int is expected"
        in found["pages.file_claim.components.form.events.success[1].value"]
    )
    assert "unknown name 'row'" in found["pages.file_claim.components.heading.props.text"]
    assert {f.code for f in validate(bad)} == {"binding_type"}

    good = copy.deepcopy(demo)
    good["pages"]["claims"]["components"]["table"]["events"]["row_click"].insert(
        0,
        {
            "type": "set_state",
            "key": "big",
            "value": "{{ row.amount > 1000.0 && "
            "row.created_at > timestamp('2026-01-01T00:00:00Z') && 'DE' == user.attrs.country "
            "&& 'analyst' in user.roles }}",
        },
    )
    assert paths(good) == {}


def test_component_props_are_typed_inside_the_component(demo):
    bad = copy.deepcopy(demo)
    bad["components"] = {
        "banner": {
            "props": {
                "type": "object",
                "properties": {"title": {"type": "string"}, "count": {"type": "integer"}},
            },
            "components": {
                "root": {
                    "kind": "text",
                    "parent": None,
                    "props": {"text": "{{ props.title + props.count }}"},
                }
            },
        }
    }
    found = paths(bad)
    assert "applied to '(string, int)'" in found["components.banner.components.root.props.text"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_mistyped_binding_is_refused_with_its_path(client, demo):
    await make_tenant(client, "acme")
    await make_app(client, "acme", "claims")
    bad = copy.deepcopy(demo)
    bad["pages"]["claims"]["components"]["heading"]["props"]["text"] = "{{ user.nmae }}"
    r = await client.put("/api/t/acme/apps/claims/draft", json=bad)
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert error["path"] == "pages.claims.components.heading.props.text"
    assert error["code"] == "binding_type" and "no field 'nmae'" in error["message"]
