"""Rendering an instance for people: header, steps, pending timers and the timeline."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sagas.cli.terminal import shown
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.operations.documents import describe_effect
from sagas.store.records import InstanceRecord, LogEntry, TimerRecord

__all__ = ["STATUS_STYLE", "render_instance", "render_timeline"]

STATUS_STYLE: dict[InstanceStatus | StepStatus, str] = {
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
    StepStatus.INTERRUPTED: "yellow",
    StepStatus.NOT_RUN: "dim",
}
"""Colours of the statuses; a status without one is shown plain."""


def render_timeline(log: list[LogEntry]) -> Table:
    """The instance's log: every event, what was decided, and the effects (text from the
    events, like a note quoting a participant's reason, is shown escaped)."""
    table = Table(title="Timeline", expand=True, show_lines=False)
    for column in ("#", "time", "event", "decision", "effects"):
        table.add_column(column, overflow="fold")
    for entry in log:
        style = "dim" if entry.ignored else ""
        table.add_row(
            str(entry.seq),
            _times(entry),
            shown(entry.event.event_type),
            shown(entry.note),
            shown("\n".join(describe_effect(e) for e in entry.effects), keep_newlines=True),
            style=style,
        )
    return table


def _times(entry: LogEntry) -> str:
    """When the entry was decided, and below it when its event was received where that was
    earlier or later (a reply queued before the worker got to it)."""
    decided = _clock_time(entry.recorded_at)
    received = entry.received_at
    if received is None or received == entry.recorded_at:
        return decided
    return f"{decided}\nreceived {_clock_time(received)}"


def _clock_time(at: datetime) -> str:
    return f"{at:%H:%M:%S.%f}"[:-3]


def render_instance(
    console: Console, record: InstanceRecord, log: list[LogEntry], timers: list[TimerRecord]
) -> None:
    """Print one instance: state, data, steps, pending timers, timeline. Keys, data, reasons
    and errors are shown escaped (:mod:`sagas.cli.terminal`)."""
    state = record.state
    header = Text.assemble(
        shown(f"{state.saga_name} v{state.definition_version}", "bold"),
        "  key ",
        shown(state.correlation_key),
        "  ",
        (state.status.value, STATUS_STYLE.get(state.status, "")),
        f"\nsaga id {state.saga_id}\nstarted {state.started_at:%Y-%m-%d %H:%M:%S} UTC, "
        f"updated {state.updated_at:%Y-%m-%d %H:%M:%S} UTC, version {record.version}",
    )
    if state.reason:
        header.append("\nreason: ", style="yellow")
        header.append_text(shown(state.reason, "yellow"))
    steps = Table(title="Steps", expand=True)
    for column in ("step", "status", "attempts", "undo attempts", "error"):
        steps.add_column(column, overflow="fold")
    for name, step in state.steps.items():
        steps.add_row(
            shown(name),
            Text(step.status.value, STATUS_STYLE.get(step.status, "")),
            str(step.attempt),
            str(step.undo_attempt),
            shown(step.error or ""),
        )
    parts: list[Any] = [
        Panel(header, title="Saga instance"),
        # JSON escapes control characters itself; Text keeps "[red]" in a value from being markup.
        Panel(
            shown(json.dumps(state.data, indent=2, sort_keys=True), keep_newlines=True),
            title="Data",
        ),
        steps,
    ]
    if timers:
        pending = Table(title="Pending timers", expand=True)
        for column in ("timer", "kind", "step", "attempt", "due (UTC)"):
            pending.add_column(column, overflow="fold")
        for record_ in timers:
            timer = record_.timer
            pending.add_row(
                shown(timer.timer_id),
                timer.kind.value,
                shown(timer.step or ""),
                str(timer.attempt),
                f"{timer.due_at:%Y-%m-%d %H:%M:%S}",
            )
        parts.append(pending)
    parts.append(render_timeline(log))
    console.print(Group(*parts))
