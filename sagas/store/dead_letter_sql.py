"""The store's queries on dead letters (a mixin of :class:`~sagas.store.sql.SQLStore`):
keep one, find and count them by a filter, replay one into the queue, drop them."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, delete, func, insert, select

from sagas.events import Event
from sagas.store import rows
from sagas.store import schema as t
from sagas.store.dead_letters import DeadLetterFilter, Replay, Requeue, UnknownDeadLetterError
from sagas.store.dialect import notify
from sagas.store.records import DeadLetter

__all__ = ["SQLDeadLetters", "dead_letter_row"]

_BATCH = 500  # ids per DELETE: far below every database's limit of bound parameters


def dead_letter_row(letter: DeadLetter) -> dict[str, Any]:
    """The row of ``letter`` (its id is the database's)."""
    return {
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "saga_id": letter.saga_id,
        "payload": letter.payload,
        "reason": letter.reason,
        "created_at": letter.created_at,
        "source": letter.source,
        "attempts": letter.attempts,
        "encoding": letter.encoding,
    }


def _letter(row: Any) -> DeadLetter:
    return DeadLetter(
        reason=row.reason,
        payload=row.payload,
        event_id=row.event_id,
        event_type=row.event_type,
        saga_id=row.saga_id,
        created_at=row.created_at,
        id=row.id,
        source=row.source,
        attempts=row.attempts,
        encoding=row.encoding,
    )


def _filtered(query: Select[Any], where: DeadLetterFilter) -> Select[Any]:
    c = t.dead_letters.c
    if where.reason is not None:
        query = query.where(func.lower(c.reason).contains(where.reason.lower(), autoescape=True))
    if where.event_type is not None:
        query = query.where(c.event_type == where.event_type)
    if where.saga_id is not None:
        query = query.where(c.saga_id == where.saga_id)
    if where.source is not None:
        query = query.where(c.source == where.source)
    if where.since is not None:
        query = query.where(c.created_at >= where.since)
    if where.until is not None:
        query = query.where(c.created_at < where.until)
    return query


class SQLDeadLetters:
    """Dead letters on SQLAlchemy Core; the store provides its connections."""

    @abstractmethod
    def _read(self, doing: str) -> AbstractContextManager[Connection]: ...

    @abstractmethod
    def _write(self, doing: str) -> AbstractContextManager[Connection]: ...

    def record_dead_letter(self, letter: DeadLetter) -> int:
        """Keep ``letter`` (see :func:`~sagas.store.dead_letters.dead_letter_of`); its id."""
        with self._write("keeping a dead letter") as conn:
            result = conn.execute(insert(t.dead_letters).values(dead_letter_row(letter)))
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

    def find_dead_letters(
        self, where: DeadLetterFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """The dead letters ``where`` selects, the most recent first."""
        query = _filtered(select(t.dead_letters), where or DeadLetterFilter())
        query = query.order_by(t.dead_letters.c.id.desc()).limit(limit).offset(offset)
        with self._read("reading dead letters") as conn:
            return [_letter(row) for row in conn.execute(query)]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters first."""
        return self.find_dead_letters(limit=limit)

    def dead_letter_ids(self, where: DeadLetterFilter | None = None) -> list[int]:
        """The ids of every dead letter ``where`` selects, the most recent first."""
        query = _filtered(select(t.dead_letters.c.id), where or DeadLetterFilter())
        with self._read("reading dead letters") as conn:
            return list(conn.scalars(query.order_by(t.dead_letters.c.id.desc())))

    def count_dead_letters(self, where: DeadLetterFilter | None = None) -> int:
        """How many dead letters ``where`` selects."""
        query = _filtered(
            select(func.count()).select_from(t.dead_letters), where or DeadLetterFilter()
        )
        with self._read("counting dead letters") as conn:
            return int(conn.scalar(query) or 0)

    def dead_letter(self, letter_id: int) -> DeadLetter:
        """One dead letter.

        :raises UnknownDeadLetterError: when there is none with that id.
        """
        query = select(t.dead_letters).where(t.dead_letters.c.id == letter_id)
        with self._read("reading a dead letter") as conn:
            row = conn.execute(query).first()
        if row is None:
            raise UnknownDeadLetterError(letter_id)
        return _letter(row)

    def dead_letters_by_id(self, letter_ids: Collection[int]) -> dict[int, DeadLetter]:
        """Those of these dead letters that exist, by id."""
        found: dict[int, DeadLetter] = {}
        with self._read("reading dead letters") as conn:
            for batch in _batches(sorted(set(letter_ids))):
                query = select(t.dead_letters).where(t.dead_letters.c.id.in_(batch))
                found |= {row.id: _letter(row) for row in conn.execute(query)}
        return found

    def requeue_dead_letters(
        self, replays: Sequence[Replay], *, received_at: datetime, dry_run: bool = False
    ) -> list[Requeue]:
        """Queue each replay's event (checked again by the intake) and remove its dead letter,
        all in one transaction; ``dry_run`` only says what it would do. One fate each.

        A duplicate is an event an instance among the replay's ``saga_ids`` (the instances it
        concerns) has in its log, or one waiting in the queue (also one queued by an earlier
        replay of the same transaction): nothing is queued. An event the inbox knows as
        processed without any of them having decided it (it was dead-lettered then) is queued
        again, received at ``received_at``.
        """
        letters = t.dead_letters.c
        fates: list[Requeue] = []
        opened = (
            self._read("looking at dead letters")
            if dry_run
            else self._write("replaying dead letters")
        )
        with opened as conn:
            for replay in replays:
                exists = select(letters.id).where(letters.id == replay.letter_id)
                if conn.scalar(exists if dry_run else exists.with_for_update()) is None:
                    fates.append(Requeue.GONE)
                    continue
                fate = self._fate(conn, replay.event, replay.saga_ids)
                fates.append(fate)
                if dry_run:
                    continue
                if fate is Requeue.QUEUED:
                    event_id = replay.event.event_id
                    conn.execute(delete(t.inbox).where(t.inbox.c.event_id == event_id))
                    row = rows.inbox_row(replay.event, queued=True, received_at=received_at)
                    conn.execute(insert(t.inbox).values(row))
                conn.execute(delete(t.dead_letters).where(letters.id == replay.letter_id))
            if not dry_run and Requeue.QUEUED in fates:
                notify(conn)
        return fates

    def _fate(self, conn: Connection, event: Event, saga_ids: Collection[str]) -> Requeue:
        queued = conn.scalar(select(t.inbox.c.queued).where(t.inbox.c.event_id == event.event_id))
        if queued:
            return Requeue.DUPLICATE
        if queued is not None and saga_ids:
            # By the (saga_id, seq) index: only the logs of the instances it concerns.
            log = t.event_log.c
            decided = select(log.position).where(
                log.saga_id.in_(sorted(saga_ids)), log.event_id == event.event_id
            )
            if conn.scalar(decided.limit(1)) is not None:
                return Requeue.DUPLICATE
        return Requeue.QUEUED

    def drop_dead_letters(self, letter_ids: Collection[int]) -> set[int]:
        """Remove these dead letters; the ids of those that were there."""
        dropped: set[int] = set()
        letters = t.dead_letters.c
        with self._write("dropping dead letters") as conn:
            for batch in _batches(sorted(set(letter_ids))):
                statement = delete(t.dead_letters).where(letters.id.in_(batch))
                dropped.update(conn.scalars(statement.returning(letters.id)))
        return dropped


def _batches(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _BATCH):
        yield ids[start : start + _BATCH]
