"""Testing kit for users' own sagas: a manual clock and an engine on a throwaway database.

clock = ManualClock()
with saga_engine(tmp_path / "test.db", clock=clock) as engine:
    engine.register(definition)
    engine.publish(Event.create("OrderCreated", {"orderId": "o1"}, at=clock.now()))
    engine.run_until_idle()
    clock.advance("2h")          # timers due by then fire on the next run
    engine.run_until_idle()
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sagas.definitions.durations import parse_duration
from sagas.handlers import Handler
from sagas.runtime.engine import Engine
from sagas.store.sql import SQLStore

__all__ = ["ManualClock", "saga_engine"]


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The clock's current time."""
        with self._lock:
            return self._now

    def advance(self, by: timedelta | str | float) -> datetime:
        """Move forward by a duration (``"2h"``, ``timedelta(...)``, seconds)."""
        step = parse_duration(by)
        if step < timedelta():
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += step
            return self._now


@contextmanager
def saga_engine(
    database: str | Path,
    *,
    clock: ManualClock | None = None,
    handlers: Mapping[str, Handler] | None = None,
) -> Iterator[Engine]:
    """An :class:`Engine` on a SQLite file (or URL), closed on exit."""
    engine = Engine(SQLStore(str(database)), clock=clock or ManualClock(), handlers=handlers)
    try:
        yield engine
    finally:
        engine.close()
