"""Prometheus metrics of one worker process, and the HTTP endpoint that serves them.

The metrics live in a registry of their own, not in ``prometheus_client``'s global one, so
several engines (or tests) in one process never clash. Labels stay few: saga names, step names,
outcomes and handler names are bounded by the definitions; saga ids never become labels.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from sagas.observability.observer import EngineObserver, RoundReport

__all__ = ["MetricsServer", "SagaMetrics"]

STEP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
"""Steps take from milliseconds (a handler) to days (a wait for a person, a delay)."""
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class SagaMetrics(EngineObserver):
    """The engine's metrics, kept up to date as an observer of an engine:

    * ``sagas_decisions_total{saga}``: decisions committed (one per event an instance took in);
    * ``sagas_step_duration_seconds{saga,step,outcome}``: from a step's start to its end, for
      every step that ended (``outcome``: ``succeeded``, ``failed``, ``compensated``...);
    * ``sagas_timer_lateness_seconds``: how long after its due time each timer fired;
    * ``sagas_handler_duration_seconds{handler}``: how long each handler call took.

    ``process=True`` adds the process's own (CPU, memory, open files, garbage collection).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = False) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.decisions = Counter(
            "sagas_decisions", "Decisions committed.", ["saga"], registry=self.registry
        )
        self.step_duration = Histogram(
            "sagas_step_duration_seconds",
            "Time from a step's start to its end.",
            ["saga", "step", "outcome"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.timer_lateness = Histogram(
            "sagas_timer_lateness_seconds",
            "Time from a timer's due time to its firing.",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.handler_duration = Histogram(
            "sagas_handler_duration_seconds",
            "Time a handler call took.",
            ["handler"],
            registry=self.registry,
        )
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        # Labelled children by their labels: `labels()` takes a lock and checks its arguments
        # every time, and thousands of steps end every second.
        self._children: dict[tuple[object, ...], Any] = {}

    def round_committed(self, report: RoundReport) -> None:
        """Count the round's decisions, time the steps that ended, measure timer lateness."""
        states, before = report.states, report.before
        for saga, count in Tally(states[entry.saga_id].saga_name for entry in report.log).items():
            self._child(self.decisions, saga).inc(count)
        for saga_id, state in states.items():
            was = before.get(saga_id)
            for name, step in state.steps.items():
                started, finished = step.started_at, step.finished_at
                if started is None or finished is None or not step.status.ended:
                    continue
                ended = (step.status, finished)
                earlier = was.steps.get(name) if was is not None else None
                if earlier is not None and (earlier.status, earlier.finished_at) == ended:
                    continue  # it ended in an earlier round
                child = self._child(self.step_duration, state.saga_name, name, step.status.value)
                child.observe((finished - started).total_seconds())
        for record in report.fired:
            lateness = (report.at - record.timer.due_at).total_seconds()
            self.timer_lateness.observe(max(lateness, 0.0))

    def handler_called(self, handler: str, seconds: float, error: BaseException | None) -> None:
        """Time the handler call."""
        self._child(self.handler_duration, handler).observe(seconds)

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


class MetricsServer:
    """Serves a registry's metrics on ``http://addr:port/metrics`` (port 0: any free port) from
    a daemon thread until closed.

    :raises OSError: when the port cannot be bound.
    """

    def __init__(self, registry: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> None:
        self._server, self._thread = start_http_server(port, addr=addr, registry=registry)

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose, for port 0)."""
        return int(self._server.server_port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
