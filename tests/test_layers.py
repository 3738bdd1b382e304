"""The layers of DESIGN.md hold: data flows one way, and the public API is what it says."""

import ast
from pathlib import Path

import pytest

import sagas

PACKAGE = Path(sagas.__file__).parent

# What each layer may import from the package (besides itself).
ALLOWED = {
    "definitions": {"sagas.errors", "sagas.handlers"},
    "engine": {"sagas.errors", "sagas.definitions", "sagas.events"},
    "events": {"sagas.errors", "sagas.definitions", "sagas.jsontext"},
    "jsontext": {"sagas.errors"},
    "secrets": set(),  # masks URLs: imports nothing of the package
    "intake": {"sagas.errors", "sagas.definitions", "sagas.events", "sagas.jsontext"},
    "store": {"sagas.errors", "sagas.definitions", "sagas.engine", "sagas.events"},
    "observability": {"sagas.errors", "sagas.engine", "sagas.events", "sagas.store"},
    "operations": {
        "sagas.errors",
        "sagas.definitions",
        "sagas.engine",
        "sagas.events",
        "sagas.store",
        "sagas.runtime.batch",
        "sagas.runtime.routing",  # pure: which instances a replayed dead letter concerns
        "sagas.intake",  # a replayed dead letter comes in again
        "sagas.clock",
        "sagas.observability",
    },
    "server": {
        "sagas.errors",
        "sagas.definitions",
        "sagas.engine",
        "sagas.events",
        "sagas.store",
        "sagas.operations",
        "sagas.clock",
        "sagas.intake",
        "sagas.jsontext",
        "sagas.secrets",
        "sagas.asyncapi",
        "sagas.cloudevents",
    },
    # The event contract: built from definitions alone (limits from the intake).
    "asyncapi": {"sagas.errors", "sagas.definitions", "sagas.intake"},
    # The CloudEvents mapping: events and strict JSON only (brokers and HTTP share it).
    "cloudevents": {"sagas.errors", "sagas.events", "sagas.jsontext"},
}


def imports_of(module: Path) -> set[str]:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("sagas.")}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_the_layers_below_it(layer: str) -> None:
    path = PACKAGE / layer
    modules = sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    for module in modules:
        for name in imports_of(module):
            inside = name == f"sagas.{layer}" or name.startswith(f"sagas.{layer}.")
            allowed = any(name == a or name.startswith(f"{a}.") for a in ALLOWED[layer])
            assert inside or allowed, f"{module.relative_to(PACKAGE)} imports {name}"


def test_the_public_api_is_pinned() -> None:
    assert set(sagas.__all__) == {
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
        "OperatorAction",
        "Operations",
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
    }
    for name in sagas.__all__:
        assert getattr(sagas, name) is not None
