"""Saga definitions: the models, the YAML loader, the Python builder, the graph and its pictures."""

from sagas.definitions.builder import SagaBuilder
from sagas.definitions.durations import Duration, format_duration, parse_duration
from sagas.definitions.expressions import Expression, evaluate
from sagas.definitions.graph import step_graph
from sagas.definitions.loader import (
    definition_files,
    dump_definition,
    load_definition,
    load_definitions,
    parse_definition,
)
from sagas.definitions.model import (
    Action,
    Command,
    Compensation,
    Delay,
    EventSpec,
    HandlerCall,
    RetryPolicy,
    SagaDefinition,
    Step,
    StepKind,
    Wait,
)
from sagas.definitions.render import to_dot, to_mermaid
from sagas.definitions.schema import json_schema, json_schema_text
from sagas.definitions.validate import validate_definition

__all__ = [
    "Action",
    "Command",
    "Compensation",
    "Delay",
    "Duration",
    "EventSpec",
    "Expression",
    "HandlerCall",
    "RetryPolicy",
    "SagaBuilder",
    "SagaDefinition",
    "Step",
    "StepKind",
    "Wait",
    "definition_files",
    "dump_definition",
    "evaluate",
    "format_duration",
    "json_schema",
    "json_schema_text",
    "load_definition",
    "load_definitions",
    "parse_definition",
    "parse_duration",
    "step_graph",
    "to_dot",
    "to_mermaid",
    "validate_definition",
]
