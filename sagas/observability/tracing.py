"""OpenTelemetry spans: one per decision (``saga.decide``) and one per step handler call or
command delivery (``saga.step``), from the tracer ``sagas`` of the global tracer provider.

Only with the ``otel`` extra installed, and only once the application set up a tracer provider
(``opentelemetry.trace.set_tracer_provider``): until then the engine makes no span at all, so
tracing costs nothing where nobody collects the spans. Without OpenTelemetry nothing is
imported and nothing fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

from sagas.engine.effects import InvokeHandler, PublishCommand
from sagas.events import Event

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "DECIDE_SPAN",
    "STEP_SPAN",
    "StepSpan",
    "decision_span",
    "tracer",
]

DECIDE_SPAN = "saga.decide"
STEP_SPAN = "saga.step"

_api: Any = None  # the module opentelemetry.trace once imported; False: not installed
_cached: tuple[TracerProvider, Tracer | None] | None = None  # the last provider, its tracer


class SpanLike(Protocol):
    """What the engine does with a span: add attributes."""

    def set_attribute(self, key: str, value: str | bool | int | float) -> None: ...


class _NoSpan:
    def set_attribute(self, key: str, value: str | bool | int | float) -> None:
        pass


_NO_SPAN = _NoSpan()


def tracer() -> Tracer | None:
    """The tracer ``sagas`` of the global tracer provider; ``None`` when OpenTelemetry is not
    installed or no tracer provider is set up (every span would be dropped).

    Cheap enough to ask once per round, so a provider set up after the engine started is used
    from the next round on.
    """
    global _api, _cached
    if _api is None:
        try:
            from opentelemetry import trace
        except ImportError:
            _api = False
        else:
            _api = trace
    if _api is False:
        return None
    provider = _api.get_tracer_provider()
    if _cached is None or _cached[0] is not provider:
        unset = isinstance(provider, _api.ProxyTracerProvider | _api.NoOpTracerProvider)
        _cached = (provider, None if unset else provider.get_tracer("sagas"))
    return _cached[1]


def decision_span(
    tracer: Tracer | None, saga_id: str, saga_name: str, event: Event
) -> AbstractContextManager[SpanLike]:
    """The ``saga.decide`` span of deciding ``event`` on an instance, current while the block
    runs; a stand-in that records nothing when ``tracer`` is ``None``."""
    if tracer is None:
        return nullcontext(_NO_SPAN)
    attributes = {
        "saga.id": saga_id,
        "saga.name": saga_name,
        "event.id": event.event_id,
        "event.type": event.event_type,
    }
    return tracer.start_as_current_span(DECIDE_SPAN, attributes=attributes)


class StepSpan:
    """The ``saga.step`` span of one handler call or command delivery.

    Started when the call is made and current while it runs, in whichever thread or event loop
    task runs it, so the spans the handler makes are its children.
    """

    __slots__ = ("_api", "_span")

    def __init__(
        self, tracer: Tracer, saga_id: str, saga_name: str, effect: InvokeHandler | PublishCommand
    ) -> None:
        self._api = _api
        self._span: Span = tracer.start_span(
            STEP_SPAN, attributes=step_attributes(saga_id, saga_name, effect)
        )

    @contextmanager
    def current(self) -> Iterator[None]:
        """Make the span the current one (it is not ended on leaving)."""
        with self._api.use_span(
            self._span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield

    def end(self, error: BaseException | None, outcome: str) -> None:
        """End the span with its outcome; ``error`` marks it failed."""
        span = self._span
        if error is not None:
            span.record_exception(error)
            span.set_status(self._api.Status(self._api.StatusCode.ERROR, repr(error)))
            outcome = "failed"
        span.set_attribute("saga.outcome", outcome)
        span.end()


def step_attributes(
    saga_id: str, saga_name: str, effect: InvokeHandler | PublishCommand
) -> dict[str, str | bool | int]:
    """The attributes of a ``saga.step`` span, without its outcome."""
    attributes: dict[str, str | bool | int] = {
        "saga.id": saga_id,
        "saga.step": effect.step,
        "saga.compensating": effect.compensating,
    }
    if saga_name:
        attributes["saga.name"] = saga_name
    if isinstance(effect, InvokeHandler):
        attributes["saga.attempt"] = effect.attempt
        attributes["saga.handler"] = effect.handler
    else:
        command = effect.command
        attributes["command.type"] = command.event_type
        attributes["command.id"] = command.event_id
        attempt = command.event_id.rpartition("/")[2]  # ids end in the attempt: saga/step/1
        if attempt.isdigit():
            attributes["saga.attempt"] = int(attempt)
    return attributes
