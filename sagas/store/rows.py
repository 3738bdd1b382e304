"""Rows and records: the statements a round writes with, and the mapping of rows to records."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, update
from sqlalchemy.sql.expression import Executable

from sagas.engine.effects import ScheduleTimer, effects_adapter
from sagas.engine.state import SagaState
from sagas.events import Event
from sagas.store import schema as t
from sagas.store.records import InstanceRecord, LogEntry, TimerRecord


def insert_row(table: Table, row: Mapping[str, Any]) -> Executable:
    """INSERT of ``row``'s columns, as bind parameters."""
    return insert(table).values({column: bindparam(column) for column in row})


def update_instance() -> Executable:
    return (
        update(t.instances)
        .where(t.instances.c.saga_id == bindparam("saga_id"))
        .where(t.instances.c.version == bindparam("expected"))
        .values(
            status=bindparam("status"),
            state=bindparam("state"),
            failed_step=bindparam("failed_step"),
            version=bindparam("version"),
            updated_at=bindparam("updated_at"),
        )
    )


def mark_processed() -> Executable:
    inbox = t.inbox
    return update(inbox).where(inbox.c.position == bindparam("b_position")).values(queued=False)


def mark_outbox_done() -> Executable:
    outbox = t.outbox
    return delete(outbox).where(outbox.c.key == bindparam("b_key"))


def schedule_fired() -> Executable:
    schedules = t.schedules
    return (
        update(schedules)
        .where(schedules.c.saga_name == bindparam("b_name"))
        .where(schedules.c.fired_until < bindparam("fired_until"))
        .values(fired_until=bindparam("fired_until"))
    )


def remove_timer() -> Executable:
    return delete(t.timers).where(t.timers.c.timer_id == bindparam("b_timer_id"))


def inbox_row(event: Event, *, queued: bool, received_at: datetime) -> dict[str, Any]:
    """The inbox row of ``event``, received by the engine at ``received_at`` (the event itself
    is kept only while it is queued; afterwards its id is enough to deduplicate)."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "saga_id": event.saga_id,
        "event": event.to_json() if queued else "",
        "queued": queued,
        "enqueued_at": received_at,
    }


def instance(row: Any) -> InstanceRecord:
    return InstanceRecord(SagaState.model_validate_json(row.state), row.version)


def instance_row(record: InstanceRecord) -> dict[str, Any]:
    state = record.state
    return {
        "saga_id": state.saga_id,
        "saga_name": state.saga_name,
        "definition_version": state.definition_version,
        "correlation_key": state.correlation_key,
        "status": state.status.value,
        "state": state.model_dump_json(),
        "failed_step": state.failed_step,
        "version": record.version,
        "created_at": state.started_at,
        "updated_at": state.updated_at,
    }


def log_row(entry: LogEntry) -> dict[str, Any]:
    return {
        "saga_id": entry.saga_id,
        "seq": entry.seq,
        "event_id": entry.event.event_id,
        "event_type": entry.event.event_type,
        "event": entry.event.to_json(),
        "note": entry.note,
        "effects": effects_adapter.dump_json(list(entry.effects), by_alias=True).decode(),
        "ignored": entry.ignored,
        "recorded_at": entry.recorded_at,
        "received_at": entry.received_at,
    }


def log_entry(row: Any) -> LogEntry:
    return LogEntry(
        saga_id=row.saga_id,
        seq=row.seq,
        event=Event.model_validate_json(row.event),
        note=row.note,
        effects=tuple(effects_adapter.validate_json(row.effects)),
        ignored=row.ignored,
        recorded_at=row.recorded_at,
        position=row.position,
        received_at=row.received_at,
    )


def timer(row: Any) -> TimerRecord:
    return TimerRecord(row.saga_id, ScheduleTimer.model_validate_json(row.timer))
