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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sagas.clock import Clock, SystemClock
from sagas.definitions.model import SagaDefinition
from sagas.engine.effects import DeliverEvent, InvokeHandler, OutboxEffect
from sagas.engine.internal import timer_fired
from sagas.engine.state import SagaState
from sagas.errors import SagaError
from sagas.events import Event
from sagas.handlers import Handler, HandlerRegistry
from sagas.observability.observer import EngineObserver
from sagas.runtime import instrument
from sagas.runtime.arrivals import in_receipt_order, not_held_back, scheduled_starts
from sagas.runtime.batch import Batch, Working
from sagas.runtime.bus import EventBus
from sagas.runtime.calls import Caller
from sagas.runtime.instrument import Instruments
from sagas.runtime.leases import LeaseKeeper
from sagas.runtime.outbox import Carry, Relay, carry_out
from sagas.runtime.routing import Router
from sagas.runtime.states import StateCache
from sagas.runtime.waker import Waker
from sagas.store.base import ConcurrencyConflictError, RoundTx, Store
from sagas.store.records import OutboxItem, QueuedEvent, Received, TimerRecord

__all__ = ["Engine"]

log = logging.getLogger("sagas.engine")
STOP_CHECK_INTERVAL = 0.5
"""The longest an idle worker sleeps before it looks at its stop flag again (seconds)."""
SHARED_CHECK_INTERVAL = 0.05
"""While a worker is busy with the events its own effects produced, how often it also looks for
queued events and due timers (seconds, by the monotonic clock and by the engine's: a timer due
in between is decided against those events at this granularity), unless told sooner."""


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
        self._states = StateCache()
        self._carry = Carry()
        self._schedules: dict[str, tuple[SagaDefinition, datetime]] = {}
        self._noticed = True  # there may be queued events or due timers
        self._checked_at = 0.0
        self._looked_at: datetime | None = None  # by the engine's clock
        self._instruments = Instruments()  # looked up once per round
        self._leases = LeaseKeeper(store, self.clock, lease)
        self._relay_with = Relay(
            self.bus, self.handlers, self._caller, self.clock, self._leases, self.observers
        )
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
        starts, fired_until = scheduled_starts(self._schedules, now)
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
                        due = not_held_back(tx, due, queued)
                        if len(due) < claimed or claimed == self.batch_size:
                            self.notice()  # timers left (held back, or beyond the batch)
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
            if touched:
                log.warning(
                    "round not committed: another worker changed one of its %d saga "
                    "instances first (%s); retrying",
                    len(touched),
                    ", ".join(touched[:3]) + (", …" if len(touched) > 3 else ""),
                )
            else:
                log.warning("round not committed: another worker was first; retrying")
            self._states.forget()
            return 1
        self._leases.release(carry.done)
        taken = [(item.saga_id, item.effect) for item in leftovers]
        for item in leftovers:
            # Written by another process (a dead worker, an operator action): the cached state
            # may be older than the decision that asked for the effect.
            self._states.forget(item.saga_id)
        if batch is None:
            self._carry = self._relay(taken)
            return len(leftovers)
        for working in batch.touched.values():
            self._states.remember(working.state, working.version)
        for name, until in fired_until.items():
            self._schedules[name] = (self._schedules[name][0], until)
        for listener in self.on_finish:
            for state in batch.finished:
                listener(state)
        if batch.finished:
            instrument.log_finished(batch)
        if self.observers:
            instrument.report_round(self.observers, batch, due)
        self._carry = Carry()
        self._carry = self._relay([*batch.outbox, *taken])
        work = len(batch.changes.log) + len(carry.done) + len(due) + len(fired_until)
        return work + len(leftovers) + 1

    def _should_look(self, carry: Carry, now: datetime) -> bool:
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
        carry: Carry,
        due: Sequence[TimerRecord],
        queued: Sequence[QueuedEvent],
        starts: Sequence[Received],
    ) -> Batch:
        """Decide everything a round takes in — what the last relay produced, fired timers,
        scheduled starts and queued events — in order of receipt (see
        :func:`~sagas.runtime.arrivals.in_receipt_order`)."""
        fired = [
            Received(timer_fired(record.timer, record.saga_id, now), record.timer.due_at)
            for record in due
        ]
        fresh = self._unseen(tx, [*carry.events, *starts, *fired], queued)
        # One time for the whole round: each log entry records the time its decision was
        # made at, so replaying the log with those times rebuilds exactly the stored state.
        batch = Batch(now=now)
        self._decide_all(tx, batch, in_receipt_order(fresh, queued))
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

    def close(self) -> None:
        """Stop renewing leases; release the store and the handlers' event loop."""
        self._leases.close()
        self._caller.close()
        self.store.close()

    # -- deciding ---------------------------------------------------------------------------

    def _decide_all(self, tx: RoundTx, batch: Batch, arrivals: Sequence[Received]) -> None:
        routed = [(item, *self._router.routes(item.event)) for item in arrivals]
        wanted = {route.saga_id for _, routes, _ in routed for route in routes}
        for saga_id, (version, state) in self._states.lock(tx, wanted).items():
            batch.working[saga_id] = Working(state, version, version)
            batch.before[saga_id] = state
        for item, routes, problems in routed:
            event = item.event
            subscribed = self.bus.subscribers(event.event_type)
            if subscribed:
                batch.changes.outbox.append(("", DeliverEvent(event=event)))
            elif not routes and not problems:
                problems = self._router.unknown(event)  # else silently nothing
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

    # -- carrying out effects ---------------------------------------------------------------

    def _relay(self, outbox: Sequence[tuple[str, OutboxEffect]]) -> Carry:
        invoked = {saga_id for saga_id, e in outbox if isinstance(e, InvokeHandler)}
        states = self._states.current(self.store, invoked) if invoked else {}
        return carry_out(self._relay_with, outbox, states, self._instruments.tracer)
