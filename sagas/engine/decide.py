"""The pure core: ``decide(definition, state, event, now)`` -> new state and effects.

No database, clock or network is touched here, so every instance can be rebuilt by replaying
its log, and the rules below are tested exhaustively:

* A step starts when every step it depends on succeeded or was skipped; a false ``when:``
  skips it. Independent steps run in parallel; a step depending on several joins them.
* A success reply (or handler result) is merged into the saga's data. A failure reply, or a
  handler raising ``StepFailed``, fails the step at once; a timeout or any other exception is
  retried with the step's back-off, then fails it.
* A failed step (or the saga deadline, or an operator) starts compensation, which never waits:
  steps not started never will be (``not_run``), steps in flight are interrupted (their timers
  dropped, their late replies ignored), then the compensations run one at a time in reverse
  order of completion, each with its own retry policy.
* Nothing a participant may have done stays without its undo: a command or handler step that
  timed out for good or was interrupted has an unknown outcome and is compensated too
  (compensations must tolerate "nothing to undo"); a success that arrives after compensation
  began, for a step whose undo it could have overtaken, makes that step be compensated (again),
  even after the saga ended ``compensated``.
* A step after the pivot is never compensated: when its retries give up, the steps still in
  flight beside it settle, then the instance is ``failed`` (an operator decides), as it is when
  a compensation gives up.
* Late, duplicate or unrelated events change nothing else; the decision says why it ignored them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sagas.definitions.expressions import ExpressionError, evaluate
from sagas.definitions.model import SagaDefinition
from sagas.engine.decision import Decision
from sagas.engine.effects import TimerKind
from sagas.engine.inputs import apply_event
from sagas.engine.operator import apply_operator, is_operator_event
from sagas.engine.state import InstanceStatus, SagaState, StepState
from sagas.engine.transition import Transition
from sagas.errors import SagaError
from sagas.events import Event

__all__ = ["CorrelationError", "Decision", "correlation_key", "decide", "saga_id_for"]

_SAGA_NAMESPACE = uuid.UUID("6b0c1e64-5a55-4c1e-9a3f-5a6761730001")
MAX_KEY_LENGTH = 500
"""The longest correlation key: what the store keeps for an instance's key."""


class CorrelationError(SagaError, ValueError):
    """An event's data yields no usable correlation key."""


def saga_id_for(saga_name: str, key: str) -> str:
    """The saga id of the instance of ``saga_name`` keyed ``key`` (the same on every worker)."""
    return str(uuid.uuid5(_SAGA_NAMESPACE, f"{saga_name}\x00{key}"))


def correlation_key(expression: str, data: Any) -> str:
    """Evaluate a correlation expression to a key.

    :raises CorrelationError: when the expression finds nothing usable (null, empty, an object).
    """
    try:
        value = evaluate(expression, data)
    except ExpressionError as exc:
        raise CorrelationError(f"correlation: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        raise CorrelationError(f"correlation {expression!r} gives no key (found {value!r})")
    key = str(value)
    if len(key) > MAX_KEY_LENGTH:
        raise CorrelationError(
            f"correlation {expression!r} gives a key of {len(key):,} characters "
            f"(at most {MAX_KEY_LENGTH})"
        )
    return key


def decide(
    definition: SagaDefinition, state: SagaState | None, event: Event, now: datetime
) -> Decision:
    """Apply ``event`` to an instance (``state`` is ``None`` for the trigger that starts it).

    :raises CorrelationError: when a trigger event carries no correlation key.
    """
    if state is None:
        return _start(definition, event, now)
    transition = Transition(definition, state, event, now)
    if is_operator_event(event):
        return apply_operator(transition)
    return apply_event(transition)


def _start(definition: SagaDefinition, event: Event, now: datetime) -> Decision:
    if event.event_type != definition.trigger:
        raise SagaError(f"{event.event_type!r} does not start saga {definition.name!r}")
    key = correlation_key(definition.correlation, event.data)
    state = SagaState(
        saga_id=saga_id_for(definition.name, key),
        saga_name=definition.name,
        definition_version=definition.version,
        correlation_key=key,
        status=InstanceStatus.RUNNING,
        data=dict(event.data),
        steps={step.name: StepState() for step in definition.steps},
        started_at=now,
        updated_at=now,
    )
    transition = Transition(definition, state, event, now)
    transition.notes.append(f"saga started ({definition.name} v{definition.version}, key {key})")
    if definition.deadline is not None:
        transition.schedule(TimerKind.DEADLINE, None, 0, False, now + definition.deadline)
    return transition.finish()
