"""``sagas stats``: counts per saga and status, throughput and step latencies over a window."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sagas.definitions.durations import parse_duration
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.store.base import Store
from sagas.store.records import Backlog

__all__ = [
    "LATENCY_SAMPLE",
    "MAX_WINDOW",
    "SagaStats",
    "Stats",
    "StepLatency",
    "collect_stats",
    "parse_window",
]

LATENCY_SAMPLE = 10_000
"""Step latencies come from at most this many of the instances updated in the window."""


MAX_WINDOW = timedelta(days=36_500)
"""The longest statistics window (a longer one would reach before the year 1)."""


def parse_window(text: str) -> timedelta:
    """A statistics window: a duration longer than zero and at most :data:`MAX_WINDOW`.

    :raises ValueError: saying what is wrong with ``text``.
    """
    span = parse_duration(text)
    if span.total_seconds() <= 0:
        raise ValueError("must be longer than zero")
    if span > MAX_WINDOW:
        raise ValueError(f"at most {MAX_WINDOW.days}d")
    return span


@dataclass(frozen=True)
class StepLatency:
    """How long one step's action took, from its first attempt to success, in the window."""

    saga: str
    step: str
    count: int
    p50: float
    p90: float
    p99: float
    max: float


@dataclass
class SagaStats:
    """One saga: instances per status now; started and ended per status in the window."""

    saga: str
    counts: dict[InstanceStatus, int] = field(default_factory=dict)
    started: int = 0
    ended: dict[InstanceStatus, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Stats:
    """A snapshot at ``at`` over the ``window`` before it."""

    at: datetime
    window: timedelta
    sagas: list[SagaStats]
    steps: list[StepLatency]
    backlog: Backlog
    sampled: int
    durations: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    """The step durations (seconds) per (saga, step) the latencies come from."""

    def per_second(self, count: int) -> float:
        return count / self.window.total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``sagas stats --json`` and ``GET /api/stats``)."""
        backlog = self.backlog
        return {
            "at": self.at.isoformat(),
            "windowSeconds": self.window.total_seconds(),
            "sagas": [
                {
                    "saga": s.saga,
                    "total": s.total,
                    "counts": {status.value: n for status, n in s.counts.items()},
                    "started": s.started,
                    "ended": {status.value: n for status, n in s.ended.items()},
                    "startedPerSecond": self.per_second(s.started),
                    "endedPerSecond": self.per_second(sum(s.ended.values())),
                }
                for s in self.sagas
            ],
            "steps": [
                {
                    "saga": s.saga,
                    "step": s.step,
                    "count": s.count,
                    "p50": s.p50,
                    "p90": s.p90,
                    "p99": s.p99,
                    "max": s.max,
                }
                for s in self.steps
            ],
            "sampledInstances": self.sampled,
            "backlog": {
                "queued": backlog.queued,
                "outbox": backlog.outbox,
                "outboxLagSeconds": _age(self.at, backlog.outbox_oldest),
                "outboxExpired": backlog.outbox_expired,
                "timers": backlog.timers,
                "timersOverdue": backlog.timers_overdue,
                "timerLatenessSeconds": _age(self.at, backlog.overdue_since),
            },
        }


def collect_stats(
    store: Store, now: datetime, window: timedelta, sample: int = LATENCY_SAMPLE
) -> Stats:
    """Read the numbers of :class:`Stats` from ``store``."""
    since = now - window
    sagas: dict[str, SagaStats] = {}
    for (name, status), (count, started, ended) in store.throughput(since).items():
        entry = sagas.setdefault(name, SagaStats(name))
        entry.counts[status] = count
        entry.started += started
        if ended:
            entry.ended[status] = ended
    states = store.recent_states(since, sample)
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    for state in states:
        for name, step in state.steps.items():
            done = step.status == StepStatus.SUCCEEDED
            if done and step.started_at and step.finished_at and step.finished_at >= since:
                seconds = (step.finished_at - step.started_at).total_seconds()
                durations[(state.saga_name, name)].append(seconds)
    steps = [
        StepLatency(
            saga,
            step,
            len(values),
            _percentile(values, 50),
            _percentile(values, 90),
            _percentile(values, 99),
            max(values),
        )
        for (saga, step), values in sorted(durations.items())
    ]
    return Stats(
        at=now,
        window=window,
        sagas=sorted(sagas.values(), key=lambda s: s.saga),
        steps=steps,
        backlog=store.backlog(now),
        sampled=len(states),
        durations=dict(durations),
    )


def _percentile(values: list[float], q: int) -> float:
    """The nearest-rank ``q``-th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _age(now: datetime, since: datetime | None) -> float:
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())
