"""What the timer tests share: driving an engine from timer to timer on a manual clock, reading
the timers an instance scheduled, cancelled and fired from its log, and the ``sagas`` CLI."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from sagas.cli import cli
from sagas.definitions.model import RetryPolicy
from sagas.engine.effects import CancelTimer, ScheduleTimer, TimerKind
from sagas.engine.internal import TIMER_FIRED
from sagas.runtime.engine import Engine
from sagas.store.base import Store
from sagas.store.records import LogEntry
from sagas.testing import ManualClock

# The runtime tests' checks (replay, compensation order) are reused, not copied: pytest puts
# only the folder of the tests it collects on sys.path, so this one is added here.
_RUNTIME_TESTS = str(Path(__file__).resolve().parents[1] / "runtime")
if _RUNTIME_TESTS not in sys.path:
    sys.path.insert(0, _RUNTIME_TESTS)

from runtime_checks import (  # noqa: E402
    WorkerProcess,
    assert_compensated_in_reverse,
    assert_replays,
)

__all__ = [
    "WorkerProcess",
    "assert_backoff",
    "assert_compensated_in_reverse",
    "assert_replays",
    "assert_timers_fired_once",
    "cancelled_timers",
    "fired_timers",
    "run_to_next_timer",
    "sagas_cli",
    "scheduled_timers",
]


def run_to_next_timer(engine: Engine, clock: ManualClock) -> datetime | None:
    """Move the clock to the earliest pending timer (not beyond) and run until idle; returns
    the due time, or ``None`` when no timer is pending (the clock then stays)."""
    due = engine.store.next_due()
    if due is None:
        return None
    if due > clock.now():
        clock.advance(due - clock.now())
    engine.run_until_idle()
    return due


def scheduled_timers(
    log: list[LogEntry], kind: TimerKind | None = None
) -> list[tuple[LogEntry, ScheduleTimer]]:
    """Every timer the log's decisions scheduled (of ``kind``), with the entry that did."""
    return [
        (entry, effect)
        for entry in log
        for effect in entry.effects
        if isinstance(effect, ScheduleTimer) and kind in (None, effect.kind)
    ]


def cancelled_timers(log: list[LogEntry]) -> set[str]:
    """The ids of the timers the log's decisions cancelled."""
    return {
        effect.timer_id
        for entry in log
        for effect in entry.effects
        if isinstance(effect, CancelTimer)
    }


def fired_timers(log: list[LogEntry]) -> list[str]:
    """The timer id of every ``sagas.TimerFired`` entry of the log, in order."""
    return [entry.event.data["timerId"] for entry in log if entry.event.event_type == TIMER_FIRED]


def assert_timers_fired_once(store: Store, saga_id: str) -> None:
    """No timer of the instance fired twice, none fired that was never scheduled, and every
    timer scheduled and never cancelled fired (and so left the timers table)."""
    log = store.log(saga_id)
    fired = Counter(fired_timers(log))
    twice = {timer_id: n for timer_id, n in fired.items() if n > 1}
    assert not twice, f"saga {saga_id}: timers fired more than once: {twice}"
    scheduled = {timer.timer_id for _, timer in scheduled_timers(log)}
    assert set(fired) <= scheduled, f"saga {saga_id}: unknown timers fired"
    never_fired = scheduled - cancelled_timers(log) - set(fired)
    assert not never_fired, f"saga {saga_id}: timers lost: {sorted(never_fired)}"


def assert_backoff(
    policy: RetryPolicy, attempt: int, decided_at: datetime, due_at: datetime
) -> timedelta:
    """The retry timer of try ``attempt``, scheduled at ``decided_at``, waits the policy's
    back-off within its jitter; returns the wait."""
    wait = due_at - decided_at
    base = policy.delay_before(attempt)
    low, high = base * (1 - policy.jitter), base * (1 + policy.jitter)
    assert low <= wait <= high, f"attempt {attempt}: waits {wait}, policy says {low}..{high}"
    return wait


def sagas_cli(*args: str) -> str:
    """Run ``sagas ARGS`` in this process and return its output; the command must succeed.

    The command group puts the working folder on ``sys.path``; that is undone afterwards.
    """
    saved = list(sys.path)
    try:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    finally:
        sys.path[:] = saved
    assert result.exit_code == 0, result.output
    return result.output
