"""The step graph as inline SVG, coloured by where each step of an instance stands.

Laid out from the networkx graph itself: one column per topological generation (steps that can
run together share a column), edges from each dependency to its dependant. No JavaScript and no
network: the dashboard works with nothing but the server process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from html import escape

import networkx as nx

from sagas.definitions.graph import step_graph
from sagas.definitions.model import SagaDefinition
from sagas.definitions.render import describe_action
from sagas.engine.state import StepState, StepStatus

__all__ = ["STEP_COLOURS", "step_graph_svg"]

_COLOURS = {
    "pending": ("#f4f4f5", "#a1a1aa"),
    "running": ("#dbeafe", "#2563eb"),
    "succeeded": ("#dcfce7", "#16a34a"),
    "failed": ("#fee2e2", "#dc2626"),
    "compensating": ("#fef9c3", "#ca8a04"),
    "compensated": ("#f3e8ff", "#9333ea"),
    "skipped": ("#f4f4f5", "#71717a"),
    "interrupted": ("#ffedd5", "#ea580c"),
    "not_run": ("#fafafa", "#d4d4d8"),
}
STEP_COLOURS = {status: _COLOURS.get(status.value, ("#ffffff", "#52525b")) for status in StepStatus}
"""Fill and stroke per step status (the legend of the dashboard uses the same)."""

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 190, 58, 60, 22, 12


def step_graph_svg(definition: SagaDefinition, steps: Mapping[str, StepState] | None = None) -> str:
    """An ``<svg>`` element of ``definition``'s steps; with ``steps`` (an instance's), each box
    is coloured by its status and says it, with attempts; the pivot has a thick dashed border."""
    graph = step_graph(definition)
    columns = [sorted(generation, key=_order(definition)) for generation in _generations(graph)]
    rows = max((len(column) for column in columns), default=1)
    height = PAD * 2 + rows * BOX_H + (rows - 1) * GAP_Y
    width = PAD * 2 + len(columns) * BOX_W + max(len(columns) - 1, 0) * GAP_X
    where: dict[str, tuple[float, float]] = {}
    for index, column in enumerate(columns):
        offset = (height - (len(column) * BOX_H + (len(column) - 1) * GAP_Y)) / 2
        for row, name in enumerate(column):
            where[name] = (PAD + index * (BOX_W + GAP_X), offset + row * (BOX_H + GAP_Y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="step-graph" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="steps of {escape(definition.name)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#71717a"/></marker></defs>',
    ]
    for source, target in graph.edges:
        (x1, y1), (x2, y2) = where[source], where[target]
        parts.append(
            f'<line x1="{x1 + BOX_W}" y1="{y1 + BOX_H / 2}" x2="{x2}" y2="{y2 + BOX_H / 2}" '
            'stroke="#71717a" stroke-width="1.5" marker-end="url(#arrow)"/>'
        )
    for step in definition.steps:
        x, y = where[step.name]
        state = steps.get(step.name) if steps else None
        status = state.status if state else StepStatus.PENDING
        fill, stroke = STEP_COLOURS[status] if state else ("#ffffff", "#52525b")
        detail = describe_action(step)
        if state is not None:
            detail = status.value + (f" · try {state.attempt}" if state.attempt > 1 else "")
            if state.undo_attempt:
                detail += f" · undo {state.undo_attempt}"
        if step.pivot:
            detail = f"pivot · {detail}"
        border = ' stroke-width="3" stroke-dasharray="6 3"' if step.pivot else ' stroke-width="1.5"'
        parts.append(
            f'<g class="step" data-step="{escape(step.name)}" data-status="{status.value}">'
            f"<title>{escape(step.name)}: {escape(describe_action(step))}</title>"
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" '
            f'stroke="{stroke}"{border}/>'
            f'<text x="{x + BOX_W / 2}" y="{y + 24}" text-anchor="middle" font-weight="600" '
            f'font-size="14">{escape(_clip(step.name))}</text>'
            f'<text x="{x + BOX_W / 2}" y="{y + 44}" text-anchor="middle" font-size="12" '
            f'fill="#3f3f46">{escape(_clip(detail, 28))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _generations(graph: nx.DiGraph[str]) -> list[list[str]]:
    return [list(generation) for generation in nx.topological_generations(graph)]


def _order(definition: SagaDefinition) -> Callable[[str], int]:
    """Sorts steps as the definition lists them."""
    return {step.name: index for index, step in enumerate(definition.steps)}.__getitem__


def _clip(text: str, size: int = 24) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
