"""Operator actions: retry, compensate, cancel, resume and skip, as events of the instance.

An operator never writes an instance row: the action is an event (``sagas.RetryRequested``,
``sagas.CompensationRequested``, ``sagas.CancelRequested``, ``sagas.ResumeRequested``,
``sagas.SkipRequested``: who, when, why) that goes into the instance's log and through
``decide`` like any other, so the log still replays to the stored state. An action that does
not apply to where the instance stands (retrying a completed saga, compensating past the pivot)
is an ignored decision that says why; callers report it as refused.

* ``retry [step]``: run a failed step or a failed compensation again (the instance was
  ``failed``), or start a retry waiting for its back-off now. Without a step: every such step.
* ``compensate``: a running saga compensates what it completed, as if a step had failed.
* ``cancel``: stop where it stands, without compensating; timers are dropped, late replies are
  ignored. The instance is ``cancelled`` until resumed.
* ``resume``: a cancelled instance goes back to the status it had and runs again what was in
  flight (a new attempt: its outcome may have been dropped meanwhile); a failed one is retried.
* ``skip step [data]``: mark a running (or, after the pivot, failed) step done by hand,
  merging ``data`` into the saga's data; a running or failed compensation is marked
  compensated. A step that has not started cannot be skipped (the steps after it would start
  before those it depends on).

An action that brings an ended instance (``failed``, ``cancelled``) back to ``running`` re-arms
the saga deadline, counted from the action (a deadline only ever starts compensation of a running
saga, so one that goes back to compensating needs none).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sagas.engine.decision import Decision
from sagas.engine.effects import Finish, TimerKind
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.engine.transition import Transition
from sagas.events import Event

__all__ = [
    "OPERATOR_EVENT_TYPES",
    "OperatorAction",
    "apply_operator",
    "is_operator_event",
    "operator_event",
]


class OperatorAction(StrEnum):
    """What an operator can ask of one instance."""

    RETRY = "retry"
    COMPENSATE = "compensate"
    CANCEL = "cancel"
    RESUME = "resume"
    SKIP = "skip"

    @property
    def event_type(self) -> str:
        """The type of the event that carries this action (``sagas.RetryRequested``...)."""
        return _EVENT_TYPES[self]


_EVENT_TYPES = {
    OperatorAction.RETRY: "sagas.RetryRequested",
    OperatorAction.COMPENSATE: "sagas.CompensationRequested",
    OperatorAction.CANCEL: "sagas.CancelRequested",
    OperatorAction.RESUME: "sagas.ResumeRequested",
    OperatorAction.SKIP: "sagas.SkipRequested",
}
OPERATOR_EVENT_TYPES = {event_type: action for action, event_type in _EVENT_TYPES.items()}
"""The operator action each operator event type carries."""


def operator_event(
    action: OperatorAction,
    saga_id: str,
    *,
    actor: str,
    at: datetime,
    reason: str | None = None,
    step: str | None = None,
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> Event:
    """The event asking instance ``saga_id`` for ``action``, on behalf of ``actor``."""
    body: dict[str, Any] = {"actor": actor}
    if reason:
        body["reason"] = reason
    if step:
        body["step"] = step
    if data:
        body["data"] = data
    return Event.create(
        action.event_type,
        body,
        at=at,
        event_id=event_id or f"operator/{uuid.uuid4()}",
        saga_id=saga_id,
    )


def is_operator_event(event: Event) -> bool:
    """Whether ``event`` is an operator action."""
    return event.event_type in OPERATOR_EVENT_TYPES


def apply_operator(transition: Transition) -> Decision:
    """Decide the operator action ``transition.event`` carries."""
    return _Operator(transition).run()


class _Operator:
    def __init__(self, transition: Transition) -> None:
        self.t = transition
        data = transition.event.data
        self.actor = str(data.get("actor") or "operator")
        self.why = f" ({data['reason']})" if data.get("reason") else ""
        step, values = data.get("step"), data.get("data")
        self.step = step if isinstance(step, str) and step else None
        self.values: dict[str, Any] = values if isinstance(values, dict) else {}

    def run(self) -> Decision:
        t = self.t
        action = OPERATOR_EVENT_TYPES[t.event.event_type]
        if self.step is not None and self.step not in t.steps:
            return t.ignore(f"no step {self.step!r} (steps: {', '.join(t.steps)})")
        t.notes.append(f"{action.value} by {self.actor}{self.why}")
        refusal = {
            OperatorAction.RETRY: self.retry,
            OperatorAction.COMPENSATE: self.compensate,
            OperatorAction.CANCEL: self.cancel,
            OperatorAction.RESUME: self.resume,
            OperatorAction.SKIP: self.skip,
        }[action]()
        if refusal is not None:
            return t.ignore(refusal)
        return t.finish()

    # -- the actions ----------------------------------------------------------------------

    def retry(self) -> str | None:
        t = self.t
        candidates = self.retryable()
        if self.step is not None:
            if self.step not in candidates:
                return f"nothing to retry in step {self.step!r} ({self.describe(self.step)})"
            others = [name for name in candidates if name != self.step]
            if t.status == InstanceStatus.FAILED and others:
                # Its new attempt would answer a saga still failed by the others: ignored.
                return (
                    f"step {', '.join(map(repr, others))} failed too: retry without a step, "
                    "or skip the others first"
                )
            candidates = [self.step]
        if not candidates:
            return f"nothing to retry: the saga is {t.status.value} and no step failed or waits"
        for name in candidates:
            self.rerun(name)
        return None

    def compensate(self) -> str | None:
        t = self.t
        if t.status != InstanceStatus.RUNNING:
            return f"the saga is {t.status.value}: only a running saga can be compensated"
        if t.past_pivot():
            return "the saga is past its pivot: it can only go forward (retry or skip)"
        t.begin_compensation(f"compensation requested by {self.actor}{self.why}")
        return None

    def cancel(self) -> str | None:
        t = self.t
        if t.status in (InstanceStatus.COMPLETED, InstanceStatus.COMPENSATED):
            return f"the saga already ended {t.status.value}"
        if t.status == InstanceStatus.CANCELLED:
            return "the saga is already cancelled"
        for name in t.steps:
            self.drop_timers(name)
        if t.definition.deadline is not None:
            t.cancel_timer(TimerKind.DEADLINE, None, 0, False)
        t.interrupted = t.status
        t.status, t.reason = InstanceStatus.CANCELLED, f"cancelled by {self.actor}{self.why}"
        t.effects.append(Finish(status=InstanceStatus.CANCELLED))
        t.notes.append("saga cancelled")
        return None

    def resume(self) -> str | None:
        t = self.t
        if t.status == InstanceStatus.FAILED:
            return self.retry()
        if t.status != InstanceStatus.CANCELLED:
            return f"the saga is {t.status.value}: only a cancelled or failed saga resumes"
        t.status, t.interrupted = t.interrupted or InstanceStatus.RUNNING, None
        t.reason = None if t.status == InstanceStatus.RUNNING else f"resumed by {self.actor}"
        if t.status == InstanceStatus.FAILED:
            return self.retry()  # which runs again what was in flight (see revive)
        if t.status == InstanceStatus.RUNNING:
            self.t.rearm_deadline()
        for name, step in t.steps.items():
            if step.status in (StepStatus.RUNNING, StepStatus.COMPENSATING):
                undo = step.status == StepStatus.COMPENSATING
                t.start_attempt(name, t.attempt_of(name, undo) + 1, undo)
        return None

    def skip(self) -> str | None:
        t = self.t
        if self.step is None:
            return "skip needs the step to mark done"
        name, step = self.step, t.steps[self.step]
        if step.status == StepStatus.PENDING:
            # Marked done now, the steps after it would start before those it depends on.
            return f"step {name!r} has not started: skip it once it runs or fails"
        undo = self.undo_failed(name) or step.status == StepStatus.COMPENSATING
        # A failed action is skipped only after the pivot (where it failed the saga): before it,
        # the failure started compensation, which marking it done would leave half done.
        forward = step.status == StepStatus.RUNNING or (
            step.status == StepStatus.FAILED
            and t.status == InstanceStatus.FAILED
            and not undo
            and t.goes_forward(name)
        )
        if not (undo or forward) or t.status in (
            InstanceStatus.CANCELLED,
            InstanceStatus.COMPLETED,
            InstanceStatus.COMPENSATED,
        ):
            return f"step {name!r} cannot be skipped ({self.describe(name)})"
        self.drop_timers(name)
        if t.status == InstanceStatus.FAILED and not [n for n in self.retryable() if n != name]:
            self.revive(undo, keep=name)  # else still failed, by the other failed steps
        # As a success would, but without cancelling the attempt's timeout again: drop_timers
        # did, or the failed attempt has none left.
        t.data.update(self.values)
        status = StepStatus.COMPENSATED if undo else StepStatus.SUCCEEDED
        t.set_step(name, status=status, finished_at=t.now, error=None)
        if not undo:
            t.completed.append(name)
        t.notes.append(f"{name}: {'compensation ' if undo else ''}done by hand")
        return None

    # -- helpers --------------------------------------------------------------------------

    def retryable(self) -> list[str]:
        """Steps a retry applies to: failed ones of a failed instance, waiting retries."""
        t = self.t
        if t.status == InstanceStatus.FAILED:
            return [
                name
                for name, step in t.steps.items()
                if step.status == StepStatus.FAILED
                and (self.undo_failed(name) or t.goes_forward(name))
            ]
        if t.status in (InstanceStatus.RUNNING, InstanceStatus.COMPENSATING):
            return [name for name, step in t.steps.items() if step.retry_due is not None]
        return []

    def rerun(self, name: str) -> None:
        """Start a new attempt of ``name`` (its compensation if that is what failed/waits)."""
        t = self.t
        step = t.steps[name]
        undo = self.undo_failed(name) or step.status == StepStatus.COMPENSATING
        if t.status == InstanceStatus.FAILED:
            self.revive(undo, keep=name)
        self.drop_timers(name)
        t.start_attempt(name, t.attempt_of(name, undo) + 1, undo)

    def undo_failed(self, name: str) -> bool:
        """Whether step ``name`` is failed in its compensation (not in its action)."""
        step = self.t.steps[name]
        return step.status == StepStatus.FAILED and step.undo_attempt > 0

    def drop_timers(self, name: str) -> None:
        """Cancel every timer the current attempt of step ``name`` may have."""
        t = self.t
        step = t.steps[name]
        if step.status not in (StepStatus.RUNNING, StepStatus.COMPENSATING):
            return
        undo = step.status == StepStatus.COMPENSATING
        attempt = t.attempt_of(name, undo)
        if step.retry_due is not None:
            t.cancel_timer(TimerKind.RETRY, name, attempt + 1, undo)
            t.set_step(name, retry_due=None)
        else:
            t.cancel_timer(TimerKind.TIMEOUT, name, attempt, undo)
            t.cancel_timer(TimerKind.DELAY, name, attempt, undo)

    def revive(self, compensating: bool, keep: str) -> None:
        """A failed instance goes on: compensating (keeping its reason) or running again.

        Steps it left in flight (parallel steps after the pivot, when one of them gave up)
        start a new attempt, as on resume: their replies, outcomes and timers were ignored while
        it was failed, and their retry timers went when it failed. ``keep`` is the step the
        operator acts on: the caller's to handle."""
        t = self.t
        t.status = InstanceStatus.COMPENSATING if compensating else InstanceStatus.RUNNING
        t.reason = t.reason if compensating else None
        if not compensating:
            self.t.rearm_deadline()
        for name in list(t.steps):
            step = t.steps[name]
            if name == keep or step.status not in (StepStatus.RUNNING, StepStatus.COMPENSATING):
                continue
            undo = step.status == StepStatus.COMPENSATING
            if step.retry_due is None:
                self.drop_timers(name)
            t.start_attempt(name, t.attempt_of(name, undo) + 1, undo)

    def describe(self, name: str) -> str:
        step = self.t.steps[name]
        waiting = ", waiting for a retry" if step.retry_due else ""
        return f"it is {step.status.value}{waiting}; the saga is {self.t.status.value}"
