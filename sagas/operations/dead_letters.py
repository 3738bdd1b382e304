"""Acting on dead letters: list and show them, replay them through the intake, drop them; one
at a time or every one a filter selects, with a report per message.

A replayed dead letter goes through the intake again (:class:`~sagas.intake.Intake`: size,
depth, strict JSON, schema, engine types), as if it had just come in:

* **queued**: accepted and queued (a worker decides it); the dead letter is removed;
* **duplicate**: an instance already decided this event, or it waits in the queue: nothing is
  queued, the dead letter is removed;
* **refused**: the intake refused it again (the reason says why); the dead letter stays.

``dry_run`` checks and reports the same way but writes nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sagas.clock import Clock, SystemClock
from sagas.definitions.durations import parse_duration
from sagas.definitions.model import SagaDefinition
from sagas.events import EventError
from sagas.intake import Intake
from sagas.runtime.routing import Router
from sagas.store.base import Store
from sagas.store.dead_letters import (
    DeadLetterFilter,
    Replay,
    Requeue,
    UnknownDeadLetterError,
)
from sagas.store.records import DeadLetter

__all__ = [
    "DeadLetters",
    "Fate",
    "LetterReport",
    "letter_to_dict",
    "parse_moment",
    "summary",
]

log = logging.getLogger("sagas.operations")

BULK_PAGE = 200
"""Dead letters replayed per transaction by a bulk replay."""


class Fate(StrEnum):
    """What replaying or dropping did to one dead letter."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    DROPPED = "dropped"
    NOT_FOUND = "not found"
    WOULD_QUEUE = "would queue"  # dry run
    WOULD_BE_DUPLICATE = "would be a duplicate"
    WOULD_DROP = "would drop"

    @property
    def removes(self) -> bool:
        """Whether the dead letter is gone after it (or would be, in a dry run)."""
        return self not in (Fate.REFUSED, Fate.NOT_FOUND)


@dataclass(frozen=True)
class LetterReport:
    """What happened to one dead letter, and why."""

    id: int
    fate: Fate
    note: str
    event_id: str | None = None
    event_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the CLI's ``--json`` and the HTTP API)."""
        return {
            "id": self.id,
            "fate": self.fate.value,
            "removed": self.fate.removes,
            "note": self.note,
            "eventId": self.event_id,
            "eventType": self.event_type,
        }


def summary(reports: Iterable[LetterReport]) -> dict[str, int]:
    """How many dead letters had each fate."""
    counts = Counter(report.fate for report in reports)
    return {fate.value: counts[fate] for fate in Fate if counts[fate]}


def letter_to_dict(letter: DeadLetter, *, payload: bool = True) -> dict[str, Any]:
    """A dead letter as JSON-ready data; ``payload``: with the message as received (text, or
    base64 as ``encoding`` says)."""
    document: dict[str, Any] = {
        "id": letter.id,
        "reason": letter.reason,
        "source": letter.source,
        "attempts": letter.attempts,
        "eventId": letter.event_id,
        "eventType": letter.event_type,
        "sagaId": letter.saga_id,
        "createdAt": letter.created_at.isoformat() if letter.created_at else None,
        "encoding": letter.encoding,
        "size": len(letter.raw),
    }
    if payload:
        document["payload"] = letter.payload
    return document


