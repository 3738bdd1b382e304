"""The ``Engine``: store + event bus + handlers + clock, and the worker loop that drives them.

A round (:meth:`Engine.run_once`) is ONE transaction:

* in: events queued in the database (published from outside), timers now due, runs of
  scheduled sagas now due, and the events the previous round's effects produced in this
  process (replies, handler outcomes);
* decide: route each event to its instances and ``decide``; then commit, together, the new
  states, log entries, outbox rows, timers, the processed event ids, and the outbox rows the
  previous round carried out;
* after the commit: carry out the new outbox rows (deliver commands and events to subscribers,
  run handlers); what they publish is decided in the next round.

A crash anywhere loses nothing: an outbox row is marked done only in the transaction that also
records what it produced, so after a restart it is carried out again (at least once; event ids
derived from idempotency keys make the repeats harmless), and queued events and due timers are
still in the database.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sagas.clock import Clock, SystemClock
from sagas.definitions.model import SagaDefinition
from sagas.engine.effects import DeliverEvent, InvokeHandler, OutboxEffect, PublishCommand
from sagas.engine.internal import TIMER_FIRED, timer_fired
from sagas.engine.state import SagaState
from sagas.errors import SagaError
from sagas.events import Event
from sagas.handlers import Handler, HandlerRegistry
from sagas.observability.logs import saga_fields
from sagas.observability.observer import EngineObserver
from sagas.runtime import instrument
from sagas.runtime.batch import Batch, Working
from sagas.runtime.bus import EventBus
from sagas.runtime.calls import Caller
from sagas.runtime.instrument import Instruments
from sagas.runtime.leases import LeaseKeeper
from sagas.runtime.relay import (
    Call,
    calls_for,
    error_text,
    handler_outcome,
    published_event,
    watch,
)
from sagas.runtime.routing import Router
from sagas.runtime.waker import Waker
from sagas.store.base import ConcurrencyConflictError, RoundTx, Store
from sagas.store.records import (
    DeadLetter,
    OutboxItem,
    QueuedEvent,
    Received,
    TimerRecord,
    outbox_key,
)

__all__ = ["Engine"]

log = logging.getLogger("sagas.engine")
STATE_CACHE_SIZE = 100_000
STOP_CHECK_INTERVAL = 0.5
"""The longest an idle worker sleeps before it looks at its stop flag again (seconds)."""
SHARED_CHECK_INTERVAL = 0.05
"""While a worker is busy with the events its own effects produced, how often it also looks for
queued events and due timers (seconds, by the monotonic clock and by the engine's: a timer due
in between is decided against those events at this granularity), unless told sooner."""


@dataclass
class _Carry:
    """What the last relay produced, to be committed (and decided) by the next round."""

    events: list[Received] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.done or self.dead_letters)


def _not_held_back(
    tx: RoundTx, due: list[TimerRecord], queued: Sequence[QueuedEvent]
) -> list[TimerRecord]:
    """The due timers this round may fire: none due at or after the receipt time of an event
    still queued that the round did not claim (left for a later round by ``batch_size``, or
    claimed by another worker). Such a timer stays in the table for a later round, which
    decides it after that event. Only asked when timers are due: one query."""
    waiting = tx.earliest_waiting([item.position for item in queued])
    if waiting is None:
        return due
    return [record for record in due if record.timer.due_at < waiting]


def _arrivals(fresh: Sequence[Received], queued: Sequence[QueuedEvent]) -> list[Received]:
    """Everything a round decides, in order of receipt: queued events at the time the engine
    queued them, fired timers at their due time, what the last relay produced at the time it
    produced it, scheduled starts at their fire time. At the same time events come before
    timers (a reply received when its timeout is due wins); otherwise the order stays (an
    instance's queued events by queue position)."""
    arrivals = [*fresh, *(Received(item.event, item.received_at) for item in queued)]
    arrivals.sort(key=_receipt_order)
    return arrivals


def _receipt_order(item: Received) -> tuple[datetime, bool]:
    return item.at, item.event.event_type == TIMER_FIRED


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector for the length of one round.

    A round allocates tens of thousands of short-lived objects while thousands of cached states
    stay alive; letting the collector run every 700 allocations made it a third of a round's
    cost. Rounds are bounded by ``batch_size``, and the collector runs as usual between them.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Engine:
    """Runs sagas: register definitions, publish events, and run the worker loop.

    ``batch_size`` bounds the events decided per round (one transaction); ``concurrency`` is
    how many handlers and subscribers run at once; ``lease`` is how long the effects a worker
    committed are its own to carry out before another worker takes them over (if it died, the
    effects are carried out again after at most this long). ``observers`` are told what each
    round did (see :class:`~sagas.observability.EngineObserver`).
    """

    def __init__(
        self,
        store: Store,
        *,
        handlers: Mapping[str, Handler] | None = None,
        clock: Clock | None = None,
        batch_size: int = 200,
        concurrency: int = 1,
        lease: timedelta = timedelta(seconds=10),
        observers: Sequence[EngineObserver] = (),
    ) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.handlers = HandlerRegistry(handlers)
        self.bus = EventBus(store, self.clock)
        self.batch_size = batch_size
        self.lease = lease
        self.on_finish: list[Callable[[SagaState], None]] = []
        """Called with the final state of every instance that ends, after the commit."""
        self.observers: list[EngineObserver] = list(observers)
        """Told what each round did, after its commit."""
        self._caller = Caller(concurrency)
        self._router = Router()
        self._definitions: dict[tuple[str, int], SagaDefinition] = {}
        self._states: OrderedDict[str, tuple[int, SagaState]] = OrderedDict()
        self._carry = _Carry()
        self._schedules: dict[str, tuple[SagaDefinition, datetime]] = {}
        self._noticed = True  # there may be queued events or due timers
        self._checked_at = 0.0
        self._looked_at: datetime | None = None  # by the engine's clock
        self._instruments = Instruments()  # looked up once per round
        self._leases = LeaseKeeper(store, self.clock, lease)
        self.bus.on_publish = self.notice

    # -- set-up -----------------------------------------------------------------------------

    def register(self, definition: SagaDefinition) -> SagaDefinition:
        """Register a definition; changed content becomes a new version, which new instances
        use while running instances stay on theirs. Returns the definition as stored."""
        version = self.store.register_definition(definition, self.clock.now())
        stored = definition.model_copy(update={"version": version})
        self._definitions[(stored.name, version)] = stored
        self._router.add(stored)
        self._schedules.pop(stored.name, None)
        if stored.schedule is not None:
            fired_until = self.store.start_schedule(stored.name, self.clock.now())
            self._schedules[stored.name] = (stored, fired_until)
        return stored

    def publish(self, event: Event) -> bool:
        """Queue ``event`` durably; a repeated ``eventId`` is ignored (returns ``False``)."""
        return self.bus.publish_event(event)

    # -- the loop ---------------------------------------------------------------------------

    def notice(self) -> None:
        """Tell the engine that events were queued or timers committed elsewhere: its next
        round looks at the queue and the timers even while busy with its own work."""
        self._noticed = True

    def run_once(self) -> int:
        """One round; returns how much work it did (0: idle)."""
        with _gc_paused():
            return self._round()

    def _round(self) -> int:
        now = self.clock.now()
        carry = self._carry
        self._instruments = Instruments.look()
        starts, fired_until = self._scheduled_starts(now)
        batch: Batch | None = None
        leftovers: list[OutboxItem] = []
        try:
            with self.store.round() as tx:
                looks = self._should_look(carry, now)
                if looks:
                    due = tx.due_timers(now, self.batch_size)
                    queued = tx.queued(self.batch_size)
                    if due:
                        claimed = len(due)
                        due = _not_held_back(tx, due, queued)
                        # Timers left (held back, or beyond the batch): look again next round.
                        self._noticed = len(due) < claimed or claimed == self.batch_size
                else:
                    due, queued = [], []
                if carry or due or queued or fired_until:
                    batch = self._decide_round(tx, now, carry, due, queued, starts)
                    changes = batch.changes
                    changes.outbox_done = carry.done
                    changes.dead_letters += carry.dead_letters
                    changes.schedules = fired_until
                    changes.lease_until = now + self.lease
                    changes.written_at = now
                    tx.apply(changes)
                if looks:
                    # Carry out what a worker that died left in the outbox once its lease ran
                    # out: when idle, and as often as it looks at the queue when busy (else a
                    # steady load would keep them waiting until their steps time out).
                    leftovers = tx.expired_outbox(now, now + self.lease, self.batch_size)
        except ConcurrencyConflictError:
            # Nothing was written; the carry stays, to be recorded by the next round. One
            # short line: the error's cause quotes the statement, with the saga's data in it.
            touched = sorted(batch.touched) if batch is not None else []
            log.warning(
                "round not committed: another worker changed one of its %d saga instances "
                "first (%s); retrying",
                len(touched),
                ", ".join(touched[:3]) + (", …" if len(touched) > 3 else ""),
            )
            self._states.clear()
            return 1
        self._leases.release(carry.done)
        taken = [(item.saga_id, item.effect) for item in leftovers]
        for item in leftovers:
            # Written by another process (a dead worker, an operator action): the cached state
            # may be older than the decision that asked for the effect.
            self._states.pop(item.saga_id, None)
        if batch is None:
            self._carry = self._relay(taken)
            return len(leftovers)
        for working in batch.touched.values():
            self._remember(working.state, working.version)
        for name, until in fired_until.items():
            self._schedules[name] = (self._schedules[name][0], until)
        for listener in self.on_finish:
            for state in batch.finished:
                listener(state)
        if batch.finished:
            instrument.log_finished(batch)
        if self.observers:
            instrument.report_round(self.observers, batch, due)
        self._carry = _Carry()
        self._carry = self._relay([*batch.outbox, *taken])
        work = len(batch.changes.log) + len(carry.done) + len(due) + len(fired_until)
        return work + len(leftovers) + 1

    def _should_look(self, carry: _Carry, now: datetime) -> bool:
        """Whether this round looks for queued events and due timers: always when it has no
        work of its own, else when told there are some or once every
        ``SHARED_CHECK_INTERVAL`` (two queries fewer for most rounds of a busy worker)."""
        clock = time.monotonic()
        if (
            carry
            and not self._noticed
            and clock - self._checked_at < SHARED_CHECK_INTERVAL
            and self._looked_at is not None
            and (now - self._looked_at).total_seconds() < SHARED_CHECK_INTERVAL
        ):
            return False
        self._noticed, self._checked_at, self._looked_at = False, clock, now
        return True

    def _decide_round(
        self,
        tx: RoundTx,
        now: datetime,
        carry: _Carry,
        due: Sequence[TimerRecord],
        queued: Sequence[QueuedEvent],
        starts: Sequence[Received],
    ) -> Batch:
        """Decide everything a round takes in — what the last relay produced, fired timers,
        scheduled starts and queued events — in order of receipt (see :func:`_arrivals`)."""
        fired = [
            Received(timer_fired(record.timer, record.saga_id, now), record.timer.due_at)
            for record in due
        ]
        fresh = self._unseen(tx, [*carry.events, *fired, *starts], queued)
        # One time for the whole round: each log entry records the time its decision was
        # made at, so replaying the log with those times rebuilds exactly the stored state.
        batch = Batch(now=now)
        self._decide_all(tx, batch, _arrivals(fresh, queued))
        changes = batch.close()
        changes.received = fresh
        changes.processed = [item.position for item in queued]
        changes.timers_removed += [record.timer.timer_id for record in due]
        return batch

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
        """Work until ``stop`` is set. When idle, sleep until APScheduler wakes the loop for
        the earliest timer or a scheduled saga, the database notifies that another process
        queued events or committed timers (PostgreSQL ``LISTEN``), or ``poll_interval`` s pass
        (how soon SQLite workers see other processes' events)."""
        waker = Waker(self.clock)
        waker.start(definition for definition, _ in self._schedules.values())

        def woken() -> None:
            self.notice()
            waker.wake()

        stop_listening = self.store.listen(woken)
        try:
            while not stop.is_set():
                if self.run_once():
                    continue
                waker.arm(self._next_wake())
                waker.wait(min(poll_interval, STOP_CHECK_INTERVAL))
        finally:
            if stop_listening is not None:
                stop_listening()
            waker.stop()

    def _next_wake(self) -> datetime | None:
        """The earliest due timer or scheduled run."""
        times = [self.store.next_due()]
        times += [
            d.schedule.next_fire(until) for d, until in self._schedules.values() if d.schedule
        ]
        return min((t for t in times if t is not None), default=None)

    def _scheduled_starts(self, now: datetime) -> tuple[list[Received], dict[str, datetime]]:
        """Trigger events of the scheduled runs due by ``now`` (received at their fire times),
        and how far each schedule got.

        The id of a run's event is derived from saga and time: workers that start the same run
        start one saga."""
        events: list[Received] = []
        fired_until: dict[str, datetime] = {}
        for name, (definition, until) in self._schedules.items():
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

    def close(self) -> None:
        """Stop renewing leases; release the store and the handlers' event loop."""
        self._leases.close()
        self._caller.close()
        self.store.close()

    # -- deciding ---------------------------------------------------------------------------

    def _decide_all(self, tx: RoundTx, batch: Batch, arrivals: Sequence[Received]) -> None:
        routed = [(item, *self._router.routes(item.event)) for item in arrivals]
        wanted = {route.saga_id for _, routes, _ in routed for route in routes}
        for saga_id, (version, state) in self._lock(tx, wanted).items():
            batch.working[saga_id] = Working(state, version, version)
            batch.before[saga_id] = state
        for item, routes, problems in routed:
            event = item.event
            if self.bus.subscribers(event.event_type):
                batch.changes.outbox.append(("", DeliverEvent(event=event)))
            for problem in problems:
                batch.dead_letter(event, problem)
            for route in routes:
                self._decide_one(batch, item, route.saga_id, route.starts)

    def _decide_one(
        self, batch: Batch, item: Received, saga_id: str, starts: SagaDefinition | None
    ) -> None:
        event = item.event
        working = batch.working.get(saga_id)
        now = batch.now
        if working is None:
            if starts is None:
                if event.saga_id is not None:
                    batch.dead_letter(event, f"no saga instance {saga_id!r}")
                return
            try:
                decision = self._instruments.decide(starts, None, event, now, saga_id)
            except SagaError as exc:
                batch.dead_letter(event, str(exc))
                return
            working = Working(decision.state, 1, None)
            batch.working[saga_id] = working
        else:
            state = working.state
            try:
                definition = self._definition(state.saga_name, state.definition_version)
            except LookupError as exc:
                batch.dead_letter(event, str(exc), saga_id)
                return
            decision = self._instruments.decide(definition, state, event, now, saga_id)
            working.state, working.version = decision.state, working.version + 1
        batch.record(event, working, decision, received_at=item.at)

    def _unseen(
        self, tx: RoundTx, events: Sequence[Received], queued: Sequence[QueuedEvent]
    ) -> list[Received]:
        """``events`` less those the inbox has, those queued now, and repeats among them."""
        known = tx.seen([item.event.event_id for item in events])
        known |= {item.event.event_id for item in queued}
        unseen = []
        for item in events:
            if item.event.event_id not in known:
                known.add(item.event.event_id)
                unseen.append(item)
        return unseen

    def _definition(self, name: str, version: int) -> SagaDefinition:
        key = (name, version)
        if key not in self._definitions:
            self._definitions[key] = self.store.definition(name, version)
        return self._definitions[key]

    def _lock(self, tx: RoundTx, saga_ids: set[str]) -> dict[str, tuple[int, SagaState]]:
        """Lock the stored instances among ``saga_ids`` for the round and read them: from this
        worker's cache of the states it committed where the version still matches, else from
        the store."""
        versions = tx.versions(saga_ids)
        found = {
            saga_id: self._states[saga_id]
            for saga_id, version in versions.items()
            if saga_id in self._states and self._states[saga_id][0] == version
        }
        missing = versions.keys() - found.keys()
        if missing:
            for saga_id, record in tx.instances(missing).items():
                found[saga_id] = (record.version, record.state)
        return found

    def _current(self, saga_ids: set[str]) -> dict[str, SagaState]:
        """The latest known states (cache, else store), for handler contexts."""
        found = {i: self._states[i][1] for i in saga_ids if i in self._states}
        missing = saga_ids - found.keys()
        if missing:
            for saga_id, record in self.store.instances(missing).items():
                found[saga_id] = record.state
        return found

    def _remember(self, state: SagaState, version: int) -> None:
        self._states[state.saga_id] = (version, state)
        self._states.move_to_end(state.saga_id)
        if len(self._states) > STATE_CACHE_SIZE:
            self._states.popitem(last=False)

    # -- carrying out effects ---------------------------------------------------------------

    def _relay(self, outbox: Sequence[tuple[str, OutboxEffect]]) -> _Carry:
        carry = _Carry()
        if not outbox:
            return carry
        invoked = {saga_id for saga_id, e in outbox if isinstance(e, InvokeHandler)}
        states = self._current(invoked)
        calls: list[Call] = []
        for saga_id, effect in outbox:
            calls += calls_for(saga_id, effect, self.bus, self.handlers, states, self.clock)
            carry.done.append(outbox_key(effect))
        # Renewed while carried out, until the round that marks them done commits: a slow
        # handler is not run a second time by another worker.
        self._leases.hold(carry.done)
        tracer, observers = self._instruments.tracer, self.observers
        if tracer is not None or observers:
            for call in calls:
                watch(call, tracer)
        with self.bus.collecting() as published:
            outcomes = self._caller.run([call.fn for call in calls])
        carry.events += published
        if observers:
            instrument.report_calls(self.observers, calls, outcomes)
        at = self.clock.now()
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
