"""What a round takes in, and in what order it decides it: by when the engine received each
event, so that races are decided by receipt time, not by the sender's clock nor by the order in
which a round happens to read queued events and due timers.

* a queued event counts from when the engine queued it (``QueuedEvent.received_at``);
* a fired timer from its due time;
* what the last relay produced (handler outcomes, events published by participants in process)
  from when it was produced;
* a scheduled start from its fire time.

At the same time, events come before timers: a reply received when its timeout is due wins.
And a round fires no timer while an event received at or before its due time still waits in the
queue unclaimed by the round (see :func:`not_held_back`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from operator import attrgetter

from sagas.definitions.model import SagaDefinition
from sagas.engine.internal import TIMER_FIRED
from sagas.events import Event
from sagas.store.base import RoundTx
from sagas.store.records import QueuedEvent, Received, TimerRecord

__all__ = ["in_receipt_order", "not_held_back", "scheduled_starts"]


def not_held_back(
    tx: RoundTx, due: list[TimerRecord], queued: Sequence[QueuedEvent]
) -> list[TimerRecord]:
    """The due timers this round may fire: none due at or after the receipt time of an event
    still queued that the round did not claim (left for a later round by its batch size, or
    claimed by another worker). Such a timer stays in the table; a later round decides it after
    that event. One query, asked only when timers are due."""
    waiting = tx.earliest_waiting([item.position for item in queued])
    if waiting is None:
        return due
    return [record for record in due if record.timer.due_at < waiting]


def in_receipt_order(fresh: Sequence[Received], queued: Sequence[QueuedEvent]) -> list[Received]:
    """``fresh`` (carried and scheduled events, then fired timers: they come last) and
    ``queued``, in order of receipt; at the same time events before timers, and otherwise the
    order stays (an instance's queued events by queue position)."""
    split = len(fresh)
    while split and fresh[split - 1].event.event_type == TIMER_FIRED:
        split -= 1
    arrivals = [*fresh[:split], *(Received(item.event, item.received_at) for item in queued)]
    arrivals += fresh[split:]
    arrivals.sort(key=_AT)  # stable: at the same time, the timers stay last
    return arrivals


_AT = attrgetter("at")


def scheduled_starts(
    schedules: Mapping[str, tuple[SagaDefinition, datetime]], now: datetime
) -> tuple[list[Received], dict[str, datetime]]:
    """Trigger events of the scheduled runs due by ``now`` (received at their fire times), and
    how far each schedule got (``schedules``: per saga name, its definition and the time up to
    which its runs were started).

    The id of a run's event is derived from saga and time: workers that start the same run
    start one saga."""
    events: list[Received] = []
    fired_until: dict[str, datetime] = {}
    for name, (definition, until) in schedules.items():
        schedule = definition.schedule
        if schedule is None or schedule.next_fire(until) > now:
            continue
        for fire in schedule.due_runs(until, now):
            event = Event.create(
                definition.trigger,
                schedule.trigger_data(fire),
                at=now,
                event_id=f"schedule/{name}/{fire.isoformat()}",
            )
            events.append(Received(event, fire))
        fired_until[name] = now
    return events, fired_until
