"""A working copy of one saga instance while one event is applied to it, and the verbs that
change it (start an attempt, succeed, fail, interrupt, compensate, end): the rules of
:mod:`sagas.engine.decide`, kept here so that every change goes through them. What each kind of
event does is in :mod:`sagas.engine.inputs`; operator actions are in :mod:`sagas.engine.operator`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import networkx as nx

from sagas.definitions.expressions import ExpressionError, evaluate, is_truthy
from sagas.definitions.graph import step_graph
from sagas.definitions.model import Command, Delay, HandlerCall, SagaDefinition, Wait
from sagas.engine.decision import Decision
from sagas.engine.effects import (
    Effect,
    Finish,
    InvokeHandler,
    PublishCommand,
    TimerKind,
)
from sagas.engine.state import InstanceStatus, SagaState, StepStatus
from sagas.engine.timing import Timing
from sagas.events import Event

__all__ = ["Transition", "after_pivot"]

_DONE = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


class Transition(Timing):
    """A working copy of one instance while one event is applied to it."""

    def __init__(
        self, definition: SagaDefinition, state: SagaState, event: Event, now: datetime
    ) -> None:
        self.definition, self.original, self.event, self.now = definition, state, event, now
        self.status = state.status
        self.reason = state.reason
        self.interrupted = state.interrupted
        self.deadline_armed = state.deadline_armed
        self.data = dict(state.data)
        self.steps = dict(state.steps)
        self.completed = list(state.completed)
        self.effects: list[Effect] = []
        self.notes: list[str] = []

    # -- entry ----------------------------------------------------------------------------

    def finish(self) -> Decision:
        self.advance()
        state = self.original.model_copy(
            update={
                "status": self.status,
                "reason": self.reason,
                "interrupted": self.interrupted,
                "deadline_armed": self.deadline_armed,
                "data": self.data,
                "steps": self.steps,
                "completed": tuple(self.completed),
                "updated_at": self.now,
            }
        )
        return Decision(state, tuple(self.effects), "; ".join(self.notes))

    def ignore(self, why: str) -> Decision:
        return Decision(self.original, (), f"ignored: {why}", ignored=True)

    # -- step lifecycle -------------------------------------------------------------------

    def advance(self) -> None:
        progress = True
        while progress:
            progress = False
            if self.status == InstanceStatus.RUNNING:
                progress = self.start_ready_steps()
                if self.status != InstanceStatus.RUNNING:
                    continue  # a `when:` that failed began compensation
                if all(s.status in _DONE for s in self.steps.values()):
                    self.end(InstanceStatus.COMPLETED, None)
                elif self.settled_after_failure():
                    self.end(InstanceStatus.FAILED, self.reason)
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
                        self.gave_up_after_pivot(step.name, error)
                        continue
                    self.begin_compensation(f"step {step.name!r}: {error}")
                    break
                if not run:
                    self.set_step(step.name, status=StepStatus.SKIPPED, finished_at=self.now)
                    self.notes.append(f"{step.name}: skipped (when: {step.when})")
                    continue
            self.start_attempt(step.name, 1, undo=False)
        return started

    def start_next_compensation(self) -> bool:
        """Start the compensation of the latest step in ``completed`` that may have done its
        work and is not undone yet; compensations run one at a time. A compensation run again
        (a late success) takes the next attempt number, so its command gets a new id."""
        busy = (StepStatus.RUNNING, StepStatus.COMPENSATING)
        if any(s.status in busy for s in self.steps.values()):
            return False
        for name in reversed(self.completed):
            step = self.steps[name]
            undoable = self.definition.step(name).compensation is not None
            if undoable and (step.status == StepStatus.SUCCEEDED or self.owes_undo(name)):
                self.start_attempt(name, step.undo_attempt + 1, undo=True)
                return True
        self.end(InstanceStatus.COMPENSATED, self.reason)
        return False

    def goes_forward(self, name: str) -> bool:
        """Whether step ``name`` can only be retried or done, never undone: a step after the
        pivot, or the pivot itself once its outcome is unknown (it may have gone through)."""
        if name in after_pivot(self.definition):
            return True
        return self.definition.step(name).pivot and self.steps[name].outcome_unknown

    def owes_undo(self, name: str) -> bool:
        """Whether step ``name`` was given up (failed or interrupted) with an unknown outcome
        and its compensation has not started yet."""
        step = self.steps[name]
        given_up = step.status in (StepStatus.FAILED, StepStatus.INTERRUPTED)
        return given_up and step.outcome_unknown and step.undo_attempt == 0

    def settled_after_failure(self) -> bool:
        """Whether a step after the pivot gave up and nothing is in flight any more: the
        instance then fails (an operator decides). Parallel steps still in flight settle first."""
        steps = self.steps.values()
        gave_up = any(step.status == StepStatus.FAILED for step in steps)
        return gave_up and not any(step.status == StepStatus.RUNNING for step in steps)

    def gave_up_after_pivot(self, name: str, error: str) -> None:
        """Step ``name`` after the pivot gave up: the first such step names the reason the
        instance fails with, once steps still in flight settled."""
        self.reason = self.reason or f"step {name!r} after the pivot gave up: {error}"

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
                        step_key=self.step_key(name, undo),
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
            idempotency_key=self.step_key(name, undo),
            attempt=attempt,
        )
        self.effects.append(PublishCommand(step=name, compensating=undo, command=event))
        self.notes.append(f"{label}: command {command.type} (attempt {attempt})")
        if not command.success:  # fire and forget: done once published
            self.succeed(name, undo, {})

    def succeed(self, name: str, undo: bool, result: dict[str, Any]) -> None:
        self.cancel_timer(TimerKind.TIMEOUT, name, self.attempt_of(name, undo), undo)
        self.data.update(result)
        if undo and self.steps[name].undo_again:
            # A success came while this compensation ran: undo once more, after it.
            self.undo_again(name)
            self.notes.append(f"{name}: compensated; compensating once more (a late success)")
            return
        if undo:
            self.set_step(name, status=StepStatus.COMPENSATED, finished_at=self.now, error=None)
            self.notes.append(f"{name}: compensated")
            return
        self.set_step(
            name,
            status=StepStatus.SUCCEEDED,
            finished_at=self.now,
            error=None,
            outcome_unknown=False,
        )
        self.completed.append(name)
        self.notes.append(f"{name}: succeeded")

    def undo_again(self, name: str) -> None:
        """Step ``name`` did its work after its compensation began, or without one: it counts
        as succeeded now, the latest to complete, and is compensated (again) in its turn."""
        self.set_step(
            name,
            status=StepStatus.SUCCEEDED,
            finished_at=self.now,
            error=None,
            outcome_unknown=False,
            undo_again=False,
        )
        self.completed.append(name)

    def fail(
        self, name: str, undo: bool, error: str, retryable: bool, timer_fired: bool = False
    ) -> None:
        """The attempt in flight failed (``timer_fired``: its timeout did, so nothing to cancel)."""
        spec = self.spec(name, undo)
        attempt = self.attempt_of(name, undo)
        if not timer_fired:
            self.cancel_timer(TimerKind.TIMEOUT, name, attempt, undo)
        elif not undo and isinstance(spec.action, HandlerCall | Command):
            # No answer in time: the participant may still have done the work.
            self.set_step(name, outcome_unknown=True)
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
            return
        unknown = self.steps[name].outcome_unknown
        if name in after_pivot(self.definition):
            self.gave_up_after_pivot(name, error)
        elif unknown and self.definition.step(name).pivot:
            # It may have gone through, and nothing undoes a pivot: undoing the steps before it
            # could leave it done without them. An operator retries it (the participant
            # deduplicates on its idempotency key and answers for good) or marks it done.
            self.end(
                InstanceStatus.FAILED,
                f"the pivot {name!r} gave up with its outcome unknown ({error}): "
                "retry it, or skip it if it was done",
            )
        elif self.status == InstanceStatus.RUNNING:
            if unknown:
                self.completed.append(name)  # it may have been done: undone with the others
            self.begin_compensation(f"step {name!r} failed: {error}")

    def begin_compensation(self, reason: str) -> None:
        """Compensate from now on. Compensation never waits for steps in flight: each is
        interrupted (its timers dropped, its late replies ignored) and, when it may have done
        its work, compensated with the completed steps; steps not started never will be."""
        self.status, self.reason = InstanceStatus.COMPENSATING, reason
        self.notes.append(f"compensating: {reason}")
        for name, step_state in self.steps.items():
            if step_state.status == StepStatus.PENDING:
                self.set_step(name, status=StepStatus.NOT_RUN)
            elif step_state.status == StepStatus.RUNNING:
                self.interrupt(name)

    def interrupt(self, name: str) -> None:
        """Stop step ``name``, in flight when compensation began."""
        step_state = self.steps[name]
        action = self.spec(name, False).action
        unknown = step_state.outcome_unknown
        if step_state.retry_due is not None:
            self.cancel_timer(TimerKind.RETRY, name, step_state.attempt + 1, False)
        else:
            self.cancel_timer(TimerKind.TIMEOUT, name, step_state.attempt, False)
            self.cancel_timer(TimerKind.DELAY, name, step_state.attempt, False)
            unknown = unknown or isinstance(action, HandlerCall | Command)
        self.set_step(
            name,
            status=StepStatus.INTERRUPTED,
            retry_due=None,
            finished_at=self.now,
            outcome_unknown=unknown,
        )
        if unknown:
            self.completed.append(name)
        undone = unknown and self.definition.step(name).compensation is not None
        why = " (its outcome is unknown: compensated too)" if undone else ""
        self.notes.append(f"{name}: interrupted{why}")

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


def after_pivot(definition: SagaDefinition) -> set[str]:
    """The steps after the pivot: never compensated."""
    pivot = next((step.name for step in definition.steps if step.pivot), None)
    return set() if pivot is None else nx.descendants(step_graph(definition), pivot)
