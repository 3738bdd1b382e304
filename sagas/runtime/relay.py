"""Carrying out outbox effects: commands and events to subscribers, handlers with a context."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeVar

from sagas.engine.effects import DeliverEvent, InvokeHandler, OutboxEffect, PublishCommand
from sagas.engine.internal import handler_failed, handler_succeeded
from sagas.engine.state import SagaState
from sagas.events import Event
from sagas.handlers import Handler, StepContext, StepFailed
from sagas.runtime.bus import EventBus
from sagas.runtime.calls import Outcome

__all__ = ["Call", "calls_for", "handler_outcome"]

log = logging.getLogger("sagas.relay")
A = TypeVar("A")


class Call:
    """One callable to run for an outbox effect, with a label for errors."""

    __slots__ = ("effect", "fn", "label", "saga_id")

    def __init__(
        self, saga_id: str, effect: OutboxEffect, fn: Callable[[], object], label: str
    ) -> None:
        self.saga_id, self.effect, self.fn, self.label = saga_id, effect, fn, label


def calls_for(
    saga_id: str,
    effect: OutboxEffect,
    bus: EventBus,
    handlers: Mapping[str, Handler],
    states: Mapping[str, SagaState],
) -> list[Call]:
    """What carrying out ``effect`` means: a handler call, or one call per subscriber."""
    if isinstance(effect, InvokeHandler):
        state = states.get(saga_id)
        context = StepContext(
            saga_id=saga_id,
            saga_name=state.saga_name if state else "",
            step=effect.step,
            attempt=effect.attempt,
            data=dict(state.data) if state else {},
            idempotency_key=effect.idempotency_key,
            compensating=effect.compensating,
        )
        handler = handlers.get(effect.handler) or _missing(effect.handler)
        return [Call(saga_id, effect, _bind(handler, context), effect.handler)]
    event = published_event(effect)
    return [
        Call(saga_id, effect, _bind(subscriber, event), _label(subscriber))
        for subscriber in bus.subscribers(event.event_type)
    ]


def published_event(effect: PublishCommand | DeliverEvent) -> Event:
    """The event a publish or deliver effect hands to subscribers."""
    return effect.command if isinstance(effect, PublishCommand) else effect.event


def handler_outcome(saga_id: str, effect: InvokeHandler, outcome: Outcome, at: datetime) -> Event:
    """The ``sagas.HandlerSucceeded``/``HandlerFailed`` event answering one handler call."""
    error = outcome.error
    if error is None:
        value = outcome.value
        if value is not None and not isinstance(value, Mapping):
            message = f"handler {effect.handler!r} returned {type(value).__name__}, not a dict"
            return handler_failed(effect, saga_id, message, False, at)
        return handler_succeeded(effect, saga_id, dict(value or {}), at)
    log.info("handler %s of saga %s failed: %r", effect.handler, saga_id, error)
    retryable = not isinstance(error, StepFailed)
    return handler_failed(effect, saga_id, f"{type(error).__name__}: {error}", retryable, at)


def _missing(name: str) -> Handler:
    def missing(_context: StepContext) -> None:
        raise StepFailed(f"no handler is registered as {name!r}")

    return missing


def _bind(fn: Callable[[A], object], argument: A) -> Callable[[], object]:
    return lambda: fn(argument)


def _label(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or repr(fn))
