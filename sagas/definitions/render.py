"""Pictures of the step graph: Mermaid (for Markdown and the dashboard) and Graphviz DOT."""

from __future__ import annotations

import json
from collections.abc import Iterator

from sagas.definitions.model import ActionSpec, Command, Delay, HandlerCall, SagaDefinition, Wait

__all__ = ["describe_action", "to_dot", "to_mermaid"]


def describe_action(spec: ActionSpec) -> str:
    """A short label for an action: ``command ReserveInventory``, ``handler take_payment``."""
    match spec.action:
        case HandlerCall(name=name):
            return f"handler {name}"
        case Command(type=event_type):
            return f"command {event_type}"
        case Wait(event=events):
            return f"wait {' | '.join(events)}"
        case Delay():
            return f"delay {spec.model_dump(mode='json')['delay']}"
    raise AssertionError(spec.action)


START, END = "__start", "__end"


def _edges(definition: SagaDefinition) -> Iterator[tuple[str, str]]:
    """Dependency edges by step name, plus edges from ``START`` and to ``END``."""
    sinks = [step.name for step in definition.steps]
    for step in definition.steps:
        dependencies = definition.dependencies(step)
        sinks = [name for name in sinks if name not in dependencies]
        for dependency in dependencies or (START,):
            yield dependency, step.name
    for sink in sinks:
        yield sink, END


def to_mermaid(definition: SagaDefinition) -> str:
    """A Mermaid flowchart: steps with their actions, compensations as dashed ``undo`` edges."""
    ids = _ids(definition)
    lines = ["flowchart TD", f"  start([{_quote(definition.trigger)}])", "  done([completed])"]
    for step in definition.steps:
        label = _quote(f"{step.name}\n{describe_action(step)}")
        node = "{{" + label + "}}" if step.pivot else f"[{label}]"
        lines.append(f"  {ids[step.name]}{node}")
        if step.compensation is not None:
            undo = _quote(f"undo {step.name}\n{describe_action(step.compensation)}")
            lines.append(f"  {ids[step.name]}_undo[{undo}]")
            lines.append(f"  {ids[step.name]} -. compensation .-> {ids[step.name]}_undo")
    lines += [f"  {ids[source]} --> {ids[target]}" for source, target in _edges(definition)]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return json.dumps(text).replace("\\n", "<br/>")


def to_dot(definition: SagaDefinition) -> str:
    """A Graphviz digraph: steps, the pivot as a hexagon, compensations as dashed red edges."""
    ids = _ids(definition)
    lines = [
        f"digraph {json.dumps(definition.name)} {{",
        "  rankdir=TB;",
        "  node [shape=box, style=rounded];",
        f"  start [shape=oval, label={json.dumps(definition.trigger)}];",
        '  done [shape=oval, label="completed"];',
    ]
    for step in definition.steps:
        node = ids[step.name]
        shape = ", shape=hexagon" if step.pivot else ""
        label = json.dumps(f"{step.name}\n{describe_action(step)}")
        lines.append(f"  {node} [label={label}{shape}];")
        if step.compensation is not None:
            label = json.dumps(f"undo {step.name}\n{describe_action(step.compensation)}")
            lines.append(f"  {node}_undo [label={label}, color=red];")
            lines.append(f"  {node} -> {node}_undo [style=dashed, color=red];")
    lines += [f"  {ids[source]} -> {ids[target]};" for source, target in _edges(definition)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _ids(definition: SagaDefinition) -> dict[str, str]:
    # Node ids are positional (s0, s1, ...): step names may hold characters a format reserves,
    # or collide with the start and end nodes.
    steps = {step.name: f"s{index}" for index, step in enumerate(definition.steps)}
    return {START: "start", END: "done", **steps}
