"""The shipped definitions are valid, and the stored JSON Schema is the one the models generate."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sagas import SagaDefinition, load_definition
from sagas.definitions import json_schema, json_schema_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "definitions" / "saga.schema.json"
SHIPPED = sorted((ROOT / "definitions").glob("*.yaml"))
DURATION_FIELDS = {"deadline", "timeout", "delay", "initial_delay", "max_delay"}


def test_the_order_and_travel_sagas_are_shipped() -> None:
    assert {"order_fulfillment.yaml", "travel_booking.yaml"} <= {file.name for file in SHIPPED}


@pytest.mark.parametrize("file", SHIPPED, ids=lambda file: file.name)
def test_a_shipped_definition_passes_every_rule(file: Path) -> None:
    definition = load_definition(file)
    assert definition.name == file.stem


@pytest.mark.parametrize("file", SHIPPED, ids=lambda file: file.name)
def test_a_shipped_definition_fits_the_models_the_schema_is_made_from(file: Path) -> None:
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    assert SagaDefinition.model_validate(raw) == load_definition(file)


@pytest.mark.parametrize("file", SHIPPED, ids=lambda file: file.name)
def test_a_shipped_definition_points_editors_at_the_schema(file: Path) -> None:
    first_line = file.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=saga.schema.json"


def test_the_stored_schema_is_the_generated_one() -> None:
    stored = SCHEMA_FILE.read_text(encoding="utf-8")
    assert stored == json_schema_text(), (
        "definitions/saga.schema.json is stale: run `make schema` and commit the result"
    )


def test_the_schema_is_json_schema_2020_12_and_refuses_unknown_fields() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["required"]) == {"name", "trigger", "correlation", "steps"}
    objects = [schema, *schema["$defs"].values()]
    assert all(part["additionalProperties"] is False for part in objects if "properties" in part)


def duration_values(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in DURATION_FIELDS:
                yield key, value
            yield from duration_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from duration_values(item)


def patterns(node: Any) -> Iterator[str]:
    """Every ``pattern`` in a part of the schema, however deeply nested in ``anyOf``."""
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from patterns(item)


@pytest.mark.parametrize("file", SHIPPED, ids=lambda file: file.name)
def test_every_duration_in_a_shipped_definition_fits_the_schema(file: Path) -> None:
    [pattern] = set(patterns(json_schema()["properties"]["deadline"]))
    durations = list(duration_values(yaml.safe_load(file.read_text(encoding="utf-8"))))
    assert durations
    for key, value in durations:
        if isinstance(value, str):
            assert re.fullmatch(pattern, value), (key, value)
        else:
            assert isinstance(value, int | float), (key, value)
            assert not isinstance(value, bool), (key, value)
            assert value >= 0, (key, value)


@pytest.mark.parametrize("file", SHIPPED, ids=lambda file: file.name)
def test_a_shipped_definition_validates_against_the_schema_file(file: Path) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.validate(yaml.safe_load(file.read_text(encoding="utf-8")), schema)
