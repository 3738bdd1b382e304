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
from sagas.engine.decide import saga_id_for
from sagas.engine.internal import HANDLER_FAILED, HANDLER_SUCCEEDED, TIMER_FIRED
from sagas.engine.operator import OPERATOR_EVENT_TYPES, OperatorAction, operator_event
from sagas.engine.state import InstanceStatus, SagaState, StepState, StepStatus
from sagas.errors import DefinitionError, Problem, SagaError
from sagas.events import Event, EventError
from sagas.handlers import Handler, HandlerRegistry, StepContext, StepFailed, UnknownHandlerError
from sagas.operations import ActionRequest, ActionResult, Operations, Outcome
from sagas.runtime.bus import EventBus, Subscriber
from sagas.runtime.engine import Engine
from sagas.runtime.setup import build_engine
from sagas.store import SQLStore, Store, StoreError, UnknownSagaError

__all__ = [
    "HANDLER_FAILED",
    "HANDLER_SUCCEEDED",
    "OPERATOR_EVENT_TYPES",
    "TIMER_FIRED",
    "ActionRequest",
    "ActionResult",
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
    "Operations",
    "OperatorAction",
    "Outcome",
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
    "operator_event",
    "parse_definition",
    "saga_id_for",
    "step_graph",
    "to_dot",
    "to_mermaid",
]
