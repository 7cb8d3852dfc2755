"""The JSON Schemas the MCP door declares for each tool, as small as they can be while
saying exactly what the params accept and what the result holds.

pydantic's schemas carry a `title` on every model and property (made from the names,
so they add nothing), `default`s and `anyOf [X, {"type": "null"}]` for optional values,
and a `$defs` entry with a `$ref` for every nested model. Clients read all of it in
`tools/list`, and SDK clients validate every `structuredContent` against the output
schema on every call, where resolving `$ref`s and trying `anyOf` branches is the costly
part. So:

- titles go, from both schemas;
- output schemas describe the serialized result: every property is required (a result
  always carries every field) and defaults go (they describe inputs);
- in output schemas `anyOf [X, {"type": "null"}]` becomes X with "null" added to its
  `type` (and to its `enum`), and a `$defs` entry used only once is written where it is
  used; entries used more than once stay shared.

Input schemas keep their defaults and their `anyOf` shape: that is what models and
clients read to build arguments.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

Schema = dict[str, Any]

_SCHEMA_MAPS = ("properties", "$defs", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = (
    "items", "additionalProperties", "not", "contains", "propertyNames", "if", "then",
    "else", "unevaluatedItems", "unevaluatedProperties",
)  # fmt: skip
_DEFS = "#/$defs/"


class _Serialized(GenerateJsonSchema):
    """Every serialized field is present in the JSON, so every field is required."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        return not field.get("serialization_exclude")


def input_schema(model: type[BaseModel]) -> Schema:
    schema: Schema = _walk(model.model_json_schema(), _drop_title)
    return schema


def output_schema(model: type[BaseModel]) -> Schema:
    schema = model.model_json_schema(mode="serialization", schema_generator=_Serialized)
    schema = _walk(schema, _drop_title)
    schema = _walk(schema, _drop_default)
    schema = _inline_single_defs(schema)
    merged: Schema = _walk(schema, _merge_null)
    return merged


def _walk(schema: Any, change: Any) -> Any:
    """A copy of `schema` with `change` applied to every subschema, innermost first.
    Only subschema positions are visited: a property named "title" is not a keyword."""
    if not isinstance(schema, dict):
        return schema
    out: Schema = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _walk(sub, change) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_walk(sub, change) for sub in value]
        elif key in _SCHEMA_VALUES:
            out[key] = _walk(value, change)
        else:
            out[key] = value
    result: Schema = change(out)
    return result


def _drop_title(schema: Schema) -> Schema:
    schema.pop("title", None)
    return schema


def _drop_default(schema: Schema) -> Schema:
    schema.pop("default", None)
    return schema


def _merge_null(schema: Schema) -> Schema:
    """`{"anyOf": [X, {"type": "null"}]}` as X that also admits null, when X is a plain
    typed schema (not a `$ref`, no `const`)."""
    options = schema.get("anyOf")
    if not (isinstance(options, list) and len(options) == 2 and {"type": "null"} in options):
        return schema
    other = options[1] if options[0] == {"type": "null"} else options[0]
    kind = other.get("type")
    if not isinstance(kind, str) or kind == "null" or "$ref" in other or "const" in other:
        return schema
    merged: Schema = {**other, "type": [kind, "null"]}
    if "enum" in other:
        merged["enum"] = [*other["enum"], None]
    merged.update((k, v) for k, v in schema.items() if k != "anyOf")
    return merged


def _refs(schema: Any, found: list[str]) -> list[str]:
    """Every `$defs` name referenced in `schema`, once per reference."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS):
            found.append(ref[len(_DEFS) :])
        for value in schema.values():
            _refs(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _refs(value, found)
    return found


def _reaches(defs: Schema, start: str) -> set[str]:
    seen: set[str] = set()
    todo = _refs(defs[start], [])
    while todo:
        name = todo.pop()
        if name not in seen and name in defs:
            seen.add(name)
            todo.extend(_refs(defs[name], []))
    return seen


def _inline_single_defs(schema: Schema) -> Schema:
    """Write each `$defs` entry referenced exactly once (and not part of a cycle) where
    it is referenced; a field's own keywords (its description) win over the model's."""
    defs: Schema = dict(schema.get("$defs", {}))
    while True:
        counts: dict[str, int] = {}
        for name in _refs({k: v for k, v in schema.items() if k != "$defs"}, []) + _refs(defs, []):
            counts[name] = counts.get(name, 0) + 1
        single = [n for n in defs if counts.get(n) == 1 and n not in _reaches(defs, n)]
        if not single:
            break
        name = single[0]
        body = defs.pop(name)

        def place(node: Any, name: str = name, body: Schema = body) -> Any:
            if isinstance(node, dict):
                if node.get("$ref") == _DEFS + name:
                    rest = {k: v for k, v in node.items() if k != "$ref"}
                    return {**body, **rest}
                return {k: place(v) for k, v in node.items()}
            if isinstance(node, list):
                return [place(v) for v in node]
            return node

        schema = place({k: v for k, v in schema.items() if k != "$defs"})
        defs = place(defs)
    if defs:
        schema["$defs"] = defs
    else:
        schema.pop("$defs", None)
    return schema
