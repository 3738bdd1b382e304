"""The event bus: ``publish(event_type, data)`` / ``subscribe(event_type, handler)``.

The in-process bus is backed by the store: a published event is queued durably in the
database, and subscribers get events through the outbox after the decision that produced them
committed, at least once. A subscriber must therefore tolerate a repeated delivery; the
``eventId`` of a command is its idempotency key.
"""

from __future__ import annotations

import contextvars
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sagas.clock import Clock
from sagas.events import Event
from sagas.intake import Intake
from sagas.store.base import Store
from sagas.store.records import Received

__all__ = ["EventBus", "Subscriber"]

Subscriber = Callable[[Event], Awaitable[None] | None]
"""A sync or async callable that receives events of the types it subscribed to."""

_collecting: contextvars.ContextVar[list[Received] | None] = contextvars.ContextVar(
    "sagas_bus_collecting", default=None
)


class EventBus:
    """Publish/subscribe backed by the store's durable queue."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._subscribers: defaultdict[str, list[Subscriber]] = defaultdict(list)
        self.on_publish: Callable[[], None] | None = None
        """Called after an event was queued (the engine then looks at the queue soon)."""
        self.intake = Intake()
        """What checks every published event (its ``max_event_bytes`` is configurable)."""

    def subscribe(self, event_type: str, subscriber: Subscriber) -> None:
        """Call ``subscriber`` with every event of ``event_type`` (several may subscribe)."""
        self._subscribers[event_type].append(subscriber)

    def subscribers(self, event_type: str) -> list[Subscriber]:
        """The subscribers of ``event_type``."""
        return self._subscribers.get(event_type, [])

    def publish(self, event_type: str, data: dict[str, Any] | None = None, **meta: Any) -> Event:
        """Create an event stamped with the engine's clock and publish it.

        ``meta`` takes ``event_id``, ``correlation_id``, ``causation_id``, ``saga_id`` and
        ``schema_version``.
        """
        now = self._clock.now()
        event = Event.create(event_type, data, at=now, **meta)
        self._receive(event, now)
        return event

    def publish_event(self, event: Event) -> bool:
        """Publish a ready-made event; an ``eventId`` seen before is ignored.

        Published events come from outside the engine (a program, or a participant's
        subscriber): each goes through the :class:`~sagas.intake.Intake`, so one of the
        engine's own types (``sagas.…``), data that could not be kept or an event too large
        is refused, and nothing of it is written.

        :returns: whether the event was new (always ``True`` while a delivery is in progress:
            the event is then written with the delivery's own transaction).
        :raises EventError: when the intake refuses it.
        """
        return self._receive(event, self._clock.now())

    def _receive(self, event: Event, received_at: datetime) -> bool:
        """Take ``event``, received by the engine at ``received_at`` (its clock): races with
        timers are decided by this time."""
        self.intake.check(event)
        collected = _collecting.get()
        if collected is not None:
            collected.append(Received(event, received_at))
            return True
        new = self._store.enqueue([event], received_at=received_at) == 1
        if new and self.on_publish is not None:
            self.on_publish()
        return new

    def reply(self, command: Event, event_type: str, data: dict[str, Any] | None = None) -> Event:
        """Answer ``command`` with ``event_type``: the reply carries the command's saga id,
        correlation id and (as causation) its event id, and an id derived from them, so a
        repeated delivery of the command yields the same reply, deduplicated."""
        return self.publish(
            event_type,
            data,
            event_id=f"{command.event_id}/{event_type}",
            saga_id=command.saga_id,
            correlation_id=command.correlation_id,
            causation_id=command.event_id,
        )

    @contextmanager
    def collecting(self) -> Iterator[list[Received]]:
        """While active, published events are collected, each with the time it was published,
        instead of written: the runtime writes them in the same transaction that marks the
        delivery done."""
        events: list[Received] = []
        token = _collecting.set(events)
        try:
            yield events
        finally:
            _collecting.reset(token)
