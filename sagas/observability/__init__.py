"""Observability of a worker: structured logs, Prometheus metrics, OpenTelemetry traces.

* :mod:`sagas.observability.logs`: text or JSON log lines carrying ``saga_id``, ``step`` and
  ``event_id``;
* :mod:`sagas.observability.metrics`: :class:`~sagas.observability.metrics.SagaMetrics`, an
  observer that keeps Prometheus metrics in a registry of its own, and the server of them;
* :mod:`sagas.observability.tracing`: spans per decision and per step call, when the ``otel``
  extra is installed and a tracer provider set up.

The metrics module is not imported here: only a process that serves metrics pays for
``prometheus_client``.
"""

from sagas.observability.logs import LogFormat, configure_logging, log_handler, saga_fields
from sagas.observability.observer import EngineObserver, RoundReport

__all__ = [
    "EngineObserver",
    "LogFormat",
    "RoundReport",
    "configure_logging",
    "log_handler",
    "saga_fields",
]
