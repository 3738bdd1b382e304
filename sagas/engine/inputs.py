"""What one incoming event does to an instance: replies, handler outcomes, fired timers, the
deadline, and successes that come after compensation began.

Each function reads the event off a :class:`~sagas.engine.transition.Transition` and calls
its verbs (succeed, fail, begin compensation, ...); the rules are those of
:mod:`sagas.engine.decide`.
"""

from __future__ import annotations

from sagas.definitions.durations import format_duration
from sagas.definitions.model import ActionSpec, Command, Wait
from sagas.engine.decision import Decision
from sagas.engine.effects import TimerKind
from sagas.engine.internal import HANDLER_FAILED, HANDLER_SUCCEEDED, TIMER_FIRED
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.engine.transition import Transition

__all__ = ["apply_event", "reply_kind"]


def apply_event(t: Transition) -> Decision:
    if t.status.terminal:
        return on_late_success(t) or t.ignore(f"saga already {t.status.value}")
    kind = t.event.event_type
    if kind in (HANDLER_SUCCEEDED, HANDLER_FAILED):
        return on_handler_outcome(t)
    if kind == TIMER_FIRED:
        return on_timer(t)
    if kind == t.definition.trigger and t.event.saga_id is None:
        return t.ignore("saga already started for this correlation key")
    return on_message(t)


def on_handler_outcome(t: Transition) -> Decision:
    data = t.event.data
    name, attempt, undo = data.get("step"), data.get("attempt"), bool(data.get("compensating"))
    if not isinstance(name, str) or name not in t.steps or not t.awaits(name, undo):
        return on_late_success(t) or t.ignore(
            f"no handler of step {name!r} is running"
            + (f" ({t.steps[name].status.value})" if name in t.steps else "")
        )
    if attempt != t.attempt_of(name, undo):
        return t.ignore(f"outcome of attempt {attempt}, step {name!r} is past it")
    if t.event.event_type == HANDLER_SUCCEEDED:
        result = data.get("result")
        t.succeed(name, undo, result if isinstance(result, dict) else {})
    else:
        error = str(data.get("error") or "handler failed")
        t.fail(name, undo, error, retryable=bool(data.get("retryable", True)))
    return t.finish()


def on_timer(t: Transition) -> Decision:
    data = t.event.data
    kind, name = data.get("kind"), data.get("step")
    attempt, undo = data.get("attempt"), bool(data.get("compensating"))
    if kind == TimerKind.DEADLINE:
        if data.get("timerId") != t.timer_id(TimerKind.DEADLINE, None, 0, False):
            return t.ignore("stale deadline timer (the deadline was re-armed since)")
        return on_deadline(t)
    if not isinstance(name, str) or name not in t.steps:
        return t.ignore(f"timer for unknown step {name!r}")
    step_state = t.steps[name]
    waiting_retry = step_state.retry_due is not None
    if not t.in_flight(name, undo):
        return t.ignore(f"stale {kind} timer: step {name!r} is {step_state.status.value}")
    current = t.attempt_of(name, undo)
    if kind == TimerKind.RETRY and waiting_retry and attempt == current + 1:
        t.notes.append(f"{name}: retry {attempt}")
        t.start_attempt(name, attempt, undo)
    elif kind == TimerKind.TIMEOUT and not waiting_retry and attempt == current:
        timeout = t.spec(name, undo).timeout
        assert timeout is not None, "only a step with a timeout has a timeout timer"
        error = f"timed out after {format_duration(timeout)}"
        t.fail(name, undo, error, retryable=True, timer_fired=True)
    elif kind == TimerKind.DELAY and not waiting_retry and attempt == current:
        t.succeed(name, undo, {})
    else:
        return t.ignore(f"stale {kind} timer for attempt {attempt} of step {name!r}")
    return t.finish()


def on_deadline(t: Transition) -> Decision:
    deadline = t.definition.deadline
    reason = f"deadline of {format_duration(deadline) if deadline else '?'} passed"
    if t.status != InstanceStatus.RUNNING:
        # Compensation interrupted every step in flight when it began: nothing to stop.
        return t.ignore(f"{reason} while compensating")
    if t.past_pivot():
        return t.ignore(f"{reason} after the pivot: the saga can only go forward")
    t.begin_compensation(reason)
    return t.finish()


def on_message(t: Transition) -> Decision:
    kind = t.event.event_type
    mismatch = None  # parallel steps may share a reply type: the causation picks the step
    for step in t.definition.steps:
        for undo in (False, True):
            spec = step.compensation if undo else step
            if spec is None or not t.awaits(step.name, undo):
                continue
            outcome = reply_kind(spec, kind)
            if outcome is None:
                continue
            expected = t.action_id(step.name, t.attempt_of(step.name, undo), undo)
            cause = t.event.causation_id
            if isinstance(spec.action, Command) and cause and cause != expected:
                mismatch = mismatch or (
                    f"reply to {cause!r}, step {step.name!r} awaits {expected!r}"
                )
                continue
            if outcome:
                t.succeed(step.name, undo, dict(t.event.data))
            else:
                reason = t.event.data.get("reason") or t.event.data.get("error")
                error = f"{kind}" + (f": {reason}" if reason else "")
                t.fail(step.name, undo, error, retryable=False)
            return t.finish()
    late = on_late_success(t)
    return late or t.ignore(mismatch or f"no step is waiting for {kind}")


