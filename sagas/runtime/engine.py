"""The ``Engine``: store + event bus + handlers + clock, and the worker loop that drives them.

One round (:meth:`Engine.run_once`) does three things, each one transaction:

1. decide: take queued events, route them to instances, ``decide``, and commit new states, log
   entries, outbox rows and timers together (a group commit of the whole batch);
2. relay: carry out outbox rows (deliver commands and events to subscribers, run handlers) and
   commit what they produced (replies, handler outcomes) with the rows marked done;
3. timers: turn due timers into ``sagas.TimerFired`` events.

A crash anywhere loses nothing: uncommitted work is redone from the queue, the outbox or the
timers table on restart (at least once; ids and idempotency keys absorb the repeats).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sagas.clock import Clock, SystemClock
from sagas.definitions.model import SagaDefinition
from sagas.engine.decide import Decision, decide
from sagas.engine.effects import (
    CancelTimer,
    DeliverEvent,
    Finish,
    InvokeHandler,
    PublishCommand,
    ScheduleTimer,
)
from sagas.engine.internal import handler_failed, handler_succeeded, timer_fired
from sagas.engine.state import SagaState
from sagas.errors import SagaError
from sagas.events import Event
from sagas.handlers import Handler, HandlerRegistry, StepContext, StepFailed
from sagas.runtime.bus import EventBus
from sagas.runtime.calls import Caller, Outcome
from sagas.runtime.routing import Router
from sagas.store.base import ConcurrencyConflictError, Store
from sagas.store.records import (
    Changes,
    DeadLetter,
    InstanceRecord,
    LogEntry,
    OutboxItem,
    TimerRecord,
)

__all__ = ["Engine"]

log = logging.getLogger("sagas.engine")
A = TypeVar("A")


@dataclass
class _Working:
    """An instance while a batch is decided: its latest state and versions."""

    state: SagaState
    version: int
    stored_version: int | None  # None: created in this batch


@dataclass
class _Batch:
    changes: Changes = field(default_factory=Changes)
    working: dict[str, _Working] = field(default_factory=dict)
    timers: dict[str, TimerRecord] = field(default_factory=dict)
    finished: list[SagaState] = field(default_factory=list)


class Engine:
    """Runs sagas: register definitions, publish events, and run the worker loop.

    ``batch_size`` events are decided per transaction; ``concurrency`` handlers and subscribers
    run at once.
    """

    def __init__(
        self,
        store: Store,
        *,
        handlers: Mapping[str, Handler] | None = None,
        clock: Clock | None = None,
        batch_size: int = 200,
        concurrency: int = 1,
    ) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.handlers = HandlerRegistry(handlers)
        self.bus = EventBus(store, self.clock)
        self.batch_size = batch_size
        self._caller = Caller(concurrency)
        self._router = Router()
        self._definitions: dict[tuple[str, int], SagaDefinition] = {}
        self.on_finish: list[Callable[[SagaState], None]] = []
        """Called with the final state of every instance that ends, after the commit."""

    # -- set-up -----------------------------------------------------------------------------

    def register(self, definition: SagaDefinition) -> SagaDefinition:
        """Register a definition; changed content becomes a new version, which new instances
        use while running instances stay on theirs. Returns the definition as stored."""
        version = self.store.register_definition(definition, self.clock.now())
        stored = definition.model_copy(update={"version": version})
        self._definitions[(stored.name, version)] = stored
        self._router.add(stored)
        return stored

    def publish(self, event: Event) -> bool:
        """Queue ``event`` durably; a repeated ``eventId`` is ignored (returns ``False``)."""
        return self.bus.publish_event(event)

    # -- the loop ---------------------------------------------------------------------------

    def run_once(self) -> int:
        """One round of deciding, relaying and firing due timers; returns the work done."""
        return self._decide_queued() + self._relay_outbox() + self._fire_due_timers()

    def run_until_idle(self, max_rounds: int = 1_000_000) -> int:
        """Run rounds until nothing is queued, pending or due; returns the work done."""
        total = 0
        for _ in range(max_rounds):
            done = self.run_once()
            if not done:
                return total
            total += done
        raise SagaError(f"engine still busy after {max_rounds} rounds")

    def run(self, stop: threading.Event, poll_interval: float = 0.05) -> None:
        """Work until ``stop`` is set, sleeping up to ``poll_interval`` s (or until the next
        timer) when idle."""
        while not stop.is_set():
            if self.run_once():
                continue
            wait = poll_interval
            due = self.store.next_due()
            if due is not None:
                wait = max(0.0, min(wait, (due - self.clock.now()).total_seconds()))
            stop.wait(wait)

    def close(self) -> None:
        """Release the store and the handler event loop."""
        self._caller.close()
        self.store.close()

    # -- deciding ---------------------------------------------------------------------------

    def _decide_queued(self) -> int:
        queued = self.store.queued(self.batch_size)
        if not queued:
            return 0
        batch = _Batch()
        routed = [(item, *self._router.routes(item.event)) for item in queued]
        wanted = {route.saga_id for _, routes, _ in routed for route in routes}
        stored = self.store.instances(wanted)
        for saga_id, record in stored.items():
            batch.working[saga_id] = _Working(record.state, record.version, record.version)
        for item, routes, problems in routed:
            batch.changes.processed.append(item.position)
            event = item.event
            if self.bus.subscribers(event.event_type):
                batch.changes.outbox.append(("", DeliverEvent(event=event)))
            for problem in problems:
                self._dead_letter(batch, event, problem)
            for route in routes:
                self._decide_one(batch, event, route.saga_id, route.starts)
        batch.changes.timers = list(batch.timers.values())
        try:
            self.store.apply(batch.changes)
        except ConcurrencyConflictError as exc:
            log.warning("batch not committed, will be retried: %s", exc)
            return len(queued)
        for listener in self.on_finish:
            for state in batch.finished:
                listener(state)
        return len(queued)

    def _decide_one(
        self, batch: _Batch, event: Event, saga_id: str, starts: SagaDefinition | None
    ) -> None:
        working = batch.working.get(saga_id)
        now = self.clock.now()
        if working is None:
            if starts is None:
                if event.saga_id is not None:
                    self._dead_letter(batch, event, f"no saga instance {saga_id!r}")
                return
            try:
                decision = decide(starts, None, event, now)
            except SagaError as exc:
                self._dead_letter(batch, event, str(exc))
                return
            working = _Working(decision.state, 1, None)
            batch.working[saga_id] = working
        else:
            state = working.state
            try:
                definition = self._definition(state.saga_name, state.definition_version)
            except LookupError as exc:
                self._dead_letter(batch, event, str(exc), saga_id)
                return
            decision = decide(definition, state, event, now)
            working.state, working.version = decision.state, working.version + 1
        self._record(batch, event, working, decision)

    def _record(self, batch: _Batch, event: Event, working: _Working, decision: Decision) -> None:
        state = decision.state
        changes = batch.changes
        changes.log.append(
            LogEntry(
                saga_id=state.saga_id,
                seq=working.version,
                event=event,
                note=decision.note,
                effects=decision.effects,
                ignored=decision.ignored,
                recorded_at=self.clock.now(),
            )
        )
        for effect in decision.effects:
            match effect:
                case PublishCommand() | InvokeHandler():
                    changes.outbox.append((state.saga_id, effect))
                case ScheduleTimer():
                    batch.timers[effect.timer_id] = TimerRecord(state.saga_id, effect)
                case CancelTimer(timer_id=timer_id):
                    if batch.timers.pop(timer_id, None) is None:
                        changes.timers_removed.append(timer_id)
                case Finish():
                    batch.finished.append(state)
        record = InstanceRecord(state, working.version)
        changes.created = [r for r in changes.created if r.saga_id != state.saga_id]
        changes.updated = [(r, v) for r, v in changes.updated if r.saga_id != state.saga_id]
        if working.stored_version is None:
            changes.created.append(record)
        else:
            changes.updated.append((record, working.stored_version))

    def _definition(self, name: str, version: int) -> SagaDefinition:
        key = (name, version)
        if key not in self._definitions:
            self._definitions[key] = self.store.definition(name, version)
        return self._definitions[key]

    def _dead_letter(
        self, batch: _Batch, event: Event, reason: str, saga_id: str | None = None
    ) -> None:
        log.warning("dead letter: event %s (%s): %s", event.event_id, event.event_type, reason)
        batch.changes.dead_letters.append(
            DeadLetter(
                reason=reason,
                payload=event.to_json(),
                event_id=event.event_id,
                event_type=event.event_type,
                saga_id=saga_id or event.saga_id,
                created_at=self.clock.now(),
            )
        )

    # -- relaying ---------------------------------------------------------------------------

    def _relay_outbox(self) -> int:
        items = self.store.pending_outbox(self.batch_size)
        if not items:
            return 0
        changes = Changes(outbox_done=[item.id for item in items])
        invocations = [item for item in items if isinstance(item.effect, InvokeHandler)]
        states = self.store.instances({item.saga_id for item in invocations})
        calls: list[Callable[[], object]] = []
        labels: list[tuple[OutboxItem, str]] = []
        for item in items:
            for call, label in self._calls_for(item, states):
                calls.append(call)
                labels.append((item, label))
        with self.bus.collecting() as published:
            outcomes = self._caller.run(calls)
        changes.enqueue.extend(published)
        now = self.clock.now()
        for (item, label), outcome in zip(labels, outcomes, strict=True):
            effect = item.effect
            if isinstance(effect, InvokeHandler):
                changes.enqueue.append(self._handler_outcome(item.saga_id, effect, outcome, now))
            elif outcome.error is not None:
                event = effect.command if isinstance(effect, PublishCommand) else effect.event
                log.error("subscriber %s failed on %s: %r", label, event.event_id, outcome.error)
                changes.dead_letters.append(
                    DeadLetter(
                        reason=f"subscriber {label} failed: {outcome.error!r}",
                        payload=event.to_json(),
                        event_id=event.event_id,
                        event_type=event.event_type,
                        saga_id=event.saga_id,
                        created_at=now,
                    )
                )
        self.store.apply(changes)
        return len(items)

    def _calls_for(
        self, item: OutboxItem, states: Mapping[str, InstanceRecord]
    ) -> list[tuple[Callable[[], object], str]]:
        effect = item.effect
        if isinstance(effect, InvokeHandler):
            record = states.get(item.saga_id)
            state = record.state if record else None
            context = StepContext(
                saga_id=item.saga_id,
                saga_name=state.saga_name if state else "",
                step=effect.step,
                attempt=effect.attempt,
                data=dict(state.data) if state else {},
                idempotency_key=effect.idempotency_key,
                compensating=effect.compensating,
            )
            return [(_bind(self._handler(effect.handler), context), effect.handler)]
        event = effect.command if isinstance(effect, PublishCommand) else effect.event
        return [
            (_bind(subscriber, event), getattr(subscriber, "__qualname__", repr(subscriber)))
            for subscriber in self.bus.subscribers(event.event_type)
        ]

    def _handler(self, name: str) -> Handler:
        handler = self.handlers.get(name)
        if handler is None:

            def missing(_context: StepContext) -> None:
                raise StepFailed(f"no handler is registered as {name!r}")

            return missing
        return handler

    def _handler_outcome(
        self, saga_id: str, effect: InvokeHandler, outcome: Outcome, at: datetime
    ) -> Event:
        error = outcome.error
        if error is None:
            value = outcome.value
            if value is not None and not isinstance(value, Mapping):
                return handler_failed(
                    effect,
                    saga_id,
                    f"handler returned {type(value).__name__}, not a dict",
                    False,
                    at,
                )
            return handler_succeeded(effect, saga_id, dict(value or {}), at)
        log.info("handler %s of saga %s failed: %r", effect.handler, saga_id, error)
        return handler_failed(
            effect,
            saga_id,
            f"{type(error).__name__}: {error}",
            not isinstance(error, StepFailed),
            at,
        )

    # -- timers -----------------------------------------------------------------------------

    def _fire_due_timers(self) -> int:
        now = self.clock.now()
        due = self.store.due_timers(now, self.batch_size)
        if not due:
            return 0
        self.store.apply(
            Changes(
                enqueue=[timer_fired(record.timer, record.saga_id, now) for record in due],
                timers_removed=[record.timer.timer_id for record in due],
            )
        )
        return len(due)


def _bind(fn: Callable[[A], object], argument: A) -> Callable[[], object]:
    return lambda: fn(argument)
