"""The JSON Schema of the YAML format, generated from the models.

It is stored as ``definitions/saga.schema.json``; a test fails when that file is stale.
"""

from __future__ import annotations

import json
from typing import Any

from sagas.definitions.model import SagaDefinition

__all__ = ["json_schema", "json_schema_text"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema() -> dict[str, Any]:
    """The schema of a saga definition file, for editors and other tools."""
    schema = SagaDefinition.model_json_schema(mode="validation")
    return {**schema, "$schema": SCHEMA_DIALECT, "title": "Saga definition"}


def json_schema_text() -> str:
    """The schema as the text stored in ``definitions/saga.schema.json``."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
