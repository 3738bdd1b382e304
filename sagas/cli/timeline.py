"""Rendering an instance for people: header, steps, pending timers and the timeline."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sagas.engine.state import InstanceStatus, StepStatus
from sagas.operations.documents import describe_effect
from sagas.store.records import InstanceRecord, LogEntry, TimerRecord

__all__ = ["STATUS_STYLE", "render_instance", "render_timeline"]

STATUS_STYLE = {
    InstanceStatus.RUNNING: "cyan",
    InstanceStatus.COMPENSATING: "yellow",
    InstanceStatus.COMPLETED: "green",
    InstanceStatus.COMPENSATED: "magenta",
    InstanceStatus.FAILED: "bold red",
    InstanceStatus.CANCELLED: "bold yellow",
    StepStatus.PENDING: "dim",
    StepStatus.RUNNING: "cyan",
    StepStatus.SUCCEEDED: "green",
    StepStatus.FAILED: "red",
    StepStatus.COMPENSATING: "yellow",
    StepStatus.COMPENSATED: "magenta",
    StepStatus.SKIPPED: "dim",
}


def render_timeline(log: list[LogEntry]) -> Table:
    """The instance's log: every event, what was decided, and the effects."""
    table = Table(title="Timeline", expand=True, show_lines=False)
    for column in ("#", "time", "event", "decision", "effects"):
        table.add_column(column, overflow="fold")
    for entry in log:
        style = "dim" if entry.ignored else ""
        table.add_row(
            str(entry.seq),
            f"{entry.recorded_at:%H:%M:%S.%f}"[:-3],
            entry.event.event_type,
            entry.note,
            "\n".join(describe_effect(e) for e in entry.effects),
            style=style,
        )
    return table


def render_instance(
    console: Console, record: InstanceRecord, log: list[LogEntry], timers: list[TimerRecord]
) -> None:
    """Print one instance: state, data, steps, pending timers, timeline."""
    state = record.state
    header = Text.assemble(
        (f"{state.saga_name} v{state.definition_version}", "bold"),
        f"  key {state.correlation_key}  ",
        (state.status.value, STATUS_STYLE[state.status]),
        f"\nsaga id {state.saga_id}\nstarted {state.started_at:%Y-%m-%d %H:%M:%S} UTC, "
        f"updated {state.updated_at:%Y-%m-%d %H:%M:%S} UTC, version {record.version}",
    )
    if state.reason:
        header.append(f"\nreason: {state.reason}", style="yellow")
    steps = Table(title="Steps", expand=True)
    for column in ("step", "status", "attempts", "undo attempts", "error"):
        steps.add_column(column, overflow="fold")
    for name, step in state.steps.items():
        steps.add_row(
            name,
            Text(step.status.value, STATUS_STYLE[step.status]),
            str(step.attempt),
            str(step.undo_attempt),
            step.error or "",
        )
    parts: list[Any] = [
        Panel(header, title="Saga instance"),
        Panel(json.dumps(state.data, indent=2, sort_keys=True), title="Data"),
        steps,
    ]
    if timers:
        pending = Table(title="Pending timers", expand=True)
        for column in ("timer", "kind", "step", "attempt", "due (UTC)"):
            pending.add_column(column, overflow="fold")
        for record_ in timers:
            timer = record_.timer
            pending.add_row(
                timer.timer_id,
                timer.kind.value,
                timer.step or "",
                str(timer.attempt),
                f"{timer.due_at:%Y-%m-%d %H:%M:%S}",
            )
        parts.append(pending)
    parts.append(render_timeline(log))
    console.print(Group(*parts))
