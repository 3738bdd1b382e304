"""Writing a saga definition in Python: a typed builder that produces the same model as YAML.

saga = SagaBuilder("order_fulfillment", trigger="OrderCreated", correlation="orderId")
saga.command("reserve_inventory", Command(type="ReserveInventory", success="InventoryReserved"),
             compensation=Compensation(command=Command(type="ReleaseInventory")))

@saga.handler(compensation=saga.compensate(refund_payment))
def take_payment(context: StepContext) -> dict[str, Any]: ...

definition = saga.build()   # validated like a YAML file; problems name this file's lines
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar, overload

from sagas.definitions.durations import format_duration
from sagas.definitions.graph import Path
from sagas.definitions.model import (
    Command,
    Compensation,
    RetryPolicy,
    SagaDefinition,
    Wait,
)
from sagas.definitions.validate import validate_definition
from sagas.handlers import Handler, HandlerRegistry

__all__ = ["SagaBuilder"]

H = TypeVar("H", bound=Handler)
DurationLike = str | timedelta | float


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json", exclude_defaults=True) if dump else value


def _call_site(depth: int) -> tuple[str, int]:
    """File and line of the user's code ``depth`` frames above the caller of this helper."""
    frame = sys._getframe(depth + 1)
    return frame.f_code.co_filename, frame.f_lineno


class SagaBuilder:
    """Collects a saga's steps in written order; :meth:`build` validates them all at once.

    Handlers given to :meth:`handler` and :meth:`compensate` are registered in :attr:`handlers`
    (a registry of this builder's own, or the one passed in). ``events`` lists the event types the
    saga exchanges, optionally with a description each.
    """

    def __init__(
        self,
        name: str,
        *,
        trigger: str,
        correlation: str,
        version: int = 1,
        description: str = "",
        deadline: DurationLike | None = None,
        events: Mapping[str, str] | Sequence[str] | None = None,
        handlers: HandlerRegistry | None = None,
    ) -> None:
        self.handlers = handlers if handlers is not None else HandlerRegistry()
        self._source, line = _call_site(1)
        self._lines: dict[Path, int] = {(): line}
        self._raw: dict[str, Any] = {"name": name, "version": version, "trigger": trigger}
        self._raw["correlation"] = correlation
        if description:
            self._raw["description"] = description
        if deadline is not None:
            self._raw["deadline"] = _dump_duration(deadline)
        if events is not None:
            described = events if isinstance(events, Mapping) else dict.fromkeys(events, "")
            self._raw["events"] = {
                event: {"description": text} if text else {} for event, text in described.items()
            }
        self._steps: list[dict[str, Any]] = []

    def command(
        self,
        name: str,
        command: Command,
        *,
        timeout: DurationLike | None = None,
        retry: RetryPolicy | None = None,
        compensation: Compensation | None = None,
        after: Sequence[str] | None = None,
        when: str | None = None,
        pivot: bool = False,
        description: str = "",
    ) -> None:
        """Add a step that publishes ``command`` and waits for its reply."""
        self._add(name, {"command": _dump(command)}, locals())

    def wait(
        self,
        name: str,
        wait: Wait,
        *,
        timeout: DurationLike | None = None,
        retry: RetryPolicy | None = None,
        after: Sequence[str] | None = None,
        when: str | None = None,
        pivot: bool = False,
        description: str = "",
    ) -> None:
        """Add a step that waits for an outside event correlated to the saga."""
        self._add(name, {"wait": _dump(wait)}, locals())

    def delay(
        self,
        name: str,
        duration: DurationLike,
        *,
        after: Sequence[str] | None = None,
        when: str | None = None,
        description: str = "",
    ) -> None:
        """Add a durable sleep."""
        self._add(name, {"delay": _dump_duration(duration)}, locals())

    @overload
    def handler(self, fn: H, /) -> H: ...
    @overload
    def handler(
        self,
        name: str | None = None,
        /,
        *,
        timeout: DurationLike | None = None,
        retry: RetryPolicy | None = None,
        compensation: Compensation | None = None,
        after: Sequence[str] | None = None,
        when: str | None = None,
        pivot: bool = False,
        description: str = "",
    ) -> Callable[[H], H]: ...
    def handler(
        self,
        name: H | str | None = None,
        /,
        *,
        timeout: DurationLike | None = None,
        retry: RetryPolicy | None = None,
        compensation: Compensation | None = None,
        after: Sequence[str] | None = None,
        when: str | None = None,
        pivot: bool = False,
        description: str = "",
    ) -> H | Callable[[H], H]:
        """Decorator (``@saga.handler`` or ``@saga.handler("name", retry=...)``): the function
        becomes a registered handler and a step, named after it unless a name is given."""
        options = dict(locals())

        def decorate(fn: H, depth: int = 2) -> H:
            step = name if isinstance(name, str) else fn.__name__
            self.handlers.register(fn, step)
            self._add(step, {"handler": step}, options, depth)
            return fn

        if callable(name):
            return decorate(name, depth=3)
        return decorate

    def compensate(
        self,
        handler: Handler,
        *,
        name: str | None = None,
        timeout: DurationLike | None = None,
        retry: RetryPolicy | None = None,
    ) -> Compensation:
        """Register ``handler`` and return a compensation that runs it."""
        key = name or handler.__name__
        self.handlers.register(handler, key)
        return Compensation(handler=key, timeout=timeout, retry=retry or RetryPolicy())

    def build(self) -> SagaDefinition:
        """Validate and return the definition.

        :raises DefinitionError: every problem, each naming the line of the builder call.
        """
        raw = {**self._raw, "steps": list(self._steps)}
        return validate_definition(
            raw, source=self._source, locate=self._locate, handlers=set(self.handlers)
        )

    def _add(
        self, name: str, action: dict[str, Any], options: Mapping[str, Any], depth: int = 2
    ) -> None:
        # ``depth`` frames up is the user's line: the public method (or decorator) called there.
        self._lines[("steps", len(self._steps))] = _call_site(depth)[1]
        step: dict[str, Any] = {"name": name, **action}
        for key in ("description", "after", "when", "pivot", "timeout", "retry", "compensation"):
            value = options.get(key)
            # Only the "not given" values are left out: timeout=0 or when="" must fail as in YAML.
            if value is not None and value is not False:
                if key == "timeout":
                    value = _dump_duration(value)
                step[key] = list(value) if isinstance(value, list | tuple) else _dump(value)
        self._steps.append(step)

    def _locate(self, path: Path) -> int | None:
        while path not in self._lines:
            path = path[:-1]
        return self._lines[path]


def _dump_duration(value: DurationLike) -> str | float:
    return format_duration(value) if isinstance(value, timedelta) else value
