"""Log lines: JSON objects that carry the saga id, step and event id of what they are about."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sagas import SagaState
from sagas.engine.effects import PublishCommand
from sagas.engine.state import InstanceStatus
from sagas.events import Event
from sagas.observability.logs import configure_logging, saga_fields
from sagas.runtime.engine import Engine
from sagas.store.sql import SQLStore

ROOT = Path(__file__).resolve().parents[2]
JsonLog = Callable[[], list[dict[str, Any]]]
Publish = Callable[[int], list[str]]
DeclinedOrder = Callable[[], tuple[SagaState, list[str]]]


def decision_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["level"] == "DEBUG" and "event_type" in line]


def test_every_decision_is_logged_with_its_saga_event_and_step(
    engine: Engine, publish: Publish, json_log: JsonLog
) -> None:
    publish(5)

    engine.run_until_idle()

    lines = decision_lines(json_log())
    logged = Counter((line["saga_id"], line["event_id"]) for line in lines)
    stored = Counter(
        (record.saga_id, entry.event.event_id)
        for record in engine.store.list_instances()
        for entry in engine.store.log(record.saga_id)
    )
    assert logged == stored
    for line in lines:
        assert line["logger"] == "sagas.engine"
        assert line["saga_name"] == "order_fulfillment"
        assert line["saga_id"] in line["message"]
        assert "step" in line
    steps = {line["event_type"]: line["step"] for line in lines}
    assert steps["OrderCreated"] is None  # a start settles no step
    assert steps["InventoryReserved"] == "reserve_inventory"
    assert steps["sagas.HandlerSucceeded"] == "take_payment"
    assert steps["OrderShipped"] == "ship"


def test_an_instance_that_ends_is_logged_at_info_with_its_status(
    engine: Engine, publish: Publish, json_log: JsonLog
) -> None:
    publish(3)

    engine.run_until_idle()

    ended = [line for line in json_log() if line["level"] == "INFO" and "status" in line]
    records = {record.saga_id: record for record in engine.store.list_instances()}
    assert sorted(line["saga_id"] for line in ended) == sorted(records)
    for line in ended:
        assert line["status"] == InstanceStatus.COMPLETED == records[line["saga_id"]].state.status
        assert line["step"] is None
        last = engine.store.log(line["saga_id"])[-1].event
        assert (line["event_id"], last.event_type) == (last.event_id, "OrderShipped")


def test_a_failed_handler_call_is_logged_with_its_step(
    declined_order: DeclinedOrder, json_log: JsonLog
) -> None:
    state, logged = declined_order()
    (line,) = [line for line in json_log() if line["logger"] == "sagas.relay"]
    assert state.status == InstanceStatus.COMPENSATED
    assert (line["level"], line["saga_id"], line["step"]) == ("INFO", state.saga_id, "take_payment")
    assert line["event_id"] in logged  # the outcome the handler's failure became
    assert "card declined" in line["message"]


def test_a_failed_subscriber_is_logged_with_the_command_it_failed_on(
    engine: Engine, publish: Publish, json_log: JsonLog
) -> None:
    def broken(command: Event) -> None:
        raise RuntimeError("warehouse offline")

    engine.bus.subscribe("ReserveInventory", broken)
    publish(1)

    engine.run_until_idle()

    (line,) = [line for line in json_log() if line["level"] == "ERROR"]
    (record,) = engine.store.list_instances()
    command = next(
        effect.command
        for entry in engine.store.log(record.saga_id)
        for effect in entry.effects
        if isinstance(effect, PublishCommand) and effect.step == "reserve_inventory"
    )
    assert (line["saga_id"], line["step"], line["event_id"]) == (
        record.saga_id,
        "reserve_inventory",
        command.event_id,
    )


@contextmanager
def bare_root_logger() -> Iterator[logging.Logger]:
    """The root logger without the handlers pytest put there, as a fresh process has it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers = []
    try:
        yield root
    finally:
        root.handlers = handlers
        root.setLevel(level)


def test_configure_logging_writes_json_lines_at_the_level_asked() -> None:
    stream = io.StringIO()

    with bare_root_logger():
        assert configure_logging("json", "warning", stream) is True
        logging.getLogger("sagas.engine").info("not shown")
        logging.getLogger("sagas.engine").warning(
            "saga %s stuck", "s-1", extra=saga_fields("s-1", "ship", "e-1")
        )

    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["level"] == "WARNING"
    assert line["logger"] == "sagas.engine"
    assert line["message"] == "saga s-1 stuck"
    assert (line["saga_id"], line["step"], line["event_id"]) == ("s-1", "ship", "e-1")
    assert line["time"].endswith("+00:00")


def test_configure_logging_leaves_an_existing_setup_alone() -> None:
    first, second = io.StringIO(), io.StringIO()

    with bare_root_logger() as root:
        configure_logging("text", logging.INFO, first)
        assert configure_logging("json", logging.DEBUG, second) is False
        logging.getLogger("sagas.worker").info("hello")
        assert root.level == logging.INFO

    assert first.getvalue().endswith(" INFO sagas.worker hello\n")
    assert second.getvalue() == ""


def test_configure_logging_refuses_an_unknown_format() -> None:
    with bare_root_logger() as root:
        with pytest.raises(ValueError, match="xml"):
            configure_logging("xml", logging.INFO)  # type: ignore[arg-type]
        assert root.handlers == []


def test_the_worker_logs_json_lines_with_the_ids(db_path: Path) -> None:
    store = SQLStore(f"sqlite:///{db_path}")
    try:
        data = {"orderId": "o-1", "items": ["pen"], "address": "1 Main St"}
        now = datetime.now(UTC)
        store.enqueue([Event.create("OrderCreated", data, at=now)], received_at=now)
    finally:
        store.close()

    worker = subprocess.run(
        [
            *(sys.executable, "-c", "from sagas.cli import main; main()", "worker"),
            *("--definitions", "definitions/order_fulfillment.yaml"),
            *("--handlers", "sagas.demo.services", "--until-idle", "--db", str(db_path)),
            *("--log-format", "json", "--log-level", "debug"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert worker.returncode == 0, worker.stderr
    lines = [json.loads(text) for text in worker.stderr.splitlines()]
    assert any(line["message"].startswith("worker on ") for line in lines)
    decisions = decision_lines(lines)
    assert decisions
    assert {line["event_type"] for line in decisions} >= {"OrderCreated", "OrderShipped"}
    (saga_id,) = {line["saga_id"] for line in decisions}
    assert all(line["event_id"] for line in decisions)
    ended = [line for line in lines if line.get("status")]
    assert [(line["saga_id"], line["level"]) for line in ended] == [(saga_id, "INFO")]
