"""Carrying out what a round committed to its outbox: deliver commands and events to their
subscribers, run handlers, and gather what that produced (the :class:`Carry`) for the next round
to decide and commit, together with the outbox rows it marks done."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sagas.clock import Clock
from sagas.engine.effects import InvokeHandler, OutboxEffect, PublishCommand
from sagas.engine.state import SagaState
from sagas.handlers import Handler
from sagas.observability.logs import saga_fields
from sagas.observability.observer import EngineObserver
from sagas.runtime import instrument
from sagas.runtime.bus import EventBus
from sagas.runtime.calls import Caller
from sagas.runtime.leases import LeaseKeeper
from sagas.runtime.relay import (
    Call,
    calls_for,
    error_text,
    handler_outcome,
    published_event,
    watch,
)
from sagas.store.records import DeadLetter, Received, outbox_key

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["Carry", "Relay", "carry_out"]

log = logging.getLogger("sagas.engine")


@dataclass
class Carry:
    """What the last relay produced, to be committed (and decided) by the next round: events
    with the times they were produced, the keys of the outbox rows carried out, dead letters."""

    events: list[Received] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.done or self.dead_letters)


@dataclass(frozen=True)
class Relay:
    """What carrying out effects needs from the engine."""

    bus: EventBus
    handlers: Mapping[str, Handler]
    caller: Caller
    clock: Clock
    leases: LeaseKeeper
    observers: Sequence[EngineObserver]


def carry_out(
    relay: Relay,
    outbox: Sequence[tuple[str, OutboxEffect]],
    states: Mapping[str, SagaState],
    tracer: Tracer | None,
) -> Carry:
    """Carry out ``outbox`` (handlers get the saga states of ``states``); what it produced.

    The rows are held (their leases renewed) from now until the round that marks them done
    commits: a slow handler is not run a second time by another worker.
    """
    carry = Carry()
    if not outbox:
        return carry
    calls: list[Call] = []
    for saga_id, effect in outbox:
        calls += calls_for(saga_id, effect, relay.bus, relay.handlers, states, relay.clock)
        carry.done.append(outbox_key(effect))
    relay.leases.hold(carry.done)
    if tracer is not None or relay.observers:
        for call in calls:
            watch(call, tracer)
    with relay.bus.collecting() as published:
        outcomes = relay.caller.run([call.fn for call in calls])
    carry.events += published
    if relay.observers:
        instrument.report_calls(relay.observers, calls, outcomes)
    at = relay.clock.now()
    for call, outcome in zip(calls, outcomes, strict=True):
        if isinstance(call.effect, InvokeHandler):
            ended = call.ended_at or at
            event = handler_outcome(call.saga_id, call.effect, outcome, ended)
            carry.events.append(Received(event, ended))
        elif outcome.error is not None:
            event = published_event(call.effect)
            step = call.effect.step if isinstance(call.effect, PublishCommand) else None
            log.error(
                "subscriber %s failed on %s: %s",
                call.label,
                event.event_id,
                error_text(outcome.error, log),
                extra=saga_fields(call.saga_id or event.saga_id, step, event.event_id),
            )
            carry.dead_letters.append(
                DeadLetter(
                    reason=f"subscriber {call.label} failed: {outcome.error!r}",
                    payload=event.to_json(),
                    event_id=event.event_id,
                    event_type=event.event_type,
                    saga_id=event.saga_id,
                    created_at=at,
                )
            )
    return carry
