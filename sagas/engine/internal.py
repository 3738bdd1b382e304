"""Events the engine sends itself: handler outcomes and fired timers.

They go through the same queue and ``decide`` as outside events, so an instance's log holds
everything that moved it, and replaying the log rebuilds its state. Their ids are derived from
the effect they answer, so an outcome recorded twice (a crash between running and recording)
is deduplicated like any other event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sagas.engine.effects import InvokeHandler, ScheduleTimer
from sagas.events import Event

__all__ = [
    "HANDLER_FAILED",
    "HANDLER_SUCCEEDED",
    "TIMER_FIRED",
    "handler_failed",
    "handler_succeeded",
    "timer_fired",
]

HANDLER_SUCCEEDED = "sagas.HandlerSucceeded"
HANDLER_FAILED = "sagas.HandlerFailed"
TIMER_FIRED = "sagas.TimerFired"


def _outcome(
    effect: InvokeHandler, saga_id: str, event_type: str, data: dict[str, Any], at: datetime
) -> Event:
    return Event.create(
        event_type,
        {"step": effect.step, "attempt": effect.attempt, "compensating": effect.compensating}
        | data,
        at=at,
        event_id=f"{effect.idempotency_key}/outcome",
        saga_id=saga_id,
        causation_id=effect.idempotency_key,
    )


def handler_succeeded(
    effect: InvokeHandler, saga_id: str, result: dict[str, Any], at: datetime
) -> Event:
    """The handler of ``effect`` returned ``result`` (data to merge into the saga's data)."""
    return _outcome(effect, saga_id, HANDLER_SUCCEEDED, {"result": result}, at)


def handler_failed(
    effect: InvokeHandler, saga_id: str, error: str, retryable: bool, at: datetime
) -> Event:
    """The handler of ``effect`` raised; ``retryable`` is false for a business failure."""
    return _outcome(effect, saga_id, HANDLER_FAILED, {"error": error, "retryable": retryable}, at)


def timer_fired(timer: ScheduleTimer, saga_id: str, at: datetime) -> Event:
    """The timer ``timer`` is due."""
    return Event.create(
        TIMER_FIRED,
        {
            "timerId": timer.timer_id,
            "kind": timer.kind.value,
            "step": timer.step,
            "attempt": timer.attempt,
            "compensating": timer.compensating,
            "dueAt": timer.due_at.isoformat(),
        },
        at=at,
        event_id=f"{timer.timer_id}/fired",
        saga_id=saga_id,
    )
