"""Type-checking `{{ }}` bindings at publish, with the CEL checker the runtime uses.

A binding sees `state` (the page's state), `params` (path and query parameters), `user` (the
signed-in user), `page`, and in events what the event carries: `row` (a table's row, typed as
its entity), `record` (a form's or an action's record), `error`, `task`, `outcome`, `tab`.
Inside a reusable component, `props` is typed from the component's props schema.

Each scope becomes protobuf message types in a descriptor pool (entities typed per field as
`plinth.runtime.types.cel_type` types them for computed fields), so cel-cpp's checker reports
`user.nmae` as an undefined field and `state.count + 'a'` as a bad overload, with positions.
The browser runtime converts records to the same types before evaluating (see runtime.js).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cel_expr_python import cel
from google.protobuf import descriptor_pb2, descriptor_pool, struct_pb2, timestamp_pb2

from plinth.runtime.types import cel_type

F = descriptor_pb2.FieldDescriptorProto
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")
_UNDEFINED_FIELD = re.compile(r"undefined field '([^']+)' not found in struct '([^']+)'")
_UNDECLARED = re.compile(r"undeclared reference to '([^']+)'")
VALUE = ".google.protobuf.Value"
STRUCT = "google.protobuf.Struct"
TIMESTAMP = ".google.protobuf.Timestamp"
# Columns every record has besides its declared fields (see the entity kind).
SYSTEM_FIELDS = {
    "id": "STRING",
    "created_at": "TIMESTAMP",
    "updated_at": "TIMESTAMP",
    "created_by": "STRING",
    "updated_by": "STRING",
    "version": "INT",
}
USER_FIELDS = {"id": "STRING", "name": "STRING", "kind": "STRING", "tenant": "STRING"}
_SCALARS = {
    "INT": F.TYPE_INT64,
    "DOUBLE": F.TYPE_DOUBLE,
    "BOOL": F.TYPE_BOOL,
    "STRING": F.TYPE_STRING,
}
# JSON Schema types of a prop → the CEL type a lone binding there must give.
PROP_TYPES = {
    "string": cel.Type.STRING,
    "integer": cel.Type.INT,
    "number": cel.Type.DOUBLE,
    "boolean": cel.Type.BOOL,
}


def _base_pool() -> Any:
    pool = descriptor_pool.DescriptorPool()
    for module in (struct_pb2, timestamp_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    return pool


def _add(message: Any, name: str, kind: str, number: int) -> None:
    """One field of CEL type `kind` (INT, DOUBLE, BOOL, STRING, TIMESTAMP, DYN)."""
    if kind in _SCALARS:
        message.field.add(name=name, number=number, type=_SCALARS[kind], label=F.LABEL_OPTIONAL)
    else:
        message.field.add(
            name=name,
            number=number,
            type=F.TYPE_MESSAGE,
            label=F.LABEL_OPTIONAL,
            type_name=TIMESTAMP if kind == "TIMESTAMP" else VALUE,
        )


def _json_kind(value: Any) -> str:
    """The CEL type of a JSON value, as the browser runtime hands it to CEL."""
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, str):
        return "STRING"
    return "DYN"


def _schema_kind(schema: Any) -> str:
    t = schema.get("type") if isinstance(schema, dict) else None
    return {"string": "STRING", "integer": "INT", "number": "DOUBLE", "boolean": "BOOL"}.get(
        t if isinstance(t, str) else "", "DYN"
    )


@dataclass
class Types:
    """The message types of one app definition's binding scopes, in one descriptor pool."""

    definition: dict[str, Any]
    state: dict[str, Any] | None = None  # the page's initial state; None inside a component
    props: dict[str, Any] | None = None  # a component's props JSON Schema
    tree: dict[str, Any] = field(default_factory=dict)  # where `set_state` may add keys
    pool: Any = field(default=None, init=False)
    labels: dict[str, str] = field(default_factory=dict, init=False)
    state_kinds: dict[str, str] = field(default_factory=dict, init=False)
    _envs: dict[tuple[tuple[str, str], ...], Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.pool = _base_pool()
        proto = descriptor_pb2.FileDescriptorProto(
            name="plinth_bindings.proto",
            package="plinth",
            syntax="proto3",
            dependency=["google/protobuf/struct.proto", "google/protobuf/timestamp.proto"],
        )
        user = proto.message_type.add(name="User")
        for i, (name, kind) in enumerate(USER_FIELDS.items(), 1):
            _add(user, name, kind, i)
        user.field.add(name="roles", number=10, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
        user.field.add(
            name="attrs",
            number=11,
            type=F.TYPE_MESSAGE,
            label=F.LABEL_OPTIONAL,
            type_name=".google.protobuf.Struct",
        )
        self.labels["plinth.User"] = "the user"
        page = proto.message_type.add(name="Page")
        _add(page, "name", "STRING", 1)
        _add(page, "title", "STRING", 2)
        self.labels["plinth.Page"] = "page"
        if self.state is not None and all(IDENT.match(k) for k in self.state):
            state = proto.message_type.add(name="State")
            self.state_kinds = {k: _json_kind(v) for k, v in self.state.items()}
            for key in self._set_state_keys():  # set_state may add keys; their type is open
                self.state_kinds.setdefault(key, "DYN")
            for i, (key, kind) in enumerate(sorted(self.state_kinds.items()), 1):
                _add(state, key, kind, i)
            self.labels["plinth.State"] = "the page state"
        props = (self.props or {}).get("properties")
        if isinstance(props, dict) and props and all(IDENT.match(k) for k in props):
            message = proto.message_type.add(name="Props")
            for i, (key, schema) in enumerate(sorted(props.items()), 1):
                _add(message, key, _schema_kind(schema), i)
            self.labels["plinth.Props"] = "the component's props"
        for name, doc in (self.definition.get("entities") or {}).items():
            fields = doc.get("fields") if isinstance(doc, dict) else None
            if not IDENT.match(name) or not isinstance(fields, dict):
                continue
            message = proto.message_type.add(name=f"entity_{name}")
            kinds = {**SYSTEM_FIELDS}
            for fname, spec in fields.items():
                if IDENT.match(fname) and isinstance(spec, dict) and "type" in spec:
                    kinds[fname] = cel_type(spec)
            for i, (fname, kind) in enumerate(kinds.items(), 1):
                _add(message, fname, kind, i)
            self.labels[f"plinth.entity_{name}"] = f"entity {name!r}"
        self.pool.Add(proto)

    def _set_state_keys(self) -> Iterator[str]:
        for node in self.tree.values():
            for actions in (node.get("events") or {}).values():
                for action in actions or []:
                    if (
                        action.get("type") == "set_state"
                        and isinstance(action.get("key"), str)
                        and IDENT.match(action["key"])
                    ):
                        yield action["key"]

    def entity(self, name: Any) -> str:
        """The CEL type name of an entity's records (dyn map when unknown)."""
        known = isinstance(name, str) and f"plinth.entity_{name}" in self.labels
        return f"plinth.entity_{name}" if known else STRUCT

    def variables(self, extra: dict[str, str]) -> dict[str, Any]:
        found = {
            "state": "plinth.State" if "plinth.State" in self.labels else STRUCT,
            "params": "map",
            "user": "plinth.User",
            "page": "plinth.Page",
        }
        if "plinth.Props" in self.labels:
            found["props"] = "plinth.Props"
        elif self.props is not None:
            found["props"] = STRUCT
        return {**found, **extra}

    def env(self, extra: dict[str, str]) -> Any:
        """A CEL environment declaring the scope (plus event extras), cached per shape."""
        names = self.variables(extra)
        key = tuple(sorted(names.items()))
        if key not in self._envs:
            declared = {}
            for name, kind in names.items():
                if kind == "map":
                    declared[name] = cel.Type.Map(cel.Type.STRING, cel.Type.STRING)
                elif hasattr(cel.Type, kind):
                    declared[name] = getattr(cel.Type, kind)
                else:
                    declared[name] = cel.Type(kind)
            self._envs[key] = cel.NewEnv(descriptor_pool=self.pool, variables=declared)
        return self._envs[key]

    def explain(self, text: str, names: list[str]) -> str:
        """The checker's message in the page author's words, with line and column."""
        found = _POSITION.search(text)
        where, message = (
            (f"line {found.group(1)}, column {found.group(2)}: ", found.group(3))
            if found
            else ("", text.splitlines()[0] if text else "invalid")
        )
        undefined = _UNDEFINED_FIELD.search(message)
        if undefined:
            owner = self.labels.get(undefined.group(2), undefined.group(2))
            desc = self.pool.FindMessageTypeByName(undefined.group(2))
            known = ", ".join(f.name for f in desc.fields)
            message = f"{owner} has no field {undefined.group(1)!r} (it has: {known})"
        undeclared = _UNDECLARED.search(message)
        if undeclared:
            unknown = undeclared.group(1).split(".")[0]
            message = f"unknown name {unknown!r}; here a binding can use {', '.join(sorted(names))}"
        return where + message


def type_name(t: Any) -> str:
    return str(t.name()).lower().replace("_", " ")


def check(types: Types, expr: str, extra: dict[str, str], want: Any | None = None) -> str | None:
    """Why a (parsed) binding does not type-check in its scope, or None when it does."""
    try:
        compiled = types.env(extra).compile(expr)
    except RuntimeError as exc:
        return types.explain(str(exc), list(types.variables(extra)))
    got = compiled.return_type()
    if (
        want is not None
        and got != cel.Type.DYN
        and got != want
        and not (want == cel.Type.DOUBLE and got == cel.Type.INT)
    ):
        return f"gives {type_name(got)}, but {type_name(want)} is expected here"
    return None
