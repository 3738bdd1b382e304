"""What the store keeps and returns: plain frozen records, free of SQL."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sagas.engine.effects import (
    DeliverEvent,
    Effect,
    InvokeHandler,
    OutboxEffect,
    PublishCommand,
    ScheduleTimer,
)
from sagas.engine.state import SagaState
from sagas.events import Event

__all__ = [
    "Backlog",
    "Changes",
    "DeadLetter",
    "InstanceRecord",
    "LogEntry",
    "OutboxItem",
    "QueuedEvent",
    "Received",
    "TimerRecord",
    "outbox_key",
]


@dataclass(frozen=True)
class InstanceRecord:
    """A saga instance as stored: its state and the version that guards concurrent updates."""

    state: SagaState
    version: int

    @property
    def saga_id(self) -> str:
        return self.state.saga_id


@dataclass(frozen=True)
class QueuedEvent:
    """An event waiting in the durable queue, at its global ``position``; ``received_at`` is
    when the engine received it (its intake time, not the sender's ``timestamp``)."""

    position: int
    event: Event
    received_at: datetime


class Received(NamedTuple):
    """An event a round decides without its having been queued (a handler's outcome, a fired
    timer, a scheduled start, an event published while effects were carried out), and when the
    engine received it: a round decides what it takes in in order of these times. (A tuple: a
    round makes thousands.)"""

    event: Event
    at: datetime


@dataclass(frozen=True)
class LogEntry:
    """One entry of an instance's append-only log: the event, what it did, and when.

    ``seq`` numbers the instance's entries from 1; ``position`` orders all entries of all
    instances (0 until stored). ``recorded_at`` is when the decision was made (``decide``'s
    ``now``), ``received_at`` when the engine received the event (``None`` in entries written
    before it was recorded).
    """

    saga_id: str
    seq: int
    event: Event
    note: str
    effects: tuple[Effect, ...]
    ignored: bool
    recorded_at: datetime
    position: int = 0
    received_at: datetime | None = None


def outbox_key(effect: OutboxEffect) -> str:
    """The idempotency key of an outbox effect (unique in the outbox)."""
    match effect:
        case PublishCommand(command=command):
            return command.event_id
        case DeliverEvent(event=event):
            return f"{event.event_id}/deliver"
        case InvokeHandler(idempotency_key=key):
            return key
    raise AssertionError(effect)


@dataclass(frozen=True)
class OutboxItem:
    """An effect to carry out after its decision committed (at least once)."""

    id: int
    saga_id: str
    effect: OutboxEffect


@dataclass(frozen=True)
class TimerRecord:
    """A persisted timer of an instance."""

    saga_id: str
    timer: ScheduleTimer


@dataclass(frozen=True)
class DeadLetter:
    """Input the engine could not use, kept with the reason (never silently dropped).

    ``payload`` is the message as received: text, or base64 when ``encoding`` is
    ``"base64"`` (bytes that are not UTF-8); :attr:`raw` gives the bytes either way.
    ``source`` says where it came from (``runtime``: the engine's own rounds; ``cli``,
    ``bus``, ``http`` or a transport's name), ``attempts`` how often it was delivered.
    """

    reason: str
    payload: str
    event_id: str | None = None
    event_type: str | None = None
    saga_id: str | None = None
    created_at: datetime | None = None
    id: int = 0
    source: str = "runtime"
    attempts: int = 1
    encoding: str = "text"

    @property
    def raw(self) -> bytes:
        """The message as received, as bytes."""
        if self.encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8", "surrogatepass")


@dataclass
class Changes:
    """Everything one transaction writes: the unit of a (group) commit.

    ``updated`` pairs each new record with the version it must still have in the store;
    ``received`` are events decided in this transaction without having been queued (their ids
    join the inbox as processed, with their receipt times); ``outbox_done`` holds outbox keys
    (:func:`outbox_key`); ``schedules`` moves a scheduled saga's ``fired_until`` forward; new
    outbox rows are leased to the writing worker until ``lease_until`` (``written_at``: the
    time of the decisions).
    """

    created: list[InstanceRecord] = field(default_factory=list)
    updated: list[tuple[InstanceRecord, int]] = field(default_factory=list)
    log: list[LogEntry] = field(default_factory=list)
    outbox: list[tuple[str, OutboxEffect]] = field(default_factory=list)
    outbox_done: list[str] = field(default_factory=list)
    timers: list[TimerRecord] = field(default_factory=list)
    timers_removed: list[str] = field(default_factory=list)
    processed: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    schedules: dict[str, datetime] = field(default_factory=dict)
    lease_until: datetime | None = None
    written_at: datetime | None = None


@dataclass(frozen=True)
class Backlog:
    """Work waiting in the database at one moment: queued events, outbox rows (``outbox_oldest``:
    when the oldest was written; ``outbox_expired``: leases run out, nobody carrying them out),
    timers (``timers_overdue`` due but not fired; ``overdue_since``: the earliest due time)."""

    queued: int
    outbox: int
    outbox_oldest: datetime | None
    outbox_expired: int
    timers: int
    timers_overdue: int
    overdue_since: datetime | None
