"""Handlers: the Python callables that handler steps and compensations run, registered by name.

A definition names handlers; it can never make the engine run code the application did not
register here.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar, overload

from sagas.errors import SagaError

__all__ = [
    "Handler",
    "HandlerRegistry",
    "HandlerResult",
    "StepContext",
    "StepFailed",
    "UnknownHandlerError",
    "import_handler_modules",
    "import_handlers",
]


@dataclass(frozen=True)
class StepContext:
    """What a handler is given: the saga's data and where it stands.

    ``idempotency_key`` is the same for every attempt of the step's action
    (``<saga id>/<step>``), and for every attempt of its compensation
    (``<saga id>/<step>/undo``), also when an attempt is carried out again after a crash: a
    handler that calls an outside service passes it along, so that a retry or a repeat does
    nothing twice. ``attempt`` counts the attempts (1, 2, …) and ``attempt_id`` names this one
    (``<idempotency_key>/<attempt>``).
    """

    saga_id: str
    saga_name: str
    step: str
    attempt: int
    data: Mapping[str, Any]
    idempotency_key: str
    compensating: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    attempt_id: str = ""


HandlerResult = Mapping[str, Any] | None
"""Data to merge into the saga's data (``None``: nothing to add)."""

Handler = Callable[[StepContext], HandlerResult | Awaitable[HandlerResult]]
"""A sync or async callable; raising means the attempt failed (the retry policy decides)."""

H = TypeVar("H", bound=Handler)


class StepFailed(SagaError):  # noqa: N818 - a business outcome, raised by user handlers
    """Raise from a handler for a business failure (payment declined): the step fails at once,
    without the retries that any other exception gets."""


class UnknownHandlerError(SagaError, KeyError):
    """No handler is registered under the name a definition uses."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no handler is registered as {name!r}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class HandlerRegistry(Mapping[str, Handler]):
    """Handlers by name. Not global: each application (or test) makes its own."""

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        for name, handler in (handlers or {}).items():
            self.register(handler, name)

    def register(self, handler: H, name: str | None = None) -> H:
        """Register ``handler`` under ``name`` (default: its ``__name__``); returns it unchanged.

        :raises ValueError: when another callable already has that name.
        """
        key = name or handler.__name__
        existing = self._handlers.get(key)
        if existing is not None and existing is not handler:
            raise ValueError(f"a different handler is already registered as {key!r}")
        self._handlers[key] = handler
        return handler

    @overload
    def handler(self, fn: H, /) -> H: ...
    @overload
    def handler(self, fn: None = None, /, *, name: str | None = None) -> Callable[[H], H]: ...
    def handler(self, fn: H | None = None, /, *, name: str | None = None) -> H | Callable[[H], H]:
        """Decorator: ``@registry.handler`` or ``@registry.handler(name="take_payment")``."""
        if fn is not None:
            return self.register(fn)

        def decorate(inner: H) -> H:
            return self.register(inner, name)

        return decorate

    def update(self, other: Mapping[str, Handler]) -> None:
        """Register every handler of ``other``."""
        for name, handler in other.items():
            self.register(handler, name)

    def __getitem__(self, name: str) -> Handler:
        try:
            return self._handlers[name]
        except KeyError:
            raise UnknownHandlerError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)


def import_handler_modules(modules: Iterable[str]) -> list[ModuleType]:
    """Import handler modules: each defines ``handlers`` (a registry) and/or ``subscribe(bus)``.

    :raises SagaError: for a module that cannot be imported or defines neither.
    """
    imported = []
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise SagaError(f"cannot import handler module {module_name!r}: {exc}") from exc
        registry = getattr(module, "handlers", None)
        if registry is not None and not isinstance(registry, Mapping):
            raise SagaError(f"handler module {module_name!r}: `handlers` is not a registry")
        if registry is None and not callable(getattr(module, "subscribe", None)):
            raise SagaError(
                f"handler module {module_name!r} defines neither `handlers` "
                "(a sagas.HandlerRegistry) nor `subscribe(bus)`"
            )
        imported.append(module)
    return imported


def import_handlers(modules: Iterable[str]) -> HandlerRegistry:
    """The handlers of every module of :func:`import_handler_modules`, merged."""
    merged = HandlerRegistry()
    for module in import_handler_modules(modules):
        merged.update(getattr(module, "handlers", None) or {})
    return merged
