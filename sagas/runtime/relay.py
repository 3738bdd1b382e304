"""Carrying out outbox effects: commands and events to subscribers, handlers with a context."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from sagas.clock import Clock
from sagas.engine.effects import (
    DeliverEvent,
    InvokeHandler,
    OutboxEffect,
    PublishCommand,
    step_key_of,
)
from sagas.engine.internal import handler_failed, handler_succeeded
from sagas.engine.state import SagaState
from sagas.events import Event, data_problem
from sagas.handlers import Handler, StepContext, StepFailed
from sagas.observability.logs import saga_fields
from sagas.observability.tracing import StepSpan
from sagas.runtime.bus import EventBus
from sagas.runtime.calls import Outcome

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = ["Call", "calls_for", "error_text", "handler_outcome", "published_event", "watch"]

log = logging.getLogger("sagas.relay")
A = TypeVar("A")


class Call:
    """One callable to run for an outbox effect, with a label for errors; ``seconds`` is how
    long it took, once run, when it was watched."""

    __slots__ = ("effect", "ended_at", "fn", "label", "saga_id", "saga_name", "seconds")

    def __init__(
        self,
        saga_id: str,
        effect: OutboxEffect,
        fn: Callable[[], object],
        label: str,
        saga_name: str = "",
    ) -> None:
        self.saga_id, self.effect, self.fn, self.label = saga_id, effect, fn, label
        self.saga_name = saga_name
        self.seconds: float | None = None
        self.ended_at: datetime | None = None


def calls_for(
    saga_id: str,
    effect: OutboxEffect,
    bus: EventBus,
    handlers: Mapping[str, Handler],
    states: Mapping[str, SagaState],
    clock: Clock,
) -> list[Call]:
    """What carrying out ``effect`` means: a handler call (which records in ``ended_at`` when,
    by ``clock``, it ended: the receipt time of its outcome), or one call per subscriber."""
    if isinstance(effect, InvokeHandler):
        state = states.get(saga_id)
        context = StepContext(
            saga_id=saga_id,
            saga_name=state.saga_name if state else "",
            step=effect.step,
            attempt=effect.attempt,
            data=dict(state.data) if state else {},
            idempotency_key=step_key_of(effect),
            compensating=effect.compensating,
            attempt_id=effect.idempotency_key,
        )
        handler = handlers.get(effect.handler) or _missing(effect.handler)
        call = Call(saga_id, effect, _bind(handler, context), effect.handler, context.saga_name)
        _stamp(call, clock)
        return [call]
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
        problem = data_problem(dict(value or {}))
        if problem is not None:
            message = f"handler {effect.handler!r} returned what cannot be kept: {problem}"
            return handler_failed(effect, saga_id, message, False, at)
        return handler_succeeded(effect, saga_id, dict(value or {}), at)
    event_id = f"{effect.idempotency_key}/outcome"
    log.info(
        "handler %s of saga %s failed: %s",
        effect.handler,
        saga_id,
        error_text(error, log),
        extra=saga_fields(saga_id, effect.step, event_id),
    )
    retryable = not isinstance(error, StepFailed)
    return handler_failed(effect, saga_id, f"{type(error).__name__}: {error}", retryable, at)


def error_text(error: BaseException, logger: logging.Logger) -> str:
    """How a log line names ``error``: its type, and its message only where ``logger`` logs
    DEBUG (messages often quote the saga's data, which stays out of logs at default levels)."""
    if logger.isEnabledFor(logging.DEBUG):
        return repr(error)
    return type(error).__name__


def _stamp(call: Call, clock: Clock) -> None:
    """Record in ``call.ended_at`` when the call ended (once awaited, when it returns an
    awaitable)."""
    fn = call.fn

    def stamped() -> object:
        try:
            value = fn()
        finally:
            call.ended_at = clock.now()
        if inspect.isawaitable(value):
            return _stamp_later(call, clock, value)
        return value

    call.fn = stamped


async def _stamp_later(call: Call, clock: Clock, awaitable: Awaitable[object]) -> object:
    try:
        value = await awaitable
        while inspect.isawaitable(value):
            value = await value
        return value
    finally:
        call.ended_at = clock.now()


def watch(call: Call, tracer: Tracer | None) -> None:
    """Time a handler call or a command delivery (into ``call.seconds``), inside a
    ``saga.step`` span when ``tracer`` is given. Deliveries of events to subscribers are no
    step of a saga: left as they are.

    An awaitable the call returns is timed while it is awaited, with the span current there.
    """
    effect = call.effect
    if isinstance(effect, DeliverEvent):
        return
    fn = call.fn

    def watched() -> object:
        span = StepSpan(tracer, call.saga_id, call.saga_name, effect) if tracer else None
        started = time.perf_counter()
        try:
            with _current(span):
                value = fn()
        except BaseException as exc:
            _finish(call, span, started, exc)
            raise
        if inspect.isawaitable(value):
            return _finish_later(call, span, value)
        _finish(call, span, started, None)
        return value

    call.fn = watched


async def _finish_later(call: Call, span: StepSpan | None, awaitable: Awaitable[object]) -> object:
    started = time.perf_counter()  # not earlier: the call may have waited its turn to run
    try:
        with _current(span):
            value = await awaitable
            while inspect.isawaitable(value):
                value = await value
    except BaseException as exc:
        _finish(call, span, started, exc)
        raise
    _finish(call, span, started, None)
    return value


def _current(span: StepSpan | None) -> AbstractContextManager[None]:
    return nullcontext() if span is None else span.current()


def _finish(call: Call, span: StepSpan | None, started: float, error: BaseException | None) -> None:
    call.seconds = time.perf_counter() - started
    if span is not None:
        span.end(error, "succeeded" if isinstance(call.effect, InvokeHandler) else "delivered")


def _missing(name: str) -> Handler:
    def missing(_context: StepContext) -> None:
        raise StepFailed(f"no handler is registered as {name!r}")

    return missing


def _bind(fn: Callable[[A], object], argument: A) -> Callable[[], object]:
    return lambda: fn(argument)


def _label(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or repr(fn))
