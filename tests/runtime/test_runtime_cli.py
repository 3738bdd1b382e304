"""The operator's commands: publish, worker, list, show, demo and db, through click's runner."""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from runtime_checks import ROOT

from sagas.cli import cli
from sagas.engine.decide import saga_id_for

ORDERS = [f"cli-{n}" for n in range(6)]


@pytest.fixture(autouse=True)
def in_repo_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run from the repository root, and undo what the worker changes in this process."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


def run_orders(db: str) -> None:
    """Publish the orders and run a worker until nothing is left to do."""
    for order in ORDERS:
        data = {"orderId": order, "items": [{"sku": "a", "quantity": 1}], "address": "1 Road"}
        output = ok("publish", "--type", "OrderCreated", "--data", json.dumps(data), "--db", db)
        assert re.fullmatch(r"OrderCreated \w+: queued\n", output), output
    ok(
        "worker",
        "--definitions",
        "definitions/order_fulfillment.yaml",
        "--handlers",
        "sagas.demo.services",
        "--until-idle",
        "--db",
        db,
    )


@pytest.fixture
def worked(database: str) -> str:
    """A database on which a worker ran the orders."""
    run_orders(database)
    return database


def listed(db: str, *options: str) -> list[dict[str, Any]]:
    page = json.loads(ok("list", "--json", "--limit", "1000", *options, "--db", db))
    assert page["total"] == len(page["items"])
    rows: list[dict[str, Any]] = page["items"]
    return rows


def test_a_worker_runs_published_orders_to_their_end(worked: str) -> None:
    rows = listed(worked)

    assert sorted(row["correlationKey"] for row in rows) == sorted(ORDERS)
    assert {row["status"] for row in rows} <= {"completed", "compensated"}
    for row in rows:
        assert row["sagaId"] == saga_id_for("order_fulfillment", row["correlationKey"])
        assert (row["saga"], row["version"]) == ("order_fulfillment", 1)


def test_list_status_shows_exactly_the_instances_with_that_status(worked: str) -> None:
    everything = listed(worked)
    by_status: dict[str, set[str]] = {}
    for row in everything:
        by_status.setdefault(row["status"], set()).add(row["sagaId"])

    for status in ("completed", "compensated", "running", "failed"):
        rows = listed(worked, "--status", status)
        assert {row["sagaId"] for row in rows} == by_status.get(status, set())
        assert all(row["status"] == status for row in rows)


def test_list_refuses_an_unknown_status(worked: str) -> None:
    result = invoke("list", "--status", "sleeping", "--db", worked)

    assert result.exit_code == 2
    assert "sleeping" in result.output


def test_list_prints_a_table_by_default(worked: str) -> None:
    output = ok("list", "--db", worked)

    assert "Saga instances (1–6 of 6; every instance)" in output
    for order in ORDERS:
        assert saga_id_for("order_fulfillment", order) in output


def test_show_prints_the_steps_and_the_timeline(worked: str) -> None:
    saga_id = saga_id_for("order_fulfillment", ORDERS[0])

    output = ok("show", saga_id, "--db", worked)

    assert saga_id in output
    assert "Steps" in output
    for step in ("reserve_inventory", "take_payment", "ship"):
        assert step in output
    assert "Timeline" in output
    assert output.index("OrderCreated") < output.index("InventoryReserved")


def test_show_json_has_the_timeline_in_order(worked: str) -> None:
    saga_id = saga_id_for("order_fulfillment", ORDERS[0])

    document = json.loads(ok("show", saga_id, "--json", "--db", worked))

    assert document["instance"]["saga_id"] == saga_id
    timeline = document["timeline"]
    assert [entry["seq"] for entry in timeline] == list(range(1, len(timeline) + 1))
    types = [entry["event"]["eventType"] for entry in timeline]
    assert types[0] == "OrderCreated"
    assert types[1] in ("InventoryReserved", "InventoryReservationFailed")
    times = [entry["recordedAt"] for entry in timeline]
    assert times == sorted(times)
    assert all(entry["event"]["sagaId"] == saga_id for entry in timeline[1:])


def test_show_of_an_unknown_saga_id_says_there_is_none(worked: str) -> None:
    result = invoke("show", "no-such-id", "--db", worked)

    assert result.exit_code == 1
    assert "no saga instance" in result.output
    assert "no-such-id" in result.output


def test_demo_prints_the_summary_and_a_compensated_timeline_in_reverse(database: str) -> None:
    # A fail rate of 1 splits evenly: a third of the orders that reach shipping fail there,
    # so among 120 orders some surely undo both the payment and the reservation.
    output = ok("demo", "--orders", "120", "--fail-rate", "1.0", "--db", database)

    summary = re.search(r"120 orders in .*?\n(.*?)\n(?:\s*Timeline|$)", output, re.S)
    assert summary, output
    numbers = [int(n) for n in re.findall(r"│\s*(\d+)\s*(?=│)", summary.group(1))]
    assert sum(numbers[:3]) == 120, summary.group(1)
    timeline = output[output.index("Timeline of compensated order") :]
    refund, release = timeline.find("refund_payment"), timeline.find("ReleaseInventory")
    assert 0 < timeline.find("ShipmentFailed") < refund < release
    assert "sagas show" in output


def test_demo_on_a_small_run_prints_the_summary(database: str) -> None:
    output = ok("demo", "--orders", "50", "--db", database)

    assert "50 orders in" in output
    for column in ("completed", "compensated", "failed"):
        assert column in output


def test_db_upgrade_and_current_print_the_head_revision(database: str) -> None:
    assert "empty" in ok("db", "current", "--db", database)
    assert "0004" in ok("db", "upgrade", "--db", database)
    assert ok("db", "current", "--db", database).strip() == "0004"
    assert "0004" in ok("db", "upgrade", "--db", database)  # a second upgrade is harmless