class DeadLetters:
    """Dead letters of one store, and what operators do with them.

    ``intake`` checks replayed messages (its limit is the engine's ``max_event_bytes``: raise
    it to replay a message refused as too large).
    """

    def __init__(self, store: Store, intake: Intake | None = None, clock: Clock | None = None):
        self.store = store
        self.intake = intake or Intake()
        self.clock: Clock = clock or SystemClock()
        self._router: Router | None = None

    def find(
        self, where: DeadLetterFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """The dead letters ``where`` selects, the most recent first."""
        return self.store.find_dead_letters(where, limit=limit, offset=offset)

    def count(self, where: DeadLetterFilter | None = None) -> int:
        """How many dead letters ``where`` selects."""
        return self.store.count_dead_letters(where)

    def show(self, letter_id: int) -> DeadLetter:
        """One dead letter.

        :raises UnknownDeadLetterError: when there is none with that id.
        """
        return self.store.dead_letter(letter_id)

    def select(self, where: DeadLetterFilter) -> list[int]:
        """The ids ``where`` selects now (a bulk action works on this selection)."""
        return self.store.dead_letter_ids(where)

    def replay(self, letter_id: int, *, dry_run: bool = False) -> LetterReport:
        """Replay one dead letter (see the module's documentation)."""
        [report] = self.replay_ids([letter_id], dry_run=dry_run)
        return report

    def replay_many(self, where: DeadLetterFilter, *, dry_run: bool = False) -> list[LetterReport]:
        """Replay every dead letter ``where`` selects now, oldest first; one report each."""
        return self.replay_ids(list(reversed(self.select(where))), dry_run=dry_run)

    def replay_ids(self, letter_ids: Sequence[int], *, dry_run: bool = False) -> list[LetterReport]:
        """Replay these dead letters in this order, a page per transaction; one report each."""
        reports: list[LetterReport] = []
        for start in range(0, len(letter_ids), BULK_PAGE):
            reports += self._replay_page(letter_ids[start : start + BULK_PAGE], dry_run)
        if not dry_run and reports:
            log.info("dead letters replayed: %s", summary(reports))
        return reports

    def _replay_page(self, letter_ids: Sequence[int], dry_run: bool) -> list[LetterReport]:
        found = self.store.dead_letters_by_id(letter_ids)
        reports: list[LetterReport | None] = [None] * len(letter_ids)
        pending: list[tuple[int, Replay]] = []  # (position in letter_ids, replay)
        for position, letter_id in enumerate(letter_ids):
            letter = found.get(letter_id)
            if letter is None:
                note = str(UnknownDeadLetterError(letter_id))
                reports[position] = LetterReport(letter_id, Fate.NOT_FOUND, note)
                continue
            try:
                event = self.intake.from_json(letter.raw)
            except EventError as exc:
                reports[position] = LetterReport(
                    letter_id, Fate.REFUSED, str(exc), letter.event_id, letter.event_type
                )
                continue
            saga_ids = {route.saga_id for route in self.router().routes(event)[0]}
            saga_ids |= {i for i in (letter.saga_id, event.saga_id) if i is not None}
            pending.append((position, Replay(letter_id, event, frozenset(saga_ids))))
        requeued = self.store.requeue_dead_letters(
            [replay for _, replay in pending], received_at=self.clock.now(), dry_run=dry_run
        )
        for (position, replay), requeue in zip(pending, requeued, strict=True):
            fate, note = _REQUEUED[requeue, dry_run]
            if requeue is Requeue.GONE:
                note = str(UnknownDeadLetterError(replay.letter_id))
            event = replay.event
            reports[position] = LetterReport(
                replay.letter_id, fate, note, event.event_id, event.event_type
            )
        return [report for report in reports if report is not None]

    def drop(self, letter_ids: Sequence[int], *, dry_run: bool = False) -> list[LetterReport]:
        """Drop these dead letters, a page per transaction; one report each."""
        reports: list[LetterReport] = []
        for start in range(0, len(letter_ids), BULK_PAGE):
            page = letter_ids[start : start + BULK_PAGE]
            found = self.store.dead_letters_by_id(page)
            dropped = set(found) if dry_run else self.store.drop_dead_letters(list(found))
            for letter_id in page:
                letter = found.get(letter_id)
                if letter is None or letter_id not in dropped:  # gone, or replayed meanwhile
                    note = str(UnknownDeadLetterError(letter_id))
                    reports.append(LetterReport(letter_id, Fate.NOT_FOUND, note))
                    continue
                fate = Fate.WOULD_DROP if dry_run else Fate.DROPPED
                reports.append(
                    LetterReport(letter_id, fate, letter.reason, letter.event_id, letter.event_type)
                )
        if not dry_run and reports:
            log.info("dead letters dropped: %s", summary(reports))
        return reports

    def drop_many(self, where: DeadLetterFilter, *, dry_run: bool = False) -> list[LetterReport]:
        """Drop every dead letter ``where`` selects now; one report each."""
        return self.drop(self.select(where), dry_run=dry_run)

    def router(self) -> Router:
        """Routes to the latest registered version of every saga (to find the instances a
        replayed event concerns, which tell a duplicate)."""
        if self._router is None:
            latest: dict[str, SagaDefinition] = {}
            for definition in self.store.definitions():
                latest[definition.name] = definition  # oldest first: the last one wins
            self._router = Router(latest.values())
        return self._router


_REQUEUED: dict[tuple[Requeue, bool], tuple[Fate, str]] = {
    (Requeue.QUEUED, False): (Fate.QUEUED, "queued again; the dead letter is removed"),
    (Requeue.QUEUED, True): (Fate.WOULD_QUEUE, "the intake accepts it: it would be queued"),
    (Requeue.DUPLICATE, False): (
        Fate.DUPLICATE,
        "already decided (or queued): nothing queued; the dead letter is removed",
    ),
    (Requeue.DUPLICATE, True): (
        Fate.WOULD_BE_DUPLICATE,
        "already decided (or queued): nothing would be queued",
    ),
    (Requeue.GONE, False): (Fate.NOT_FOUND, ""),
    (Requeue.GONE, True): (Fate.NOT_FOUND, ""),
}


def parse_moment(value: str, now: datetime) -> datetime:
    """``--since``/``--until``: an ISO 8601 time (UTC without an offset) or a duration before
    ``now`` (``2h``).

    :raises ValueError: saying what was expected.
    """
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither a time (2026-11-26T12:00) nor a duration before now (2h, 30m)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)
