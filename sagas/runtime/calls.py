"""Running user callables (handlers, subscribers), sync or async, a batch at a time."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Caller", "Outcome"]


@dataclass(frozen=True)
class Outcome:
    """What one call returned, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None


class Caller:
    """Calls a batch of zero-argument callables with at most ``concurrency`` at once.

    Sync callables run in the calling thread when ``concurrency`` is 1, else in worker threads;
    coroutines run on one event loop owned by the caller.
    """

    def __init__(self, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.concurrency = concurrency
        self._runner: asyncio.Runner | None = None

    def run(self, calls: Sequence[Callable[[], Any]]) -> list[Outcome]:
        """Call every callable; exceptions are captured, never raised."""
        if self.concurrency == 1:
            outcomes = [_call(fn) for fn in calls]
            pending = [i for i, o in enumerate(outcomes) if inspect.isawaitable(o.value)]
            if pending:
                awaited = self._run(self._gather([outcomes[i].value for i in pending]))
                for index, outcome in zip(pending, awaited, strict=True):
                    outcomes[index] = outcome
            return outcomes
        return self._run(self._gather([_threaded(fn) for fn in calls]))

    def close(self) -> None:
        """Stop the event loop, if one was started."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def _run(self, coroutine: Coroutine[Any, Any, list[Outcome]]) -> list[Outcome]:
        if self._runner is None:
            self._runner = asyncio.Runner()
        # In the caller's context, not the one the runner copied when it was created: context
        # variables set around this call (the bus's collecting of published events) must hold.
        return self._runner.run(coroutine, context=contextvars.copy_context())

    async def _gather(self, awaitables: Sequence[Any]) -> list[Outcome]:
        limit = asyncio.Semaphore(self.concurrency)

        async def guarded(awaitable: Any) -> Outcome:
            async with limit:
                try:
                    value = await awaitable
                    while inspect.isawaitable(value):
                        value = await value
                    return Outcome(value)
                except Exception as exc:
                    return Outcome(error=exc)

        return list(await asyncio.gather(*(guarded(a) for a in awaitables)))


def _call(fn: Callable[[], Any]) -> Outcome:
    try:
        return Outcome(fn())
    except Exception as exc:
        return Outcome(error=exc)


async def _threaded(fn: Callable[[], Any]) -> Any:
    # to_thread copies the context, so a subscriber's publish joins the delivery's transaction.
    return await asyncio.to_thread(fn)