def on_late_success(t: Transition) -> Decision | None:
    """A success for a step the saga no longer awaits, after compensation began: nothing a
    participant did may stay without its undo. ``None`` when the event is no such success.

    A step interrupted or given up with an unknown outcome is compensated anyway; a step
    known not to have done its work (a failure reply, an interrupted wait), or already
    compensated, gets its compensation (again); one whose compensation is under way gets
    it once more after it (the participant may have seen the undo before the action).

    Before compensation began, see :func:`on_late_forward_success`.
    """
    if not compensation_began(t):
        return on_late_forward_success(t)
    name = late_success_of(t)
    if name is None:
        return None
    step = t.steps[name]
    label = f"late success of step {name!r} ({step.status.value})"
    if t.definition.step(name).compensation is None:
        return t.ignore(f"{label}: it has no compensation")
    if step.status == StepStatus.SUCCEEDED or t.owes_undo(name):
        return t.ignore(f"{label}: its compensation runs as planned")
    waited = step.status == StepStatus.INTERRUPTED and isinstance(
        t.definition.step(name).action, Wait
    )
    if not step.outcome_unknown and not waited:
        return t.ignore(f"{label}: its outcome was known already")
    if step.status == StepStatus.COMPENSATING or (
        step.status == StepStatus.FAILED and step.undo_attempt > 0
    ):
        t.set_step(name, undo_again=True, outcome_unknown=False)
        t.notes.append(f"{label}: its compensation will run once more")
        return t.finish()
    # An interrupted wait, or compensated before this success came: to be undone (again).
    t.undo_again(name)
    t.notes.append(f"{label}: it will be compensated")
    if t.status == InstanceStatus.COMPENSATED:
        t.status = InstanceStatus.COMPENSATING
        t.notes.append("compensating again")
    return t.finish()


def on_late_forward_success(t: Transition) -> Decision | None:
    """A success for a step that gave up with its outcome unknown and can only go forward (the
    pivot, a step after it): it was done after all, so it is done, with the data of the
    reply; a saga failed by it alone goes on (its deadline re-armed, as an operator's retry
    would). ``None`` when the event is no such success."""
    if t.status not in (InstanceStatus.RUNNING, InstanceStatus.FAILED):
        return None
    name = late_success_of(t)
    if name is None:
        return None
    step = t.steps[name]
    if step.status != StepStatus.FAILED or not step.outcome_unknown or not t.goes_forward(name):
        return None
    t.notes.append(f"late success of step {name!r}: it was done after all")
    result = t.event.data.get("result") if t.event.event_type == HANDLER_SUCCEEDED else t.event.data
    t.succeed(name, False, result if isinstance(result, dict) else {})
    still_failed = [n for n, s in t.steps.items() if s.status == StepStatus.FAILED]
    if t.status == InstanceStatus.FAILED and not still_failed:
        t.status, t.reason = InstanceStatus.RUNNING, None
        t.rearm_deadline()
    elif not still_failed:
        t.reason = None  # running, settling: nothing failed any more
    return t.finish()


def late_success_of(t: Transition) -> str | None:
    """The step whose action (not compensation) ``t.event`` reports done, at any of its
    attempts so far, or ``None``."""
    event, data = t.event, t.event.data
    if event.event_type == HANDLER_SUCCEEDED:
        name, attempt = data.get("step"), data.get("attempt")
        if data.get("compensating") or not isinstance(name, str) or name not in t.steps:
            return None
        known = isinstance(attempt, int) and 1 <= attempt <= t.steps[name].attempt
        return name if known else None
    for step in t.definition.steps:
        if reply_kind(step, event.event_type) is not True:
            continue
        attempts = range(1, t.steps[step.name].attempt + 1)
        if not attempts:
            continue
        cause = event.causation_id
        sent = {t.action_id(step.name, n, False) for n in attempts}
        if isinstance(step.action, Command) and cause is not None and cause not in sent:
            continue
        return step.name
    return None


def compensation_began(t: Transition) -> bool:
    """Whether the saga compensates or compensated (a failed saga: when a compensation
    gave up, not a step after the pivot)."""
    if t.status in (InstanceStatus.COMPENSATING, InstanceStatus.COMPENSATED):
        return True
    return t.status == InstanceStatus.FAILED and any(
        step.undo_attempt > 0 for step in t.steps.values()
    )


def reply_kind(spec: ActionSpec, event_type: str) -> bool | None:
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
