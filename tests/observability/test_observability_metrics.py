"""Prometheus metrics: what an engine with the metrics observer counts, and how they are served."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from sagas import SagaDefinition
from sagas.cli import cli
from sagas.events import Event
from sagas.handlers import StepContext, StepFailed
from sagas.observability.metrics import MetricsServer, SagaMetrics
from sagas.runtime.engine import Engine
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock, saga_engine

ROOT = Path(__file__).resolve().parents[2]
Publish = Callable[[int], list[str]]
Eventually = Callable[..., None]
Answer = Callable[[Engine, dict[str, str]], None]
SAGA = {"saga": "order_fulfillment"}


@pytest.fixture
def metrics(engine: Engine) -> SagaMetrics:
    """Metrics kept by ``engine``."""
    metrics = SagaMetrics()
    engine.observers.append(metrics)
    return metrics


def value(metrics: SagaMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def order(clock: ManualClock, order_id: str) -> Event:
    data = {"orderId": order_id, "items": ["pen"], "address": "1 Main St"}
    return Event.create("OrderCreated", data, at=clock.now())


def test_decisions_steps_and_handler_calls_are_counted(
    engine: Engine, metrics: SagaMetrics, publish: Publish
) -> None:
    publish(4)

    engine.run_until_idle()

    logged = sum(len(engine.store.log(r.saga_id)) for r in engine.store.list_instances())
    assert value(metrics, "sagas_decisions_total", **SAGA) == logged == 4 * 4
    for step in ("reserve_inventory", "take_payment", "ship"):
        labels = SAGA | {"step": step, "outcome": "succeeded"}
        assert value(metrics, "sagas_step_duration_seconds_count", **labels) == 4
    assert value(metrics, "sagas_handler_duration_seconds_count", handler="take_payment") == 4
    assert value(metrics, "sagas_handler_duration_seconds_sum", handler="take_payment") > 0
    assert value(metrics, "sagas_timer_lateness_seconds_count") == 0


def test_a_step_lasts_from_its_start_to_the_decision_that_ends_it(
    database: str, clock: ManualClock, order_definition: SagaDefinition, answer: Answer
) -> None:
    def slow_payment(context: StepContext) -> None:
        clock.advance("3s")  # its outcome is decided by the next round, 3 s later

    handlers = {"take_payment": slow_payment, "refund_payment": lambda context: None}
    metrics = SagaMetrics()
    with saga_engine(database, clock=clock, handlers=handlers) as engine:
        engine.observers.append(metrics)
        answer(engine, {"ReserveInventory": "InventoryReserved", "ShipOrder": "OrderShipped"})
        engine.register(order_definition)
        engine.publish(order(clock, "o-1"))

        engine.run_until_idle()

    payment = SAGA | {"step": "take_payment", "outcome": "succeeded"}
    assert value(metrics, "sagas_step_duration_seconds_count", **payment) == 1
    assert value(metrics, "sagas_step_duration_seconds_sum", **payment) == 3.0
    shipping = SAGA | {"step": "ship", "outcome": "succeeded"}
    assert value(metrics, "sagas_step_duration_seconds_sum", **shipping) == 0.0
    assert value(metrics, "sagas_decisions_total", **SAGA) == 4


def test_failed_and_compensated_steps_are_timed_by_outcome(
    database: str, clock: ManualClock, order_definition: SagaDefinition, answer: Answer
) -> None:
    def decline(context: StepContext) -> None:
        raise StepFailed("card declined")

    handlers = {"take_payment": decline, "refund_payment": lambda context: None}
    metrics = SagaMetrics()
    with saga_engine(database, clock=clock, handlers=handlers) as engine:
        engine.observers.append(metrics)
        answer(
            engine,
            {"ReserveInventory": "InventoryReserved", "ReleaseInventory": "InventoryReleased"},
        )
        engine.register(order_definition)
        engine.publish(order(clock, "o-1"))

        engine.run_until_idle()

    def timed(step: str, outcome: str) -> float:
        labels = SAGA | {"step": step, "outcome": outcome}
        return value(metrics, "sagas_step_duration_seconds_count", **labels)

    assert timed("reserve_inventory", "succeeded") == 1
    assert timed("take_payment", "failed") == 1
    assert timed("reserve_inventory", "compensated") == 1
    assert timed("ship", "succeeded") + timed("ship", "failed") == 0
    assert value(metrics, "sagas_handler_duration_seconds_count", handler="take_payment") == 1


def test_a_timer_fired_late_is_measured(
    database: str, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    metrics = SagaMetrics()
    with saga_engine(database, clock=clock) as engine:  # nobody answers ReserveInventory
        engine.observers.append(metrics)
        engine.register(order_definition)
        engine.publish(order(clock, "o-1"))
        engine.run_until_idle()

        clock.advance("45s")  # the step's 30 s timeout fires 15 s after it was due
        engine.run_until_idle()

    assert value(metrics, "sagas_timer_lateness_seconds_count") == 1
    assert value(metrics, "sagas_timer_lateness_seconds_sum") == 15.0
    assert value(metrics, "sagas_decisions_total", **SAGA) == 2


def test_engines_in_one_process_keep_metrics_apart(
    engine: Engine, metrics: SagaMetrics, publish: Publish
) -> None:
    other = SagaMetrics()
    publish(2)

    engine.run_until_idle()

    assert value(metrics, "sagas_decisions_total", **SAGA) == 8
    assert other.registry.get_sample_value("sagas_decisions_total", SAGA) is None


def test_metrics_are_served_over_http(
    engine: Engine, metrics: SagaMetrics, publish: Publish
) -> None:
    publish(3)
    engine.run_until_idle()

    with MetricsServer(metrics.registry, 0, addr="127.0.0.1") as server:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            text = response.read().decode()

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("sagas_decisions_total", (("saga", "order_fulfillment"),))] == 12
    handler = (("handler", "take_payment"),)
    assert samples[("sagas_handler_duration_seconds_count", handler)] == 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def queued_orders(db_path: Path) -> str:
    """A SQLite database with three orders queued; its URL."""
    url = f"sqlite:///{db_path}"
    store = SQLStore(url)
    try:
        at = datetime.now(UTC)
        data = {"items": ["pen"], "address": "1 Main St"}
        orders = [Event.create("OrderCreated", {"orderId": n} | data, at=at) for n in "abc"]
        store.enqueue(orders, received_at=at)
    finally:
        store.close()
    return url


@pytest.fixture
def worker_with_metrics(queued_orders: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``sagas worker --metrics-port PORT`` running on the queued orders; stopped at the end."""
    port = free_port()
    command = [sys.executable, "-c", "from sagas.cli import main; main()", "worker"]
    process = subprocess.Popen(
        [
            *command,
            *("--definitions", "definitions/order_fulfillment.yaml"),
            *("--handlers", "sagas.demo.services", "--db", queued_orders),
            *("--metrics-port", str(port)),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process, port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_worker_serves_its_metrics_on_the_port_given(
    worker_with_metrics: tuple[subprocess.Popen[bytes], int], eventually: Eventually
) -> None:
    process, port = worker_with_metrics
    decided: list[float] = []

    def three_sagas_decided() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            return False  # not listening yet
        families = {family.name: family for family in text_string_to_metric_families(text)}
        decided[:] = [
            s.value for s in families["sagas_decisions"].samples if s.name.endswith("_total")
        ]
        started = {s.labels.get("step") for s in families["sagas_step_duration_seconds"].samples}
        return "process_cpu_seconds" in families and "reserve_inventory" in started

    eventually(three_sagas_decided, timeout=30)
    assert process.poll() is None
    assert decided
    assert decided[0] >= 3


def test_the_worker_refuses_a_metrics_port_in_use(queued_orders: str) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli,
            [
                *("worker", "--definitions", "definitions/order_fulfillment.yaml"),
                *("--handlers", "sagas.demo.services", "--db", queued_orders, "--until-idle"),
                *("--metrics-port", str(port)),
            ],
        )

    assert result.exit_code == 1
    assert f"cannot serve metrics on port {port}" in result.output
