"""sagas: an event-driven saga orchestration engine.

The public API is what this module exports; everything else is an implementation detail.
"""

from sagas.clock import Clock, SystemClock
from sagas.config import ConfigError, EngineConfig, load_config
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
from sagas.engine.state import InstanceStatus, SagaState, StepState, StepStatus
from sagas.errors import DefinitionError, Problem, SagaError
from sagas.events import Event, EventError
from sagas.handlers import Handler, HandlerRegistry, StepContext, StepFailed, UnknownHandlerError
from sagas.runtime.bus import EventBus, Subscriber
from sagas.runtime.engine import Engine
from sagas.runtime.setup import build_engine
from sagas.store import SQLStore, Store, StoreError, UnknownSagaError

__all__ = [
    "Clock",
    "Command",
    "Compensation",
    "ConfigError",
    "DefinitionError",
    "Engine",
    "EngineConfig",
    "Event",
    "EventBus",
    "EventError",
    "EventSpec",
    "Handler",
    "HandlerRegistry",
    "InstanceStatus",
    "Problem",
    "RetryPolicy",
    "SQLStore",
    "SagaBuilder",
    "SagaDefinition",
    "SagaError",
    "SagaState",
    "Step",
    "StepContext",
    "StepFailed",
    "StepKind",
    "StepState",
    "StepStatus",
    "Store",
    "StoreError",
    "Subscriber",
    "SystemClock",
    "UnknownHandlerError",
    "UnknownSagaError",
    "Wait",
    "build_engine",
    "load_config",
    "load_definition",
    "load_definitions",
    "parse_definition",
    "step_graph",
    "to_dot",
    "to_mermaid",
]
