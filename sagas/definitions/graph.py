"""The step graph of a saga (a ``networkx.DiGraph``) and the rules that make a definition sound.

Rules (each reported with the path of the offending field):

* step names are unique; ``after`` names existing steps; the graph has no cycle, and every step
  can start (no step depends, even indirectly, on a cycle);
* at most one step is the ``pivot``, and it is on every path: every other step runs either
  before it (an ancestor) or after it (a descendant), never in parallel with it. Otherwise a
  parallel step could fail after the pivot succeeded, and the pivot cannot be undone;
* a ``handler`` or ``command`` step that is not the pivot and not after it needs a
  ``compensation`` (a later failure must be able to undo it); ``wait`` and ``delay`` steps change
  nothing and need none. A step that cannot or need not be undone (the last one, say) is marked
  as the pivot;
* a compensation on the pivot or on a step after it never runs, so it is refused;
* handlers are registered (when the registry is known) and event types are declared (when the
  definition lists ``events``); a reply type cannot mean both success and failure.

The rules read the raw mapping (the YAML document, or the builder's dump) leniently, so graph
problems are reported together with field problems in one run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx

from sagas.definitions.model import SagaDefinition

__all__ = ["Finding", "Path", "graph_problems", "step_graph"]

Path = tuple[str | int, ...]
Finding = tuple[Path, str]

_ACTIONS = ("handler", "command", "wait", "delay")


def step_graph(definition: SagaDefinition) -> nx.DiGraph[str]:
    """The steps as nodes (attribute ``step``), an edge from each dependency to its dependant."""
    graph: nx.DiGraph[str] = nx.DiGraph()
    for step in definition.steps:
        graph.add_node(step.name, step=step)
    for step in definition.steps:
        for dependency in definition.dependencies(step):
            graph.add_edge(dependency, step.name)
    return graph


@dataclass(frozen=True)
class _Shape:
    """What the graph rules need of one step, read leniently from raw data."""

    index: int
    name: str
    raw: Mapping[str, Any]
    dependencies: tuple[str, ...]

    @property
    def path(self) -> Path:
        return ("steps", self.index)

    @property
    def kind(self) -> str | None:
        present = [key for key in _ACTIONS if self.raw.get(key) is not None]
        return present[0] if len(present) == 1 else None

    @property
    def pivot(self) -> bool:
        return self.raw.get("pivot") is True

    @property
    def compensation(self) -> Any:
        return self.raw.get("compensation")


def graph_problems(
    raw: Mapping[str, Any], handlers: Collection[str] | None = None
) -> list[Finding]:
    """Every graph and reference problem of the raw definition ``raw``.

    ``handlers`` is the set of registered handler names; ``None`` skips that check.
    """
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list):
        return []
    shapes = list(_shapes(steps_raw))
    findings = _name_problems(shapes)
    by_name = {shape.name: shape for shape in reversed(shapes)}  # the first of duplicates wins
    graph = _graph(shapes, by_name)
    findings += _cycle_problems(graph, by_name)
    if nx.is_directed_acyclic_graph(graph):
        findings += _pivot_problems(graph, shapes)
    findings += _reference_problems(raw, steps_raw, handlers)
    return sorted(findings, key=lambda finding: [str(part) for part in finding[0]])


def _shapes(steps_raw: Sequence[Any]) -> Iterator[_Shape]:
    previous: str | None = None
    for index, raw in enumerate(steps_raw):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
            previous = None
            continue
        after = raw.get("after")
        if after is None:
            dependencies: tuple[str, ...] = (previous,) if previous else ()
        elif isinstance(after, list):
            dependencies = tuple(name for name in after if isinstance(name, str))
        else:
            dependencies = ()
        yield _Shape(index, raw["name"], raw, dependencies)
        previous = raw["name"]


def _name_problems(shapes: Sequence[_Shape]) -> list[Finding]:
    findings: list[Finding] = []
    first: dict[str, _Shape] = {}
    names = {shape.name for shape in shapes}
    for shape in shapes:
        if shape.name in first:
            where = f"steps[{first[shape.name].index}]"
            findings.append(
                ((*shape.path, "name"), f"duplicate step name {shape.name!r}, first at {where}")
            )
        first.setdefault(shape.name, shape)
        after = shape.raw.get("after")
        for position, name in enumerate(after if isinstance(after, list) else []):
            if isinstance(name, str) and name not in names:
                findings.append(((*shape.path, "after", position), f"unknown step {name!r}"))
    return findings


def _graph(shapes: Sequence[_Shape], by_name: Mapping[str, _Shape]) -> nx.DiGraph[str]:
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(by_name)
    for shape in shapes:
        if by_name[shape.name] is shape:
            graph.add_edges_from((dep, shape.name) for dep in shape.dependencies if dep in by_name)
    return graph


def _cycle_problems(graph: nx.DiGraph[str], by_name: Mapping[str, _Shape]) -> list[Finding]:
    findings: list[Finding] = []
    in_cycle: set[str] = set()
    for component in nx.strongly_connected_components(graph):
        if len(component) == 1 and not graph.has_edge(*(2 * tuple(component))):
            continue
        in_cycle |= component
        cycle = [u for u, _ in nx.find_cycle(graph.subgraph(component))]
        start = min(cycle, key=lambda name: by_name[name].index)
        turn = cycle.index(start)
        ordered = [*cycle[turn:], *cycle[:turn], start]
        shape = by_name[start]
        field = (*shape.path, "after") if "after" in shape.raw else shape.path
        findings.append((field, "steps depend on each other in a cycle: " + " -> ".join(ordered)))
    blocked: set[str] = set()
    for name in in_cycle:
        blocked |= nx.descendants(graph, name)
    blocked -= in_cycle
    for name in sorted(blocked, key=lambda name: by_name[name].index):
        findings.append(
            (by_name[name].path, f"step {name!r} is unreachable: it depends on a cycle of steps")
        )
    return findings


def _pivot_problems(graph: nx.DiGraph[str], shapes: Sequence[_Shape]) -> list[Finding]:
    findings: list[Finding] = []
    pivots = [shape for shape in shapes if shape.pivot]
    for extra in pivots[1:]:
        findings.append(
            ((*extra.path, "pivot"), f"a saga has at most one pivot; {pivots[0].name!r} is one")
        )
    after_pivot: set[str] = set()
    if pivots:
        pivot = pivots[0].name
        after_pivot = nx.descendants(graph, pivot)
        before_pivot = nx.descendants(graph.reverse(copy=False), pivot)
        parallel = set(graph) - after_pivot - before_pivot - {pivot}
        if parallel:
            names = ", ".join(repr(s.name) for s in shapes if s.name in parallel)
            findings.append(
                (
                    (*pivots[0].path, "pivot"),
                    f"the pivot must be on every path, but {names} can run in parallel with it",
                )
            )
    for shape in shapes:
        undoable = shape.kind in ("handler", "command")
        if shape.pivot or shape.name in after_pivot:
            if shape.compensation is not None:
                reason = "a pivot" if shape.pivot else "after the pivot"
                findings.append(
                    (
                        (*shape.path, "compensation"),
                        f"never runs: step {shape.name!r} is {reason}, which is never compensated",
                    )
                )
        elif undoable and shape.compensation is None:
            findings.append(
                (
                    shape.path,
                    f"step {shape.name!r} has no compensation, but a later failure would have to "
                    "undo it; add a compensation, or mark it `pivot: true` if it is the point of "
                    "no return",
                )
            )
    return findings


def _reference_problems(
    raw: Mapping[str, Any], steps_raw: Sequence[Any], handlers: Collection[str] | None
) -> list[Finding]:
    findings: list[Finding] = []
    events = raw.get("events")
    declared = set(events) if isinstance(events, Mapping) else None

    def check_event(path: Path, value: Any) -> None:
        if declared is not None and isinstance(value, str) and value not in declared:
            findings.append((path, f"event {value!r} is not declared in events"))

    def check_events(path: Path, value: Any) -> None:
        if isinstance(value, list):
            for position, item in enumerate(value):
                check_event((*path, position), item)
        else:
            check_event(path, value)

    def check_action(path: Path, action: Mapping[str, Any]) -> None:
        name = action.get("handler")
        if handlers is not None and isinstance(name, str) and name not in handlers:
            findings.append(((*path, "handler"), f"no handler is registered as {name!r}"))
        command = action.get("command")
        if isinstance(command, Mapping):
            check_event((*path, "command", "type"), command.get("type"))
            for key in ("success", "failure"):
                check_events((*path, "command", key), command.get(key))
            both = set(_as_names(command.get("success"))) & set(_as_names(command.get("failure")))
            for event in sorted(both):
                findings.append(
                    ((*path, "command", "failure"), f"{event!r} cannot be both success and failure")
                )
        wait = action.get("wait")
        if isinstance(wait, Mapping):
            for key in ("event", "failure"):
                check_events((*path, "wait", key), wait.get(key))

    check_event(("trigger",), raw.get("trigger"))
    for index, step in enumerate(steps_raw):
        if isinstance(step, Mapping):
            check_action(("steps", index), step)
            compensation = step.get("compensation")
            if isinstance(compensation, Mapping):
                check_action(("steps", index, "compensation"), compensation)
    return findings


def _as_names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
