"""Queueing events and telling, per event, whether it was new (a mixin of
:class:`~sagas.store.sql.SQLStore`): what the HTTP intake answers its callers."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import Connection, select

from sagas.events import Event
from sagas.store import schema as t
from sagas.store.base import ConcurrencyConflictError, StoreError
from sagas.store.dialect import is_conflict, notify

__all__ = ["SQLInbox"]

_CHUNK = 500  # ids per SELECT: far below every database's limit of bound parameters
_TRIES = 5


class _RacedError(Exception):
    """Another writer queued one of the ids between this transaction's read and its insert."""


class SQLInbox:
    """Queueing with a per-event answer, on the store's connections."""

    @abstractmethod
    def _write(self, doing: str) -> AbstractContextManager[Connection]: ...

    @abstractmethod
    def _enqueue(self, conn: Connection, events: Sequence[Event], received_at: datetime) -> int: ...

    def enqueue_new(self, events: Sequence[Event], *, received_at: datetime) -> list[bool]:
        """Queue ``events`` as :meth:`~sagas.store.base.Store.enqueue` does, in one transaction;
        per event, whether it was newly queued (``False``: the inbox had its id, or an earlier
        event of ``events`` has it)."""
        if not events:
            return []
        for _ in range(_TRIES):
            try:
                return self._enqueue_new(events, received_at)
            except _RacedError:
                continue
            except StoreError as exc:
                # Two requests inserting the same ids in different orders deadlock on
                # PostgreSQL; the one chosen as victim was rolled back whole: read again.
                if exc.__cause__ is None or not is_conflict(exc.__cause__):
                    raise
        raise ConcurrencyConflictError("queueing events: other writers kept queueing the same ids")

    def _enqueue_new(self, events: Sequence[Event], received_at: datetime) -> list[bool]:
        ids = list(dict.fromkeys(event.event_id for event in events))
        with self._write("queueing events") as conn:
            seen: set[str] = set()
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                query = select(t.inbox.c.event_id).where(t.inbox.c.event_id.in_(chunk))
                seen.update(conn.scalars(query))
            fresh: dict[str, Event] = {}
            answers: list[bool] = []
            for event in events:
                new = event.event_id not in seen and event.event_id not in fresh
                if new:
                    fresh[event.event_id] = event
                answers.append(new)
            # On SQLite the transaction holds the write lock from its start; on PostgreSQL a
            # concurrent writer may commit one of the ids first: then this one rolls back
            # and reads again, so an answer is never a guess.
            if fresh and self._enqueue(conn, list(fresh.values()), received_at) != len(fresh):
                raise _RacedError
            if fresh:
                notify(conn)
        return answers
