"""The promises of DESIGN.md, checked on random valid definitions and random event sequences.

Each example draws a saga definition (1-6 steps of every kind, ``after:`` edges to earlier steps
only, compensations where the graph rules ask for them, sometimes a pivot on every path,
retries, timeouts, ``when:`` conditions, a deadline), starts an instance and feeds it a random
mix of events: replies (also to old attempts and with foreign causation ids), handler outcomes,
fired timers (also cancelled or stale ones), awaited outside events, duplicates and unrelated
events. Then it *resolves everything*: what the instance waits for is answered, in a random
order, with successes (one answer may be a failure, and the deadline may fire) until it ends.

Every decision is checked as it is made (:meth:`Run.check`): ignored decisions change nothing;
after ``Finish`` every event is ignored but a late success of a step that may need its undo
again; no step starts once compensation began or the saga ended; compensation interrupts what
is in flight and runs one compensation at a time; an accepted answer concerns the try in flight
(or is such a late success); an accepted event delivered again is ignored; every command,
handler call and timer is asked for once, under its ``saga/step/attempt`` key. The tests check
what holds for a whole run, above all that nothing a participant may have done stays without its
undo when the saga ends compensated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagas.definitions import validate_definition
from sagas.definitions.model import Command, HandlerCall, SagaDefinition, Wait
from sagas.engine.decide import Decision, decide
from sagas.engine.effects import (
    CancelTimer,
    Effect,
    Finish,
    InvokeHandler,
    PublishCommand,
    ScheduleTimer,
    TimerKind,
)
from sagas.engine.internal import (
    HANDLER_FAILED,
    HANDLER_SUCCEEDED,
    TIMER_FIRED,
    handler_failed,
    handler_succeeded,
    timer_fired,
)
from sagas.engine.state import InstanceStatus, SagaState, StepStatus
from sagas.events import Event

T0 = datetime(2030, 1, 1, tzinfo=UTC)
RANDOM_EVENTS = 30
EVENT_KINDS = ("reply", "outcome", "timer", "reply", "outcome", "timer", "outside", "duplicate")
"""What happens next in the random part of a run (a list, so some come more often)."""
RESOLVE_LIMIT = 200
"""Enough for 6 steps, each with 3 tries and a compensation of 3 tries, with room to spare."""

# -- random definitions --------------------------------------------------------------------


def _retry(draw: st.DrawFn) -> dict[str, Any]:
    initial = draw(st.integers(1, 30))
    return {
        "attempts": draw(st.sampled_from([1, 2, 3])),
        "initial_delay": f"{initial}s",
        "factor": draw(st.sampled_from([1.0, 2.0, 3.0])),
        "max_delay": f"{initial * draw(st.integers(1, 4))}s",
        "jitter": draw(st.sampled_from([0.0, 0.1, 0.5])),
    }


def _action(
    draw: st.DrawFn, kind: str, name: str, undo: bool, shared_replies: bool
) -> dict[str, Any]:
    """One action of step ``name`` (``s<n>``) with its timing.

    Commands have replies of their own, or (``shared_replies``) all answer ``Done``/``Refused``
    and only the causation id tells the step. Waits have event types of their own: a wait has
    no causation id to tell two waits for one event type apart.
    """
    tag = f"Undo{name}" if undo else f"Do{name}"
    if kind == "handler":
        action: dict[str, Any] = {"handler": f"{'undo_' if undo else ''}{name}"}
    elif kind == "command":
        answered = draw(st.integers(0, 5)) > 0  # mostly awaits a reply, sometimes fire and forget
        success, failure = ("Done", "Refused") if shared_replies else (f"{tag}Ok", f"{tag}Failed")
        action = {
            "command": {
                "type": tag,
                "success": [success] if answered else [],
                "failure": [failure] if answered and draw(st.booleans()) else [],
            }
        }
        # Command data is the whole saga data, or a mapping that may fail on it (the flags
        # are booleans, which `length` refuses).
        flag = f"f{name.removeprefix('s')}"
        mapping = draw(st.sampled_from([None, None, None, flag, f"length({flag})"]))
        if mapping is not None:
            action["command"]["data"] = {"value": mapping}
    elif kind == "wait":
        action = {"wait": {"event": [f"{tag}Seen"], "failure": [f"{tag}Refused"]}}
    else:
        return {"delay": f"{draw(st.integers(1, 600))}s"}
    if draw(st.booleans()):
        action["timeout"] = f"{draw(st.integers(1, 120))}s"
    if draw(st.integers(0, 3)) > 0:
        action["retry"] = _retry(draw)
    return action


def _dependencies(draw: st.DrawFn, index: int, pivot: int | None) -> dict[str, Any]:
    """Random ``after:`` edges, to earlier steps only (so the graph has no cycle). The pivot
    waits for every earlier step and every later step waits for the pivot (or for a step that
    does), so the pivot is on every path."""
    if index == 0:
        return draw(st.sampled_from([{}, {"after": []}]))
    if pivot == index:
        return {"after": [f"s{earlier}" for earlier in range(index)]}
    if pivot is None or index < pivot:
        first, start_with = 0, set()
    else:
        first, start_with = pivot + 1, {pivot}
    mode = draw(st.sampled_from(["previous", "start", "some"]))
    if mode == "previous":
        return {}  # `after` left out: the step written before
    earlier = st.sampled_from(range(first, index)) if first < index else st.nothing()
    chosen = start_with | (draw(st.sets(earlier)) if mode == "some" else set())
    return {"after": [f"s{dependency}" for dependency in sorted(chosen)]}


@st.composite
def definitions(draw: st.DrawFn) -> SagaDefinition:
    """A valid saga definition, built through ``validate_definition`` like a YAML file."""
    count = draw(st.sampled_from(range(1, 7)))
    pivot = draw(st.none() | st.sampled_from(range(count)))
    shared_replies = draw(st.booleans())
    steps: list[dict[str, Any]] = []
    for index in range(count):
        name = f"s{index}"
        kind = draw(st.sampled_from(["handler", "command", "command", "wait", "delay"]))
        step: dict[str, Any] = {"name": name, **_action(draw, kind, name, False, shared_replies)}
        step.update(_dependencies(draw, index, pivot))
        if draw(st.integers(0, 4)) == 0:
            # The flags are booleans, so `length(...)` fails when the step is about to start.
            step["when"] = draw(st.sampled_from([f"f{index}", f"length(f{index}) > `0`"]))
        if index == pivot:
            step["pivot"] = True
        undoable = kind in ("handler", "command")
        before_pivot = pivot is None or index < pivot
        if before_pivot and (undoable or draw(st.booleans())):
            undo_kind = draw(st.sampled_from(["handler", "command"]))
            step["compensation"] = _action(draw, undo_kind, name, True, shared_replies)
        steps.append(step)
    raw: dict[str, Any] = {"name": "random", "trigger": "Go", "correlation": "id", "steps": steps}
    if draw(st.integers(0, 2)) > 0:
        raw["deadline"] = f"{draw(st.integers(10, 120))}m"
    return validate_definition(raw)


# -- one recorded run ----------------------------------------------------------------------


def check_compensation_runs_alone(state: SagaState) -> None:
    """Compensations run one at a time; compensation never waits for a step in flight (each
    was interrupted when it began), nor does a step start once it began."""
    undoing = [n for n, s in state.steps.items() if s.status == StepStatus.COMPENSATING]
    running = [n for n, s in state.steps.items() if s.status == StepStatus.RUNNING]
    pending = [n for n, s in state.steps.items() if s.status == StepStatus.PENDING]
    assert len(undoing) <= 1, undoing
    if undoing:
        assert state.status == InstanceStatus.COMPENSATING
    if state.status in (InstanceStatus.COMPENSATING, InstanceStatus.COMPENSATED):
        assert running == [], running
        assert pending == [], pending  # not_run: compensation cut the saga short


def _starts(
    effects: tuple[Effect, ...], compensating: bool
) -> list[PublishCommand | InvokeHandler]:
    """Effects that start an action (a command published, a handler invoked)."""
    return [
        e
        for e in effects
        if isinstance(e, PublishCommand | InvokeHandler) and e.compensating == compensating
    ]


def _attempt_of(effect: PublishCommand | InvokeHandler) -> int:
    if isinstance(effect, InvokeHandler):
        return effect.attempt
    return int(effect.command.event_id.rsplit("/", 1)[1])


@dataclass
class Run:
    """An instance fed event by event; every decision is checked as it is made."""

    definition: SagaDefinition
    flags: dict[str, bool]
    now: datetime = T0
    state: SagaState | None = None
    log: list[tuple[Event, datetime]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    published: list[PublishCommand] = field(default_factory=list)
    invoked: list[InvokeHandler] = field(default_factory=list)
    timers: list[ScheduleTimer] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)
    asked_for: set[str] = field(default_factory=set)
    accepted: set[str] = field(default_factory=set)
    finished: bool = False
    pivot_passed: bool = False
    late_successes: int = 0
    serial: int = 0

    @property
    def saga_id(self) -> str:
        assert self.state is not None
        return self.state.saga_id

    def start(self) -> None:
        trigger = Event.create("Go", {"id": "k-1", **self.flags}, at=self.now, event_id="go-1")
        self.deliver(trigger)

    def event(self, event_type: str, data: dict[str, Any], causation: str | None) -> Event:
        self.serial += 1
        return Event.create(
            event_type,
            data,
            at=self.now,
            event_id=f"ev-{self.serial}",
            causation_id=causation,
            saga_id=self.saga_id,
        )

    def deliver(self, event: Event) -> Decision:
        before = self.state
        decision = decide(self.definition, before, event, self.now)
        self.log.append((event, self.now))
        self.decisions.append(decision)
        self.check(before, event, decision)
        self.state = decision.state
        for effect in decision.effects:
            match effect:
                case PublishCommand():
                    self.published.append(effect)
                case InvokeHandler():
                    self.invoked.append(effect)
                case ScheduleTimer():
                    self.timers.append(effect)
                case CancelTimer():
                    self.cancelled.add(effect.timer_id)
        return decision

    def check(self, before: SagaState | None, event: Event, decision: Decision) -> None:
        after, effects = decision.state, decision.effects
        if decision.ignored:
            assert effects == (), decision.note
            assert after == before, decision.note
        late = "late success of step" in decision.note and not decision.ignored
        self.late_successes += late
        # After the decision that produced Finish, every event is ignored, but a late success
        # of a step that may have been done after its compensation: it is compensated (again).
        # A failed saga whose step after the pivot (or pivot) gave up with an unknown outcome
        # goes on when that step's success comes after all.
        forward = late and "was done after all" in decision.note
        if self.finished and not decision.ignored:
            assert late, f"{event.event_type} after the end: {decision.note}"
            assert before is not None
            if forward:
                assert before.status == InstanceStatus.FAILED, decision.note
            else:  # compensating again (or ended at once: a compensation that needs no
                # answer, or one that could not start)
                assert after.status not in (InstanceStatus.RUNNING, InstanceStatus.COMPLETED)
            self.finished = after.status.terminal
        finishes = [e for e in effects if isinstance(e, Finish)]
        if finishes:
            assert [effects[-1]] == finishes, "Finish comes once, as the last effect"
            assert finishes[0].status == after.status
            self.finished = True
        assert after.status.terminal == self.finished, decision.note
        # No step starts once the instance is compensating or has ended, nor after the
        # compensation began or the end came within this very decision.
        if before is not None and before.status != InstanceStatus.RUNNING and not forward:
            assert _starts(effects, compensating=False) == [], decision.note
        for position, effect in enumerate(effects):
            if isinstance(effect, Finish) or effect in _starts(effects, compensating=True):
                assert _starts(effects[position:], compensating=False) == [], decision.note
        self.check_ids(after, effects)
        check_compensation_runs_alone(after)
        self.check_pivot(after, effects)
        if before is not None and not decision.ignored and not late:
            self.check_answers_the_current_attempt(before, event)
        # The same event delivered again changes nothing. decide keeps no record of event ids
        # (the runtime's inbox does), so this rests on the state alone: an accepted event moves
        # what it concerns on (a step to its next status or attempt, a timer past its attempt,
        # the instance to compensating or an end), so the very same event finds nothing that
        # waits for it. The formulation the semantics guarantee is therefore the strong one: the
        # second delivery is *ignored* (no effects, the state as it was), not merely "leaves the
        # state equal". Checked right after the first delivery, and for any later redelivery.
        if not decision.ignored:
            assert event.event_id not in self.accepted, f"accepted twice: {decision.note}"
            self.accepted.add(event.event_id)
            again = decide(self.definition, after, event, self.now)
            assert again.ignored, f"{event.event_type} twice: {again.note}"
            assert again.effects == ()
            assert again.state == after

    def check_pivot(self, after: SagaState, effects: tuple[Effect, ...]) -> None:
        """Once the pivot is passed nothing is compensated: the saga can only go forward."""
        pivot = next((step.name for step in self.definition.steps if step.pivot), None)
        if pivot is not None and not self.pivot_passed:
            status = after.steps[pivot].status
            # Passed: it succeeded, or its `when:` skipped it (the steps after it start). A wait
            # or delay pivot cut short by compensation is skipped too, but not passed.
            going = after.status in (InstanceStatus.RUNNING, InstanceStatus.COMPLETED)
            skipped = status == StepStatus.SKIPPED and going
            self.pivot_passed = status == StepStatus.SUCCEEDED or skipped
        if self.pivot_passed:
            assert _starts(effects, compensating=True) == [], "compensating past the pivot"
            assert after.status != InstanceStatus.COMPENSATING, "compensating past the pivot"

    def check_answers_the_current_attempt(self, before: SagaState, event: Event) -> None:
        """An accepted reply, handler outcome or step timer concerns the try in flight: late
        answers to earlier tries, and timers of earlier tries, change nothing."""
        data = event.data
        if event.event_type in (HANDLER_SUCCEEDED, HANDLER_FAILED, TIMER_FIRED):
            if data.get("kind") == TimerKind.DEADLINE:
                return
            step = before.steps[data["step"]]
            undo = data["compensating"]
            assert step.status == (StepStatus.COMPENSATING if undo else StepStatus.RUNNING)
            current = step.undo_attempt if undo else step.attempt
            if data.get("kind") == TimerKind.RETRY:
                assert step.retry_due is not None
                assert data["attempt"] == current + 1
            else:
                assert step.retry_due is None
                assert data["attempt"] == current
        elif event.causation_id is not None:  # a reply to a command
            in_flight = {
                f"{before.saga_id}/{name}/{'undo/' if undo else ''}{attempt}"
                for name, step in before.steps.items()
                if step.retry_due is None
                for undo, attempt, status in (
                    (False, step.attempt, StepStatus.RUNNING),
                    (True, step.undo_attempt, StepStatus.COMPENSATING),
                )
                if step.status == status
            }
            assert event.causation_id in in_flight, f"accepted a late reply: {event}"

    def check_ids(self, state: SagaState, effects: tuple[Effect, ...]) -> None:
        """Commands and handler calls carry ``saga/step/attempt`` keys; each is asked for once."""
        for effect in effects:
            if isinstance(effect, PublishCommand):
                key = effect.command.event_id
                assert effect.command.saga_id == state.saga_id
                assert effect.command.correlation_id == state.correlation_key
                step, undo = effect.step, effect.compensating
            elif isinstance(effect, InvokeHandler):
                key, step, undo = effect.idempotency_key, effect.step, effect.compensating
            elif isinstance(effect, ScheduleTimer):
                assert effect.timer_id not in self.asked_for, f"{effect.timer_id} twice"
                self.asked_for.add(effect.timer_id)
                continue
            else:
                continue
            attempt = _attempt_of(effect)
            assert key == f"{state.saga_id}/{step}/{'undo/' if undo else ''}{attempt}"
            assert key not in self.asked_for, f"{key} started twice"
            self.asked_for.add(key)

    # -- what can happen next ----------------------------------------------------------------

    def replies(self) -> list[Event]:
        """Every reply a participant could send to any command published so far."""
        events = []
        for published in self.published:
            spec = self.definition.step(published.step)
            action = spec.compensation if published.compensating else spec
            assert action is not None
            command = action.action
            assert isinstance(command, Command)
            key = published.command.event_id
            for reply in (*command.success, *command.failure):
                data = {f"out_{published.step}": key}
                events.append(self.event(reply, data, key))
                events.append(self.event(reply, data, "someone-else/1"))
        return events

    def outcomes(self) -> list[Event]:
        """Every outcome a handler invoked so far could have."""
        events = []
        for invoked in self.invoked:
            result = {f"out_{invoked.step}": invoked.idempotency_key}
            events.append(handler_succeeded(invoked, self.saga_id, result, self.now))
            for retryable in (True, False):
                error = f"{invoked.handler} broke"
                events.append(handler_failed(invoked, self.saga_id, error, retryable, self.now))
        return events

    def outside_events(self) -> list[Event]:
        """Events of the waits of the definition, and events nobody waits for."""
        events = [self.event("Unrelated", {}, None)]
        events.append(Event.create("Go", {"id": "k-1"}, at=self.now, event_id="go-again"))
        for step in self.definition.steps:
            action = step.action
            if isinstance(action, Wait):
                for event_type in (*action.event, *action.failure):
                    events.append(self.event(event_type, {f"out_{step.name}": 1}, None))
        return events

    def fire(self, timer: ScheduleTimer) -> Decision:
        self.now = max(self.now, timer.due_at)
        return self.deliver(timer_fired(timer, self.saga_id, self.now))

    # -- resolving everything ------------------------------------------------------------------

    def timer(self, timer_id: str) -> ScheduleTimer:
        """A timer the instance scheduled and did not cancel (the instance counts on it)."""
        matching = [t for t in self.timers if t.timer_id == timer_id]
        assert matching, f"the instance waits for timer {timer_id}, never scheduled"
        assert timer_id not in self.cancelled, f"the instance waits for cancelled {timer_id}"
        return matching[-1]

    def waiting(self) -> list[str]:
        """The steps whose action (or compensation) is in flight or waits for its retry."""
        assert self.state is not None
        busy = (StepStatus.RUNNING, StepStatus.COMPENSATING)
        return [name for name, step in self.state.steps.items() if step.status in busy]

    def answer(self, name: str, fail: bool) -> None:
        """Answer what step ``name`` waits for: a success, or with ``fail`` a failure (a
        delay, or an action that has no failure reply, still succeeds)."""
        state = self.state
        assert state is not None
        step_state = state.steps[name]
        undo = step_state.status == StepStatus.COMPENSATING
        spec = self.definition.step(name)
        action = spec.compensation.action if undo and spec.compensation else spec.action
        attempt = step_state.undo_attempt if undo else step_state.attempt
        key = f"{state.saga_id}/{name}/{'undo/' if undo else ''}{attempt}"
        if step_state.retry_due is not None:
            retry = f"{state.saga_id}/{name}/{'undo/' if undo else ''}{attempt + 1}/retry"
            decision = self.fire(self.timer(retry))
        elif isinstance(action, Command):
            assert key in {p.command.event_id for p in self.published}, f"{key} unpublished"
            reply = action.failure[0] if fail and action.failure else action.success[0]
            decision = self.deliver(self.event(reply, {}, key))
        elif isinstance(action, HandlerCall):
            [invoked] = [i for i in self.invoked if i.idempotency_key == key]
            if fail:
                outcome = handler_failed(invoked, state.saga_id, "no", False, self.now)
            else:
                outcome = handler_succeeded(invoked, state.saga_id, {}, self.now)
            decision = self.deliver(outcome)
        elif isinstance(action, Wait):
            decision = self.deliver(
                self.event((action.failure if fail else action.event)[0], {}, None)
            )
        else:
            decision = self.fire(self.timer(f"{key}/{TimerKind.DELAY.value}"))
        # What the instance waits for is never turned away, whatever else is in flight.
        assert not decision.ignored, decision.note

    def resolve_everything(self, data: st.DataObject) -> None:
        """Answer what the instance waits for, in a random order, until it ends.

        To reach compensation after some progress, one answer (drawn) may be a failure, and
        the saga deadline (when it has one, still set) may fire after a drawn number of them.
        """
        fail_at = data.draw(st.none() | st.sampled_from(range(12)), label="fail at")
        deadline_at = data.draw(st.none() | st.sampled_from(range(12)), label="deadline at")
        for count in range(RESOLVE_LIMIT):
            assert self.state is not None
            if self.state.status.terminal:
                return
            self.now += timedelta(seconds=1)
            deadline = [t for t in self.timers if t.kind == TimerKind.DEADLINE]
            if count == deadline_at and deadline and deadline[0].timer_id not in self.cancelled:
                self.fire(deadline[0])
                continue
            waiting = self.waiting()
            assert waiting, f"instance is {self.state.status.value} but waits for nothing"
            self.answer(data.draw(st.sampled_from(waiting)), fail=count == fail_at)
        assert self.state is not None
        raise AssertionError(f"still {self.state.status.value} after {RESOLVE_LIMIT} answers")


def play(data: st.DataObject, definition: SagaDefinition, events: int) -> Run:
    """Start an instance, feed it ``events`` random events, then resolve everything."""
    flags = {f"f{index}": data.draw(st.booleans()) for index in range(len(definition.steps))}
    run = Run(definition, flags)
    run.start()
    for _ in range(events):
        run.now += timedelta(seconds=data.draw(st.integers(0, 90)))
        choice = data.draw(st.sampled_from(EVENT_KINDS), label="kind")
        if choice == "timer" and run.timers:
            run.fire(data.draw(st.sampled_from(run.timers)))
            continue
        if choice == "duplicate":
            earlier = [event for event, _ in run.log[1:]]
            if earlier:
                run.deliver(data.draw(st.sampled_from(earlier)))
            continue
        candidates = {
            "reply": run.replies,
            "outcome": run.outcomes,
            "outside": run.outside_events,
        }.get(choice, run.outside_events)()
        # The inbox drops an event whose id was taken (a failure and a success of one handler
        # call share the outcome's id): decide never sees it. Exact repeats come as "duplicate".
        candidates = [event for event in candidates if event.event_id not in run.accepted]
        if candidates:
            run.deliver(data.draw(st.sampled_from(candidates)))
    run.resolve_everything(data)
    # Late answers after the end: replies and handler outcomes of every try, in any order. A
    # success of a step whose outcome was unknown sends it back to be compensated (again).
    late = [
        event
        for event in (*run.replies(), *run.outcomes())
        if event.event_type not in (HANDLER_FAILED, "Refused")
        and "Failed" not in event.event_type
        and event.event_id not in run.accepted
    ]
    for event in data.draw(st.lists(st.sampled_from(late), max_size=6) if late else st.just([])):
        if event.event_id in run.accepted:
            continue  # dropped by the inbox
        run.now += timedelta(seconds=1)
        run.deliver(event)
        run.resolve_everything(data)
    return run


# -- the promises --------------------------------------------------------------------------

# The number of events is drawn first, on its own: drawn after the definition, Hypothesis
# mostly tries very short runs.
RUNS = given(events=st.integers(0, RANDOM_EVENTS), definition=definitions(), data=st.data())
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@RUNS
def test_every_started_saga_reaches_a_terminal_state(
    events: int, definition: SagaDefinition, data: st.DataObject
) -> None:
    run = play(data, definition, events)

    assert run.state is not None
    assert run.state.status.terminal
    assert run.finished


@SETTINGS
@RUNS
def test_compensations_start_for_the_completed_steps_in_reverse_order_of_completion(
    events: int, definition: SagaDefinition, data: st.DataObject
) -> None:
    run = play(data, definition, events)
    final = run.state
    assert final is not None

    # `completed` lists each step that succeeded or was given up with an unknown outcome, in
    # that order (once, unless a late success sent it back to be compensated again).
    after_success = (StepStatus.SUCCEEDED, StepStatus.COMPENSATING, StepStatus.COMPENSATED)
    maybe_done = {
        name
        for decision in run.decisions
        for name, step in decision.state.steps.items()
        if step.status in after_success
        or (step.outcome_unknown and not definition.step(name).pivot)
    }
    assert maybe_done <= set(final.completed)
    if not run.late_successes:
        assert len(set(final.completed)) == len(final.completed)
    for name in final.completed:
        step = final.steps[name]
        if step.status in (StepStatus.FAILED, StepStatus.INTERRUPTED) and step.undo_attempt == 0:
            assert step.outcome_unknown, name  # given up without knowing whether it was done
        elif step.status == StepStatus.FAILED:  # its compensation gave up
            assert final.reason is not None
            assert final.reason.startswith(f"compensation of {name!r} gave up"), final.reason
        else:
            assert step.status in after_success

    started = [
        effect.step
        for decision in run.decisions
        for effect in _starts(decision.effects, compensating=True)
        if _attempt_of(effect) == 1
    ]
    undoable = [name for name in final.completed if definition.step(name).compensation]
    expected = list(reversed(undoable))
    if final.status == InstanceStatus.COMPLETED:
        assert started == []
    elif final.status == InstanceStatus.COMPENSATED:
        # Nothing a participant may have done stays without its undo.
        for name, step in final.steps.items():
            assert (step.status == StepStatus.COMPENSATED) == (name in undoable), name
        if not run.late_successes:
            assert started == expected
    elif not run.late_successes:  # failed: a compensation gave up (the rest wait for an
        # operator), or a step after the pivot gave up (nothing is compensated)
        assert started == expected[: len(started)]


@SETTINGS
@RUNS
def test_a_saga_past_its_pivot_completes_or_fails_but_is_never_compensated(
    events: int, definition: SagaDefinition, data: st.DataObject
) -> None:
    # Run.check_pivot checks each decision; this checks how such a saga ends.
    run = play(data, definition, events)

    assert run.state is not None
    if run.pivot_passed:
        assert run.state.status in (InstanceStatus.COMPLETED, InstanceStatus.FAILED)
    elif any(step.pivot for step in definition.steps):
        assert run.state.status != InstanceStatus.COMPLETED  # completing passes the pivot


@SETTINGS
@RUNS
def test_replaying_the_log_rebuilds_the_same_state_and_effects(
    events: int, definition: SagaDefinition, data: st.DataObject
) -> None:
    # decide is deterministic, retry jitter included: the log alone rebuilds the instance.
    run = play(data, definition, events)

    state: SagaState | None = None
    for (event, at), recorded in zip(run.log, run.decisions, strict=True):
        replayed = decide(definition, state, event, at)
        assert replayed == recorded
        state = replayed.state
    assert state == run.state


@st.composite
def forks(draw: st.DrawFn) -> SagaDefinition:
    """2-4 steps that start together and answer the same reply types, joined by a last step."""
    width = draw(st.sampled_from([2, 3, 4]))
    branches: list[dict[str, Any]] = []
    for index in range(width):
        name = f"b{index}"
        action: dict[str, Any] = draw(
            st.sampled_from(
                [
                    {"handler": name},
                    {"command": {"type": f"Do{name}", "success": "Done", "failure": "Refused"}},
                ]
            )
        )
        undo = {"command": {"type": f"Undo{name}", "success": "Done"}}
        branches.append({"name": name, "after": [], **action, "compensation": undo})
    join = {
        "name": "join",
        "after": [branch["name"] for branch in branches],
        "pivot": True,
        "command": {"type": "Join", "success": "Done"},
    }
    raw = {"name": "fork", "trigger": "Go", "correlation": "id", "steps": [*branches, join]}
    return validate_definition(raw)


@settings(max_examples=100, deadline=None)
@given(definition=forks(), data=st.data())
def test_parallel_steps_join_whatever_order_their_answers_come_in(
    definition: SagaDefinition, data: st.DataObject
) -> None:
    run = Run(definition, flags={})
    run.start()
    branches = [step.name for step in definition.steps if step.name != "join"]
    assert set(run.waiting()) == set(branches)  # the fork: all start with the saga

    for name in data.draw(st.permutations(branches)):
        assert run.state is not None
        assert run.state.steps["join"].status == StepStatus.PENDING
        run.answer(name, fail=False)  # asserts the answer is not turned away
    assert run.waiting() == ["join"]  # the join starts once all are done
    run.answer("join", fail=False)
    assert run.state is not None
    assert run.state.status == InstanceStatus.COMPLETED
