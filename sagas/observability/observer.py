"""What an engine tells observers about its work (metrics, for one): a hook, not a dependency.

An engine without observers does none of this bookkeeping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sagas.engine.state import SagaState
from sagas.store.records import LogEntry, TimerRecord

__all__ = ["EngineObserver", "RoundReport"]


@dataclass(frozen=True)
class RoundReport:
    """What one committed round did."""

    at: datetime
    """The time of the round: when its decisions were made and its timers fired."""
    log: Sequence[LogEntry]
    """Its decisions, one log entry each, in the order they were made."""
    states: Mapping[str, SagaState]
    """The state every instance it decided on was left in, by saga id."""
    before: Mapping[str, SagaState]
    """The state those instances had before the round (not those it started), by saga id."""
    fired: Sequence[TimerRecord]
    """The timers it fired."""


class EngineObserver:
    """Hooks an engine calls, in its worker thread; each does nothing unless overridden.

    Add one with ``Engine(store, observers=[...])`` or ``engine.observers.append(...)``. A hook
    should be quick: the engine waits for it. An exception it raises is logged and ignored.
    """

    def round_committed(self, report: RoundReport) -> None:
        """A round committed: its decisions, the states they led to, the timers it fired."""

    def handler_called(self, handler: str, seconds: float, error: BaseException | None) -> None:
        """The handler registered as ``handler`` returned (``error``: raised) after
        ``seconds``."""
