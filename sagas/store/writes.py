"""What a round writes: its :class:`~sagas.store.records.Changes`, all in the caller's
transaction, one statement per kind of row (compiled once per dialect, executed for the whole
batch)."""

from __future__ import annotations

from sqlalchemy import Connection, insert

from sagas.store import rows
from sagas.store import schema as t
from sagas.store.base import ConcurrencyConflictError
from sagas.store.bulk import BulkStatements
from sagas.store.dead_letter_sql import dead_letter_row
from sagas.store.dialect import insert_or_skip
from sagas.store.records import Changes, outbox_key

__all__ = ["write_changes"]


def write_changes(
    conn: Connection, changes: Changes, bulk: BulkStatements, dialect: str, where: str
) -> None:
    """Write ``changes`` on ``conn`` (``where`` names the database in errors).

    :raises ConcurrencyConflictError: when an instance to update no longer has the expected
        version.
    """
    run = bulk.execute
    if changes.created:
        batch = [rows.instance_row(record) for record in changes.created]
        run(conn, "create_instance", lambda: rows.insert_row(t.instances, batch[0]), batch)
    if changes.updated:
        batch = [rows.instance_row(r) | {"expected": v} for r, v in changes.updated]
        if run(conn, "update_instance", rows.update_instance, batch) != len(batch):
            raise ConcurrencyConflictError(f"{where}: an instance changed under this worker")
    if changes.log:
        batch = [rows.log_row(entry) for entry in changes.log]
        run(conn, "append_log", lambda: rows.insert_row(t.event_log, batch[0]), batch)
    if changes.processed:
        batch = [{"b_position": position} for position in changes.processed]
        run(conn, "processed", rows.mark_processed, batch)
    if changes.outbox:
        batch = [
            {
                "saga_id": saga_id,
                "key": outbox_key(effect),
                "effect": effect.model_dump_json(by_alias=True),
                "lease_until": changes.lease_until,
                "created_at": changes.written_at,
            }
            for saga_id, effect in changes.outbox
        ]
        run(conn, "outbox", lambda: insert_or_skip(dialect, t.outbox, batch[0], "key"), batch)
    if changes.outbox_done:
        batch = [{"b_key": key} for key in changes.outbox_done]
        run(conn, "outbox_done", rows.mark_outbox_done, batch)
    if changes.timers_removed:
        batch = [{"b_timer_id": timer_id} for timer_id in changes.timers_removed]
        run(conn, "remove_timer", rows.remove_timer, batch)
    if changes.timers:
        batch = [
            {
                "timer_id": record.timer.timer_id,
                "saga_id": record.saga_id,
                "kind": record.timer.kind,
                "due_at": record.timer.due_at,
                "timer": record.timer.model_dump_json(),
            }
            for record in changes.timers
        ]
        build = lambda: insert_or_skip(dialect, t.timers, batch[0], "timer_id")  # noqa: E731
        run(conn, "timer", build, batch)
    if changes.received:
        # Decided without being queued: only the id is kept, for deduplication.
        batch = [
            rows.inbox_row(item.event, queued=False, received_at=item.at)
            for item in changes.received
        ]
        run(conn, "received", lambda: rows.insert_row(t.inbox, batch[0]), batch)
    if changes.schedules:
        batch = [
            {"b_name": name, "fired_until": until} for name, until in changes.schedules.items()
        ]
        run(conn, "schedule_fired", rows.schedule_fired, batch)
    if changes.dead_letters:
        conn.execute(
            insert(t.dead_letters), [dead_letter_row(letter) for letter in changes.dead_letters]
        )
