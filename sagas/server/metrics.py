"""Prometheus metrics at ``/metrics``, read from the database at each scrape.

Every worker writes to the same database, so this one process can tell the whole picture with
nothing else to run: instances per saga and status, how many were ever started, the backlog
(queue depth, outbox lag, overdue timers) and step latencies over a recent window. (A worker's
own process metrics are ``sagas worker --metrics-port``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sagas.engine.state import InstanceStatus
from sagas.operations.stats import Stats, collect_stats
from sagas.server.context import Context

__all__ = ["LATENCY_BUCKETS", "LATENCY_WINDOW", "StoreCollector", "metrics_registry"]

LATENCY_WINDOW = timedelta(minutes=5)
"""Step latencies cover the instances updated this long before the scrape."""
LATENCY_SAMPLE = 2_000
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class StoreCollector(Collector):
    """Collects the database-wide metrics of :mod:`sagas.server.metrics`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        stats = collect_stats(
            self.ctx.store, self.ctx.clock.now(), LATENCY_WINDOW, sample=LATENCY_SAMPLE
        )
        yield from _instances(stats)
        yield from _backlog(stats)
        yield _latencies(stats)


def metrics_registry(ctx: Context) -> CollectorRegistry:
    """A registry of its own (several apps in one process never clash) with the collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(ctx))
    return registry


def _instances(stats: Stats) -> Iterator[Metric]:
    current = GaugeMetricFamily(
        "sagas_instances", "Saga instances per saga and status now.", labels=["saga", "status"]
    )
    started = CounterMetricFamily(
        "sagas_instances_started", "Saga instances ever started, per saga.", labels=["saga"]
    )
    ended = GaugeMetricFamily(
        "sagas_instances_ended_recently",
        f"Instances that reached a final status in the last {LATENCY_WINDOW}, per saga.",
        labels=["saga", "status"],
    )
    for saga in stats.sagas:
        for status in InstanceStatus:
            current.add_metric([saga.saga, status.value], saga.counts.get(status, 0))
            if status.terminal:
                ended.add_metric([saga.saga, status.value], saga.ended.get(status, 0))
        started.add_metric([saga.saga], saga.total)
    yield from (current, started, ended)


def _backlog(stats: Stats) -> Iterator[Metric]:
    backlog = stats.to_dict()["backlog"]
    gauges = {
        "sagas_queue_depth": ("Events queued, not yet decided.", backlog["queued"]),
        "sagas_outbox_pending": ("Effects committed, not yet carried out.", backlog["outbox"]),
        "sagas_outbox_lag_seconds": (
            "Age of the oldest effect not yet carried out.",
            backlog["outboxLagSeconds"],
        ),
        "sagas_outbox_expired": (
            "Effects whose worker's lease ran out (waiting for another worker).",
            backlog["outboxExpired"],
        ),
        "sagas_timers_pending": ("Timers armed.", backlog["timers"]),
        "sagas_timers_overdue": ("Timers due but not fired yet.", backlog["timersOverdue"]),
        "sagas_timer_lateness_seconds": (
            "How late the most overdue timer is.",
            backlog["timerLatenessSeconds"],
        ),
    }
    for name, (documentation, value) in gauges.items():
        yield GaugeMetricFamily(name, documentation, value=value)


def _latencies(stats: Stats) -> Metric:
    histogram = HistogramMetricFamily(
        "sagas_step_duration_seconds_recent",
        f"Step durations (first attempt to success) over the last {LATENCY_WINDOW}, from up to "
        f"{LATENCY_SAMPLE} recently updated instances.",
        labels=["saga", "step"],
    )
    for (saga, step), values in sorted(stats.durations.items()):
        buckets = [(str(bound), sum(v <= bound for v in values)) for bound in LATENCY_BUCKETS]
        buckets.append(("+Inf", len(values)))
        histogram.add_metric([saga, step], buckets, sum(values))
    return histogram
