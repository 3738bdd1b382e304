"""What the engine tells logs, traces and observers about its work, kept out of the worker
loop's module. Cheap when nobody listens: a round looks once whether decisions are traced or
logged, and observers are only called when there are some."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sagas.definitions.model import SagaDefinition
from sagas.engine.decide import Decision, decide
from sagas.engine.effects import InvokeHandler
from sagas.engine.state import SagaState
from sagas.events import Event
from sagas.observability import tracing
from sagas.observability.logs import saga_fields
from sagas.observability.observer import EngineObserver, RoundReport
from sagas.runtime.batch import Batch
from sagas.runtime.calls import Outcome
from sagas.runtime.relay import Call
from sagas.store.records import TimerRecord

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["Instruments", "log_finished", "report_calls", "report_round"]

log = logging.getLogger("sagas.engine")


@dataclass(frozen=True)
class Instruments:
    """For one round: the tracer (``None``: no spans) and whether decisions are logged."""

    tracer: Tracer | None = None
    debug: bool = False

    @classmethod
    def look(cls) -> Instruments:
        """What is listening now."""
        return cls(tracing.tracer(), log.isEnabledFor(logging.DEBUG))

    def decide(
        self,
        definition: SagaDefinition,
        state: SagaState | None,
        event: Event,
        now: datetime,
        saga_id: str,
    ) -> Decision:
        """``decide``, in a ``saga.decide`` span when traced, with a DEBUG line when logged."""
        if self.tracer is None and not self.debug:
            return decide(definition, state, event, now)
        with tracing.decision_span(self.tracer, saga_id, definition.name, event) as span:
            decision = decide(definition, state, event, now)
            span.set_attribute("saga.decision", decision.note)
            span.set_attribute("saga.ignored", decision.ignored)
        if self.debug:
            log.debug(
                "saga %s decided %s %s: %s",
                saga_id,
                event.event_type,
                event.event_id,
                decision.note,
                extra=saga_fields(saga_id, _step_of(event, state, decision), event.event_id)
                | {"saga_name": definition.name, "event_type": event.event_type},
            )
        return decision


def log_finished(batch: Batch) -> None:
    """An INFO line for every instance that ended in ``batch`` (it just committed); the reason
    only where DEBUG is logged (it often quotes a participant's answer, the saga's data)."""
    if not log.isEnabledFor(logging.INFO):
        return
    reasons = log.isEnabledFor(logging.DEBUG)
    for state in batch.finished:
        log.info(
            "saga %s (%s) %s%s",
            state.saga_id,
            state.saga_name,
            state.status.value,
            f": {state.reason}" if state.reason and reasons else "",
            extra=saga_fields(state.saga_id, None, batch.ended_by.get(state.saga_id))
            | {"saga_name": state.saga_name, "status": state.status.value},
        )


def report_round(
    observers: Sequence[EngineObserver], batch: Batch, fired: Sequence[TimerRecord]
) -> None:
    """Tell ``observers`` what the committed round of ``batch`` did."""
    states = {saga_id: working.state for saga_id, working in batch.touched.items()}
    report = RoundReport(batch.now, batch.changes.log, states, batch.before, fired)
    for observer in observers:
        try:
            observer.round_committed(report)
        except Exception:
            log.exception("observer %r failed on a round", observer)


def report_calls(
    observers: Sequence[EngineObserver], calls: Sequence[Call], outcomes: Sequence[Outcome]
) -> None:
    """Tell ``observers`` how long each handler call took and how it ended."""
    for call, outcome in zip(calls, outcomes, strict=True):
        effect, seconds = call.effect, call.seconds
        if not isinstance(effect, InvokeHandler) or seconds is None:
            continue
        for observer in observers:
            try:
                observer.handler_called(effect.handler, seconds, outcome.error)
            except Exception:
                log.exception("observer %r failed on a handler call", observer)


def _step_of(event: Event, before: SagaState | None, decision: Decision) -> str | None:
    """The step a decision is about, for its log line: the one named by the engine's own
    events (handler outcomes, timers, operator actions), else the one a reply settled."""
    if event.event_type.startswith("sagas."):
        step = event.data.get("step")
        return step if isinstance(step, str) else None
    if before is None:
        return None
    for name, step_state in decision.state.steps.items():
        if step_state.status.ended and before.steps.get(name) is not step_state:
            return name
    return None
