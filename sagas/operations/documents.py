"""Instances as documents for people and programs: the JSON of ``sagas show --json``, ``sagas
list --json`` and the HTTP API, and one-line descriptions of effects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from sagas.engine.effects import (
    CancelTimer,
    Effect,
    Finish,
    InvokeHandler,
    PublishCommand,
    ScheduleTimer,
)
from sagas.engine.state import InstanceStatus
from sagas.store.records import InstanceRecord, LogEntry, TimerRecord

__all__ = ["InstanceSummary", "describe_effect", "instance_json"]


class InstanceSummary(BaseModel):
    """One instance in a listing (``sagas list --json``, ``GET /api/instances``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    saga_id: str
    saga: str
    version: int
    correlation_key: str
    status: InstanceStatus
    reason: str | None
    failed_step: str | None
    started_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: InstanceRecord) -> InstanceSummary:
        state = record.state
        return cls(
            saga_id=state.saga_id,
            saga=state.saga_name,
            version=state.definition_version,
            correlation_key=state.correlation_key,
            status=state.status,
            reason=state.reason,
            failed_step=state.failed_step,
            started_at=state.started_at,
            updated_at=state.updated_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, camelCase keys."""
        return self.model_dump(mode="json", by_alias=True)


def describe_effect(effect: Effect) -> str:
    """One line for an effect."""
    match effect:
        case PublishCommand(command=command, compensating=undo):
            return f"{'undo ' if undo else ''}publish {command.event_type}"
        case InvokeHandler(handler=handler, attempt=attempt, compensating=undo):
            return f"{'undo ' if undo else ''}run {handler} #{attempt}"
        case ScheduleTimer(kind=kind, step=step, due_at=due):
            return f"timer {kind.value}{f' {step}' if step else ''} at {due:%H:%M:%S}"
        case CancelTimer(timer_id=timer_id):
            return f"cancel timer {timer_id.rsplit('/', 1)[-1]}"
        case Finish(status=status):
            return f"finish {status.value}"
    raise AssertionError(effect)


def instance_json(
    record: InstanceRecord, log: list[LogEntry], timers: list[TimerRecord]
) -> dict[str, Any]:
    """The ``show --json`` document."""
    return {
        "instance": record.state.model_dump(mode="json") | {"version": record.version},
        "timers": [r.timer.model_dump(mode="json") for r in timers],
        "timeline": [
            {
                "seq": entry.seq,
                "recordedAt": entry.recorded_at.isoformat(),
                "receivedAt": entry.received_at.isoformat() if entry.received_at else None,
                "event": entry.event.to_dict(),
                "note": entry.note,
                "ignored": entry.ignored,
                "effects": [e.model_dump(mode="json", by_alias=True) for e in entry.effects],
            }
            for entry in log
        ],
    }
