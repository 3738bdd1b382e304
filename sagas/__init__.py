"""sagas: an event-driven saga orchestration engine.

The public API is what this module exports; everything else is an implementation detail.
"""

from sagas.definitions import (
    Command,
    Compensation,
    EventSpec,
    RetryPolicy,
    SagaBuilder,
    SagaDefinition,
    Step,
    StepKind,
    Wait,
    load_definition,
    load_definitions,
    parse_definition,
    step_graph,
    to_dot,
    to_mermaid,
)
from sagas.errors import DefinitionError, Problem, SagaError
from sagas.handlers import Handler, HandlerRegistry, StepContext, StepFailed, UnknownHandlerError

__all__ = [
    "Command",
    "Compensation",
    "DefinitionError",
    "EventSpec",
    "Handler",
    "HandlerRegistry",
    "Problem",
    "RetryPolicy",
    "SagaBuilder",
    "SagaDefinition",
    "SagaError",
    "Step",
    "StepContext",
    "StepFailed",
    "StepKind",
    "UnknownHandlerError",
    "Wait",
    "load_definition",
    "load_definitions",
    "parse_definition",
    "step_graph",
    "to_dot",
    "to_mermaid",
]
