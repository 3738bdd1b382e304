"""Checking AsyncAPI 3.0 documents against the official JSON Schema, vendored in
``tests/fixtures`` (see its README), with no network fetch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

__all__ = ["SCHEMA_FILE", "VALIDATOR", "all_refs", "assert_valid", "asyncapi_validator", "resolve"]

SCHEMA_FILE = Path(__file__).resolve().parent / "fixtures" / "asyncapi-3.0.0.schema.json"


def _no_fetch(uri: str) -> Resource[Any]:
    raise AssertionError(f"the AsyncAPI schema must load offline, yet {uri} was fetched")


def asyncapi_validator() -> jsonschema.Draft7Validator:
    """The official AsyncAPI 3.0.0 schema (vendored), every reference resolved within it."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    registry: Registry[Any] = Registry(retrieve=_no_fetch).with_resource(
        schema["$id"], DRAFT7.create_resource(schema)
    )
    return jsonschema.Draft7Validator(schema, registry=registry)


VALIDATOR = asyncapi_validator()


def assert_valid(document: dict[str, Any]) -> None:
    """``document`` fits the AsyncAPI 3.0 schema, every local ``$ref`` in it leads somewhere,
    and the operations refer to their channel's messages only (as the specification says)."""
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}"
        for error in VALIDATOR.iter_errors(document)
    ]
    assert not errors, "\n".join(errors)
    for ref in all_refs(document):
        resolve(document, ref)
    for name, operation in document.get("operations", {}).items():
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel + "/messages/"), name


def all_refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [ref for item in value.values() for ref in all_refs(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in all_refs(item)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref} leads nowhere"
        assert part in node, f"{ref} leads nowhere"
        node = node[part]
    return node
