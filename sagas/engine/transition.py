"""Applying one event to one saga instance: the rules of :mod:`sagas.engine.decide`, step by
step, on a working copy of the instance."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import networkx as nx

from sagas.definitions.durations import format_duration
from sagas.definitions.expressions import ExpressionError, evaluate, is_truthy
from sagas.definitions.graph import step_graph
from sagas.definitions.model import ActionSpec, Command, Delay, HandlerCall, SagaDefinition, Wait
from sagas.engine.decision import Decision
from sagas.engine.effects import (
    CancelTimer,
    Effect,
    Finish,
    InvokeHandler,
    PublishCommand,
    ScheduleTimer,
    TimerKind,
)
from sagas.engine.internal import HANDLER_FAILED, HANDLER_SUCCEEDED, TIMER_FIRED
from sagas.engine.state import InstanceStatus, SagaState, StepStatus
from sagas.events import Event

__all__ = ["Transition", "after_pivot"]

_DONE = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


class Transition:
    """A working copy of one instance while one event is applied to it."""

    def __init__(
        self, definition: SagaDefinition, state: SagaState, event: Event, now: datetime
    ) -> None:
        self.definition, self.original, self.event, self.now = definition, state, event, now
        self.status = state.status
        self.reason = state.reason
        self.interrupted = state.interrupted
        self.data = dict(state.data)
        self.steps = dict(state.steps)
        self.completed = list(state.completed)
        self.effects: list[Effect] = []
        self.notes: list[str] = []

    # -- entry ----------------------------------------------------------------------------

    def run(self) -> Decision:
        if self.status.terminal:
            return self.ignore(f"saga already {self.status.value}")
        kind = self.event.event_type
        if kind in (HANDLER_SUCCEEDED, HANDLER_FAILED):
            return self.on_handler_outcome()
        if kind == TIMER_FIRED:
            return self.on_timer()
        if kind == self.definition.trigger and self.event.saga_id is None:
            return self.ignore("saga already started for this correlation key")
        return self.on_message()

    def finish(self) -> Decision:
        self.advance()
        state = self.original.model_copy(
            update={
                "status": self.status,
                "reason": self.reason,
                "interrupted": self.interrupted,
                "data": self.data,
                "steps": self.steps,
                "completed": tuple(self.completed),
                "updated_at": self.now,
            }
        )
        return Decision(state, tuple(self.effects), "; ".join(self.notes))

    def ignore(self, why: str) -> Decision:
        return Decision(self.original, (), f"ignored: {why}", ignored=True)

    # -- inputs ---------------------------------------------------------------------------

    def on_handler_outcome(self) -> Decision:
        data = self.event.data
        name, attempt, undo = data.get("step"), data.get("attempt"), bool(data.get("compensating"))
        if not isinstance(name, str) or name not in self.steps or not self.awaits(name, undo):
            return self.ignore(f"no handler of step {name!r} is running")
        if attempt != self.attempt_of(name, undo):
            return self.ignore(f"outcome of attempt {attempt}, step {name!r} is past it")
        if self.event.event_type == HANDLER_SUCCEEDED:
            result = data.get("result")
            self.succeed(name, undo, result if isinstance(result, dict) else {})
        else:
            error = str(data.get("error") or "handler failed")
            self.fail(name, undo, error, retryable=bool(data.get("retryable", True)))
        return self.finish()

    def on_timer(self) -> Decision:
        data = self.event.data
        kind, name = data.get("kind"), data.get("step")
        attempt, undo = data.get("attempt"), bool(data.get("compensating"))
        if kind == TimerKind.DEADLINE:
            return self.on_deadline()
        if not isinstance(name, str) or name not in self.steps:
            return self.ignore(f"timer for unknown step {name!r}")
        step_state = self.steps[name]
        waiting_retry = step_state.retry_due is not None
        if not self.in_flight(name, undo):
            return self.ignore(f"stale {kind} timer: step {name!r} is {step_state.status.value}")
        current = self.attempt_of(name, undo)
        if kind == TimerKind.RETRY and waiting_retry and attempt == current + 1:
            self.notes.append(f"{name}: retry {attempt}")
            self.start_attempt(name, attempt, undo)
        elif kind == TimerKind.TIMEOUT and not waiting_retry and attempt == current:
            timeout = self.spec(name, undo).timeout
            assert timeout is not None, "only a step with a timeout has a timeout timer"
            error = f"timed out after {format_duration(timeout)}"
            self.fail(name, undo, error, retryable=True, timer_fired=True)
        elif kind == TimerKind.DELAY and not waiting_retry and attempt == current:
            self.succeed(name, undo, {})
        else:
            return self.ignore(f"stale {kind} timer for attempt {attempt} of step {name!r}")
        return self.finish()

    def on_deadline(self) -> Decision:
        deadline = self.definition.deadline
        reason = f"deadline of {format_duration(deadline) if deadline else '?'} passed"
        if self.status == InstanceStatus.RUNNING:
            if self.past_pivot():
                return self.ignore(f"{reason} after the pivot: the saga can only go forward")
            self.begin_compensation(reason)
        elif self.reason == reason:
            return self.ignore("deadline already passed")  # the one deadline timer, again
        elif self.status == InstanceStatus.COMPENSATING:
            # Steps still in flight would hold compensation back for good: stop waiting for them.
            in_flight = [n for n, s in self.steps.items() if s.status == StepStatus.RUNNING]
            if not in_flight:
                return self.ignore("deadline passed while compensating")
            for name in in_flight:
                self.set_step(name, status=StepStatus.FAILED, error="deadline passed")
        return self.finish()

    def on_message(self) -> Decision:
        kind = self.event.event_type
        mismatch = None  # parallel steps may share a reply type: the causation picks the step
        for step in self.definition.steps:
            for undo in (False, True):
                spec = step.compensation if undo else step
                if spec is None or not self.awaits(step.name, undo):
                    continue
                outcome = _reply_kind(spec, kind)
                if outcome is None:
                    continue
                expected = self.action_id(step.name, self.attempt_of(step.name, undo), undo)
                cause = self.event.causation_id
                if isinstance(spec.action, Command) and cause and cause != expected:
                    mismatch = mismatch or (
                        f"reply to {cause!r}, step {step.name!r} awaits {expected!r}"
                    )
                    continue
                if outcome:
                    self.succeed(step.name, undo, dict(self.event.data))
                else:
                    reason = self.event.data.get("reason") or self.event.data.get("error")
                    error = f"{kind}" + (f": {reason}" if reason else "")
                    self.fail(step.name, undo, error, retryable=False)
                return self.finish()
        return self.ignore(mismatch or f"no step is waiting for {kind}")

    # -- step lifecycle -------------------------------------------------------------------

    def advance(self) -> None:
        progress = True
        while progress:
            progress = False
            if self.status == InstanceStatus.RUNNING:
                progress = self.start_ready_steps()
                if all(s.status in _DONE for s in self.steps.values()):
                    self.end(InstanceStatus.COMPLETED, None)
            elif self.status == InstanceStatus.COMPENSATING:
                progress = self.start_next_compensation()

    def start_ready_steps(self) -> bool:
        started = False
        for step in self.definition.steps:
            if self.status != InstanceStatus.RUNNING:
                break
            if self.steps[step.name].status != StepStatus.PENDING:
                continue
            if any(self.steps[d].status not in _DONE for d in self.definition.dependencies(step)):
                continue
            started = True
            if step.when is not None:
                try:
                    run = is_truthy(evaluate(step.when, self.data))
                except ExpressionError as exc:
                    error = f"when: {exc}"
                    self.set_step(step.name, status=StepStatus.FAILED, error=error)
                    if step.name in after_pivot(self.definition):
                        self.end(
                            InstanceStatus.FAILED,
                            f"step {step.name!r} after the pivot gave up: {error}",
                        )
                    else:
                        self.begin_compensation(f"step {step.name!r}: {error}")
                    break
                if not run:
                    self.set_step(step.name, status=StepStatus.SKIPPED, finished_at=self.now)
                    self.notes.append(f"{step.name}: skipped (when: {step.when})")
                    continue
            self.start_attempt(step.name, 1, undo=False)
        return started

    def start_next_compensation(self) -> bool:
        busy = (StepStatus.RUNNING, StepStatus.COMPENSATING)
        if any(s.status in busy for s in self.steps.values()):
            return False
        for name in reversed(self.completed):
            undoable = self.definition.step(name).compensation is not None
            if undoable and self.steps[name].status == StepStatus.SUCCEEDED:
                self.start_attempt(name, 1, undo=True)
                return True
        self.end(InstanceStatus.COMPENSATED, self.reason)
        return False

    def start_attempt(self, name: str, attempt: int, undo: bool) -> None:
        spec = self.spec(name, undo)
        previous = self.steps[name]
        counter = "undo_attempt" if undo else "attempt"
        self.set_step(
            name,
            status=StepStatus.COMPENSATING if undo else StepStatus.RUNNING,
            retry_due=None,
            started_at=previous.started_at if previous.started_at and not undo else self.now,
            **{counter: attempt},
        )
        action_id = self.action_id(name, attempt, undo)
        label = f"{'compensation of ' if undo else ''}{name}"
        if spec.timeout is not None:
            self.schedule(TimerKind.TIMEOUT, name, attempt, undo, self.now + spec.timeout)
        match spec.action:
            case HandlerCall(name=handler):
                self.effects.append(
                    InvokeHandler(
                        step=name,
                        handler=handler,
                        attempt=attempt,
                        compensating=undo,
                        idempotency_key=action_id,
                    )
                )
                self.notes.append(f"{label}: handler {handler} (attempt {attempt})")
            case Command() as command:
                self.publish(name, undo, attempt, command, action_id, label)
            case Wait(event=events):
                self.notes.append(f"{label}: waiting for {' | '.join(events)}")
            case Delay(duration=duration):
                self.schedule(TimerKind.DELAY, name, attempt, undo, self.now + duration)
                self.notes.append(f"{label}: delay {duration}")

    def publish(
        self, name: str, undo: bool, attempt: int, command: Command, action_id: str, label: str
    ) -> None:
        try:
            data = (
                dict(self.data)
                if command.data is None
                else {key: evaluate(expr, self.data) for key, expr in command.data.items()}
            )
        except ExpressionError as exc:
            self.fail(name, undo, f"command data: {exc}", retryable=False)
            return
        event = Event.create(
            command.type,
            data,
            at=self.now,
            event_id=action_id,
            correlation_id=self.original.correlation_key,
            causation_id=self.event.event_id,
            saga_id=self.original.saga_id,
        )
        self.effects.append(PublishCommand(step=name, compensating=undo, command=event))
        self.notes.append(f"{label}: command {command.type} (attempt {attempt})")
        if not command.success:  # fire and forget: done once published
            self.succeed(name, undo, {})

    def succeed(self, name: str, undo: bool, result: dict[str, Any]) -> None:
        self.cancel_timer(TimerKind.TIMEOUT, name, self.attempt_of(name, undo), undo)
        self.data.update(result)
        if undo:
            self.set_step(name, status=StepStatus.COMPENSATED, finished_at=self.now, error=None)
            self.notes.append(f"{name}: compensated")
            return
        self.set_step(name, status=StepStatus.SUCCEEDED, finished_at=self.now, error=None)
        self.completed.append(name)
        self.notes.append(f"{name}: succeeded")

    def fail(
        self, name: str, undo: bool, error: str, retryable: bool, timer_fired: bool = False
    ) -> None:
        """The attempt in flight failed (``timer_fired``: its timeout did, so nothing to cancel)."""
        spec = self.spec(name, undo)
        attempt = self.attempt_of(name, undo)
        if not timer_fired:
            self.cancel_timer(TimerKind.TIMEOUT, name, attempt, undo)
        label = f"{'compensation of ' if undo else ''}{name}"
        may_retry = undo or self.status == InstanceStatus.RUNNING
        if retryable and may_retry and attempt < spec.retry.attempts:
            due = self.now + self.backoff(spec, name, attempt + 1)
            self.set_step(name, retry_due=due, error=error)
            self.schedule(TimerKind.RETRY, name, attempt + 1, undo, due)
            self.notes.append(f"{label}: attempt {attempt} failed ({error}); retry at {due}")
            return
        self.notes.append(f"{label}: failed ({error})")
        self.set_step(name, status=StepStatus.FAILED, finished_at=self.now, error=error)
        if undo:
            self.end(InstanceStatus.FAILED, f"compensation of {name!r} gave up: {error}")
        elif self.status != InstanceStatus.RUNNING:
            return  # an in-flight step settled while compensating
        elif name in after_pivot(self.definition):
            self.end(InstanceStatus.FAILED, f"step {name!r} after the pivot gave up: {error}")
        else:
            self.begin_compensation(f"step {name!r} failed: {error}")

    def begin_compensation(self, reason: str) -> None:
        self.status, self.reason = InstanceStatus.COMPENSATING, reason
        self.notes.append(f"compensating: {reason}")
        for name, step_state in self.steps.items():
            if step_state.status != StepStatus.RUNNING:
                continue
            spec = self.spec(name, False)
            if step_state.retry_due is not None:
                self.cancel_timer(TimerKind.RETRY, name, step_state.attempt + 1, False)
                self.set_step(name, status=StepStatus.FAILED, retry_due=None, finished_at=self.now)
            elif isinstance(spec.action, Wait | Delay):
                self.cancel_timer(TimerKind.TIMEOUT, name, step_state.attempt, False)
                self.cancel_timer(TimerKind.DELAY, name, step_state.attempt, False)
                self.set_step(name, status=StepStatus.SKIPPED, finished_at=self.now)

    def end(self, status: InstanceStatus, reason: str | None) -> None:
        self.status, self.reason = status, reason
        if self.definition.deadline is not None:
            self.cancel_timer(TimerKind.DEADLINE, None, 0, False)
        for name, step_state in self.steps.items():
            if step_state.retry_due is not None:
                undo = step_state.status == StepStatus.COMPENSATING
                attempt = self.attempt_of(name, undo) + 1
                self.cancel_timer(TimerKind.RETRY, name, attempt, undo)
        self.effects.append(Finish(status=status))
        self.notes.append(f"saga {status.value}")

    # -- helpers --------------------------------------------------------------------------

    def spec(self, name: str, undo: bool) -> ActionSpec:
        step = self.definition.step(name)
        if undo:
            assert step.compensation is not None, f"{name} has no compensation"
            return step.compensation
        return step

    def attempt_of(self, name: str, undo: bool) -> int:
        step_state = self.steps[name]
        return step_state.undo_attempt if undo else step_state.attempt

    def past_pivot(self) -> bool:
        """Whether the pivot is done or its handler or command is in flight: from then on the
        saga cannot be undone, only go forward."""
        pivot = next((step for step in self.definition.steps if step.pivot), None)
        if pivot is None:
            return False
        if self.steps[pivot.name].status in _DONE:
            return True
        return self.awaits(pivot.name, False) and isinstance(pivot.action, HandlerCall | Command)

    def in_flight(self, name: str, undo: bool) -> bool:
        wanted = StepStatus.COMPENSATING if undo else StepStatus.RUNNING
        return self.steps[name].status == wanted

    def awaits(self, name: str, undo: bool) -> bool:
        return self.in_flight(name, undo) and self.steps[name].retry_due is None

    def set_step(self, name: str, **changes: Any) -> None:
        self.steps[name] = self.steps[name].model_copy(update=changes)

    def action_id(self, name: str, attempt: int, undo: bool) -> str:
        return f"{self.original.saga_id}/{name}/{'undo/' if undo else ''}{attempt}"

    def timer_id(self, kind: TimerKind, name: str | None, attempt: int, undo: bool) -> str:
        if name is None:
            return f"{self.original.saga_id}/{kind.value}"
        return f"{self.action_id(name, attempt, undo)}/{kind.value}"

    def schedule(
        self, kind: TimerKind, name: str | None, attempt: int, undo: bool, due: datetime
    ) -> None:
        self.effects.append(
            ScheduleTimer(
                timer_id=self.timer_id(kind, name, attempt, undo),
                kind=kind,
                step=name,
                attempt=attempt,
                compensating=undo,
                due_at=due,
            )
        )

    def cancel_timer(self, kind: TimerKind, name: str | None, attempt: int, undo: bool) -> None:
        if name is not None:  # only cancel what the step's action did schedule
            spec = self.spec(name, undo)
            if kind == TimerKind.TIMEOUT and spec.timeout is None:
                return
            if kind == TimerKind.DELAY and not isinstance(spec.action, Delay):
                return
        self.effects.append(CancelTimer(timer_id=self.timer_id(kind, name, attempt, undo)))

    def backoff(self, spec: ActionSpec, name: str, attempt: int) -> timedelta:
        """The retry delay, with jitter derived from the ids so a replay computes the same."""
        base = spec.retry.delay_before(attempt)
        seed = f"{self.original.saga_id}/{name}/{attempt}".encode()
        fraction = int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest()) / 2**64
        return base * (1 + spec.retry.jitter * (2 * fraction - 1))


def _reply_kind(spec: ActionSpec, event_type: str) -> bool | None:
    """True for a success reply to ``spec``, False for a failure reply, None when unrelated."""
    action = spec.action
    if isinstance(action, Command):
        success, failure = action.success, action.failure
    elif isinstance(action, Wait):
        success, failure = action.event, action.failure
    else:
        return None
    if event_type in success:
        return True
    return False if event_type in failure else None


def after_pivot(definition: SagaDefinition) -> set[str]:
    """The steps after the pivot: never compensated."""
    pivot = next((step.name for step in definition.steps if step.pivot), None)
    return set() if pivot is None else nx.descendants(step_graph(definition), pivot)
