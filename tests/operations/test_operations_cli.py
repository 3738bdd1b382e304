"""``sagas retry|compensate|cancel|resume|skip``, ``sagas list`` filters and paging, and
``sagas stats``, through click's runner on a SQLite file (and once on PostgreSQL).

The instances are written on a manual clock set hours before the real time, because the CLI
reads durations (``--since 2h``) and the stats window against the real clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from operations_support import FLEET, Orders, build_fleet, order_id

from sagas import SagaDefinition
from sagas.cli import cli
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock, saga_engine

Fleet = tuple[str, dict[str, str], datetime]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


def usage_error(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    return result.output


@pytest.fixture
def fleet(tmp_path: Path, order_definition: SagaDefinition) -> Fleet:
    """The seven orders of ``build_fleet`` with T ten hours ago: c-1 10h ago, p-1 8h, f-1
    6h (updated 1h ago), c-2 4h, x-1 2h30m, r-1 and w-1 30m ago. The file, ids, T."""
    path = tmp_path / "ops.db"
    start = datetime.now(UTC) - timedelta(hours=10)
    ids = build_fleet(f"sqlite:///{path}", ManualClock(start), order_definition)
    return str(path), ids, start


def snapshot(db: str) -> dict[str, tuple[str, int, int]]:
    """Per saga id: status, version and log length."""
    store = SQLStore(db)
    try:
        return {
            record.saga_id: (
                record.state.status.value,
                record.version,
                len(store.log(record.saga_id)),
            )
            for record in store.list_instances(limit=100)
        }
    finally:
        store.close()


def state_of(db: str, saga_id: str) -> Any:
    store = SQLStore(db)
    try:
        return store.instance(saga_id).state, store.log(saga_id)
    finally:
        store.close()


# -- one instance ---------------------------------------------------------------------------


def test_retry_one_instance_applied(fleet: Fleet) -> None:
    db, ids, _ = fleet
    output = ok("retry", ids["f-1"], "--actor", "bob", "--reason", "bank is back", "--db", db)

    assert "retry: 1 applied" in output
    assert "failed → compensating" in output
    assert ids["f-1"] in output
    state, log = state_of(db, ids["f-1"])
    assert state.status == InstanceStatus.COMPENSATING
    assert log[-1].event.event_type == "sagas.RetryRequested"
    assert log[-1].event.data == {"actor": "bob", "reason": "bank is back"}


def test_a_refused_action_exits_1_and_says_why(fleet: Fleet) -> None:
    db, ids, _ = fleet
    before = snapshot(db)
    result = invoke("retry", ids["c-1"], "--actor", "bob", "--db", db)

    assert result.exit_code == 1, result.output
    assert "refused" in result.output
    assert "Error: retry refused: nothing to retry: the saga is completed" in result.output
    assert snapshot(db)[ids["c-1"]][0] == "completed"
    assert {k: v for k, v in snapshot(db).items() if k != ids["c-1"]} == {
        k: v for k, v in before.items() if k != ids["c-1"]
    }

    cancelled = invoke("cancel", ids["x-1"], "--actor", "bob", "--db", db)
    assert cancelled.exit_code == 1
    assert "the saga is already cancelled" in cancelled.output


def test_each_of_the_five_commands_applies(fleet: Fleet) -> None:
    db, ids, _ = fleet

    def act(*args: str) -> dict[str, Any]:
        report = json.loads(ok(*args, "--actor", "carol", "--json", "--db", db))
        [result] = report["results"]
        assert result["outcome"] == "applied", result
        return dict(result)

    compensated = act("compensate", ids["w-1"], "--reason", "fraud")
    assert (compensated["statusBefore"], compensated["statusAfter"]) == ("running", "compensating")
    resumed = act("resume", ids["x-1"])
    assert (resumed["statusBefore"], resumed["statusAfter"]) == ("cancelled", "running")
    cancelled = act("cancel", ids["x-1"])
    assert cancelled["statusAfter"] == "cancelled"
    skipped = act("skip", ids["r-1"], "--step", "ship", "--data", '{"trackingId": "T-1"}')
    assert (skipped["statusBefore"], skipped["statusAfter"]) == ("running", "completed")
    retried = act("retry", ids["f-1"], "--step", "take_payment")
    assert retried["statusAfter"] == "compensating"

    state, log = state_of(db, ids["r-1"])
    assert state.data["trackingId"] == "T-1"
    assert state.steps["ship"].status == StepStatus.SUCCEEDED
    assert log[-1].event.data == {
        "actor": "carol",
        "step": "ship",
        "data": {"trackingId": "T-1"},
    }
    assert log[-1].event.event_id == skipped["eventId"]


def test_the_actor_comes_from_the_environment(fleet: Fleet) -> None:
    db, ids, _ = fleet
    result = invoke("cancel", ids["r-1"], "--db", db, env={"SAGAS_ACTOR": "dave"})
    assert result.exit_code == 0, result.output
    _, log = state_of(db, ids["r-1"])
    assert log[-1].event.data["actor"] == "dave"


def test_an_unknown_saga_id_or_database_is_an_error(fleet: Fleet, tmp_path: Path) -> None:
    db, _, _ = fleet
    result = invoke("cancel", "no-such-saga", "--actor", "bob", "--db", db)
    assert result.exit_code == 1
    assert "no saga instance 'no-such-saga'" in result.output
    missing = invoke("cancel", "x", "--actor", "bob", "--db", str(tmp_path / "nope.db"))
    assert missing.exit_code == 1
    assert "no database at" in missing.output
    assert not (tmp_path / "nope.db").exists()


# -- in bulk --------------------------------------------------------------------------------


def test_bulk_dry_run_reports_as_json_and_changes_nothing_then_applies(fleet: Fleet) -> None:
    db, ids, _ = fleet
    before = snapshot(db)

    dry = json.loads(
        ok("retry", "--where", "status=failed", "--dry-run", "--json", "--actor", "bob", "--db", db)
    )

    assert set(dry) == {"action", "dryRun", "summary", "results"}
    assert (dry["action"], dry["dryRun"], dry["summary"]) == ("retry", True, {"would apply": 1})
    [result] = dry["results"]
    assert set(result) == {
        "sagaId",
        "outcome",
        "note",
        "statusBefore",
        "statusAfter",
        "eventId",
    }
    assert result["sagaId"] == ids["f-1"]
    assert result["outcome"] == "would apply"
    assert (result["statusBefore"], result["statusAfter"]) == ("failed", "compensating")
    assert result["eventId"] is None
    assert "retry by bob" in result["note"]
    assert snapshot(db) == before

    table = ok("retry", "--where", "status=failed", "--dry-run", "--actor", "bob", "--db", db)
    assert "retry (dry run): 1 would apply" in table
    assert snapshot(db) == before

    applied = json.loads(
        ok("retry", "--where", "status=failed", "--json", "--actor", "bob", "--db", db)
    )
    assert (applied["dryRun"], applied["summary"]) == (False, {"applied": 1})
    assert applied["results"][0]["eventId"] is not None
    assert snapshot(db)[ids["f-1"]][0] == "compensating"


def test_a_bulk_action_reports_refusals_per_instance(fleet: Fleet) -> None:
    db, ids, _ = fleet
    report = json.loads(
        ok(
            "cancel",
            "--where",
            "saga=order_fulfillment",
            "--where",
            "version=2",
            "--json",
            "--actor",
            "bob",
            "--db",
            db,
        )
    )
    outcomes = {r["sagaId"]: (r["outcome"], r["statusAfter"]) for r in report["results"]}
    assert outcomes == {
        ids["w-1"]: ("applied", "cancelled"),
        ids["r-1"]: ("applied", "cancelled"),
        ids["x-1"]: ("refused", "cancelled"),
        ids["c-2"]: ("refused", "completed"),
    }
    assert report["summary"] == {"applied": 2, "refused": 2}
    refused = {r["sagaId"]: r["note"] for r in report["results"] if r["outcome"] == "refused"}
    assert "already cancelled" in refused[ids["x-1"]]
    assert "already ended completed" in refused[ids["c-2"]]

    nothing = ok("cancel", "--where", "key=nobody", "--actor", "bob", "--db", db)
    assert "no instance selected" in nothing


def test_saga_id_and_where_together_or_neither_is_a_usage_error(fleet: Fleet) -> None:
    db, ids, _ = fleet
    before = snapshot(db)
    for args in (("retry", ids["f-1"], "--where", "status=failed"), ("retry",)):
        output = usage_error(*args, "--actor", "bob", "--db", db)
        assert "give either a SAGA_ID or --where clauses (not both)" in output
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("clause", "why"),
    [
        ("statu=failed", "unknown field 'statu'"),
        ("updated>=yesterday", "'yesterday' is neither a time"),
        ("started<=1h", "times take >= or <"),
        ("status=broken", "status"),
    ],
)
def test_a_bad_where_clause_exits_2_naming_it(fleet: Fleet, clause: str, why: str) -> None:
    db, _, _ = fleet
    before = snapshot(db)
    for command in ("cancel", "list"):
        args = [command, "--where", "saga=order_fulfillment", "--where", clause, "--db", db]
        output = usage_error(*args, *(("--actor", "bob") if command == "cancel" else ()))
        assert clause in output
        assert why in output
    assert snapshot(db) == before


def test_conflicting_clauses_are_refused_rather_than_one_dropped(fleet: Fleet) -> None:
    db, _, _ = fleet
    before = snapshot(db)
    output = usage_error(
        "cancel", "--where", "saga=nothing_like_it", "--where", "saga=order_fulfillment", "--db", db
    )
    assert "given twice" in output
    assert snapshot(db) == before
    output = usage_error("list", "--status", "failed", "--where", "status=running", "--db", db)
    assert "given twice" in output


def test_skip_needs_a_step_and_a_json_object(fleet: Fleet) -> None:
    db, ids, _ = fleet
    before = snapshot(db)
    output = usage_error("skip", ids["r-1"], "--actor", "bob", "--db", db)
    assert "Missing option '--step'" in output
    for data, why in (("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object")):
        output = usage_error("skip", ids["r-1"], "--step", "ship", "--data", data, "--db", db)
        assert "'--data'" in output
        assert why in output
    assert snapshot(db) == before
    refused = invoke("skip", ids["r-1"], "--step", "nope", "--actor", "bob", "--db", db)
    assert refused.exit_code == 1
    assert "no step 'nope'" in refused.output


def test_a_bulk_retry_on_postgresql_and_sqlite(database: str, clock: ManualClock) -> None:
    from operations_support import ROOT

    from sagas import load_definition

    definition = load_definition(ROOT / "definitions" / "order_fulfillment.yaml")
    with saga_engine(database, clock=clock) as engine:
        engine.register(definition)
        orders = Orders(engine, clock)
        failed = orders.fail_with_refund_down(["f-1", "f-2"])
        orders.start("c-1")
        orders.refund_down = False
        engine.run_until_idle()

    report = json.loads(
        ok("retry", "--where", "status=failed", "--json", "--actor", "bob", "--db", database)
    )
    assert sorted(r["sagaId"] for r in report["results"]) == sorted(failed)
    assert report["summary"] == {"applied": 2}
    page = json.loads(ok("list", "--status", "compensating", "--json", "--db", database))
    assert sorted(item["sagaId"] for item in page["items"]) == sorted(failed)
    assert order_id("c-1") not in {item["sagaId"] for item in page["items"]}


# -- sagas list -----------------------------------------------------------------------------


def listed(db: str, *options: str) -> list[str]:
    page = json.loads(ok("list", "--json", *options, "--db", db))
    assert page["total"] == len(page["items"]), page
    return [item["correlationKey"] for item in page["items"]]


def test_list_filters(fleet: Fleet) -> None:
    db, _, start = fleet
    five_hours_ago = (start + timedelta(hours=5)).isoformat()
    naive_utc = (start + timedelta(hours=5)).replace(tzinfo=None).isoformat(timespec="seconds")
    cases: list[tuple[tuple[str, ...], list[str]]] = [
        ((), ["w-1", "r-1", "f-1", "x-1", "c-2", "p-1", "c-1"]),
        (("--status", "running"), ["w-1", "r-1"]),
        (("--status", "completed", "--status", "cancelled"), ["x-1", "c-2", "c-1"]),
        (("--saga", "order_fulfillment", "--status", "failed"), ["f-1"]),
        (("--saga", "travel_booking"), []),
        (("--version", "1"), ["f-1", "p-1", "c-1"]),
        (("--key", "x-1"), ["x-1"]),
        (("--failed-step", "take_payment"), ["f-1"]),
        (("--failed-step", "ship"), ["p-1"]),
        (("--waiting-timer",), ["w-1"]),
        (("--since", "2h"), ["w-1", "r-1", "f-1"]),
        (("--since", "3h"), ["w-1", "r-1", "f-1", "x-1"]),
        (("--until", "2h"), ["x-1", "c-2", "p-1", "c-1"]),
        (("--since", "9h", "--until", "3h"), ["c-2", "p-1"]),
        (("--since", five_hours_ago), ["w-1", "r-1", "f-1", "x-1", "c-2"]),
        (("--until", naive_utc), ["p-1", "c-1"]),
        (("--where", "started>=7h"), ["w-1", "r-1", "f-1", "x-1", "c-2"]),
        # f-1 started 6h ago but was updated 1h ago: started and updated differ.
        (("--where", "started<5h"), ["f-1", "p-1", "c-1"]),
        (("--until", "5h"), ["p-1", "c-1"]),
        (("--where", "failed_step=take_payment", "--version", "2"), []),
    ]
    for options, expected in cases:
        assert listed(db, *options) == expected, options


def test_list_json_items_and_table(fleet: Fleet) -> None:
    db, ids, _ = fleet
    page = json.loads(ok("list", "--failed-step", "take_payment", "--json", "--db", db))
    assert set(page) == {"total", "limit", "offset", "items"}
    [item] = page["items"]
    assert item["sagaId"] == ids["f-1"]
    assert (item["saga"], item["version"], item["status"]) == ("order_fulfillment", 1, "failed")
    assert item["failedStep"] == "take_payment"
    assert "gave up" in item["reason"]
    table = ok("list", "--status", "failed", "--db", db)
    assert ids["f-1"] in table
    assert "1–1 of 1" in table
    assert "status=failed" in table
    assert "more:" not in table


def test_list_pages(fleet: Fleet) -> None:
    db, _, _ = fleet
    pages = []
    for offset in (0, 3, 6):
        page = json.loads(ok("list", "--json", "--limit", "3", "--offset", str(offset), "--db", db))
        assert (page["total"], page["limit"], page["offset"]) == (len(FLEET), 3, offset)
        pages.append([item["correlationKey"] for item in page["items"]])
    assert pages == [["w-1", "r-1", "f-1"], ["x-1", "c-2", "p-1"], ["c-1"]]

    first = ok("list", "--limit", "3", "--db", db)
    assert "1–3 of 7" in first
    assert "more: --offset 3" in first
    middle = ok("list", "--limit", "3", "--offset", "3", "--db", db)
    assert "4–6 of 7" in middle
    assert "more: --offset 6" in middle
    last = ok("list", "--limit", "3", "--offset", "6", "--db", db)
    assert "more:" not in last
    beyond = ok("list", "--limit", "3", "--offset", "10", "--db", db)
    assert "none of 7" in beyond
    assert usage_error("list", "--limit", "0", "--db", db)
    assert usage_error("list", "--offset", "-1", "--db", db)
    assert usage_error("list", "--status", "broken", "--db", db)


# -- sagas stats ----------------------------------------------------------------------------


@pytest.fixture
def busy(tmp_path: Path, order_definition: SagaDefinition) -> tuple[str, list[str]]:
    """Five orders completed 30 minutes ago with payments taking 1s to 5s, one compensated,
    one waiting for its shipment (whose 5 minute timeout is overdue by now), and one whose
    payment an operator retried (the new attempt waits in the outbox, nobody carrying it out)."""
    path = tmp_path / "stats.db"
    clock = ManualClock(datetime.now(UTC) - timedelta(minutes=30))
    with saga_engine(f"sqlite:///{path}", clock=clock) as engine:
        engine.register(order_definition)
        orders = Orders(engine, clock)
        for n in range(1, 6):
            orders.payment_seconds = n
            orders.start(f"o-{n}")
            engine.run_until_idle()
        orders.payment_seconds = 0
        orders.failing_shipments.add("bad")
        orders.silent_shipments.add("slow")
        orders.crashing_payments.add("crash")
        for key in ("bad", "slow", "crash"):
            orders.start(key)
        engine.run_until_idle()
    assert ok("retry", order_id("crash"), "--actor", "bob", "--db", str(path))
    return str(path), [order_id(f"o-{n}") for n in range(1, 6)]


def test_stats_json(busy: tuple[str, list[str]]) -> None:
    db, _ = busy
    document = json.loads(ok("stats", "--json", "--db", db))

    assert document["windowSeconds"] == 3600
    [saga] = document["sagas"]
    assert saga["saga"] == "order_fulfillment"
    assert saga["counts"] == {"completed": 5, "compensated": 1, "running": 2}
    assert saga["total"] == 8
    assert saga["started"] == 8
    assert saga["ended"] == {"completed": 5, "compensated": 1}
    assert saga["startedPerSecond"] == pytest.approx(8 / 3600)
    assert saga["endedPerSecond"] == pytest.approx(6 / 3600)
    steps = {step["step"]: step for step in document["steps"]}
    payment = steps["take_payment"]
    assert payment["count"] == 5 + 1  # the slow one paid at once
    assert payment["p50"] <= payment["p90"] <= payment["p99"] <= payment["max"]
    assert (payment["p50"], payment["max"]) == (2.0, 5.0)
    for step in document["steps"]:
        assert 0 <= step["p50"] <= step["p90"] <= step["p99"] <= step["max"], step
    assert document["sampledInstances"] == 8
    backlog = document["backlog"]
    assert set(backlog) == {
        "queued",
        "outbox",
        "outboxLagSeconds",
        "outboxExpired",
        "timers",
        "timersOverdue",
        "timerLatenessSeconds",
    }
    assert (backlog["queued"], backlog["outbox"], backlog["outboxExpired"]) == (0, 1, 1)
    assert 0 <= backlog["outboxLagSeconds"] < 60, "written by the operator just now"
    # slow: its deadline and its shipment timeout (overdue); crash: its deadline and the new
    # attempt's timeout (due 10s after the retry: not yet).
    assert (backlog["timers"], backlog["timersOverdue"]) == (4, 1)
    assert 24 * 60 < backlog["timerLatenessSeconds"] < 40 * 60

    recent = json.loads(ok("stats", "--json", "--window", "10m", "--db", db))
    [saga] = recent["sagas"]
    assert saga["counts"] == {"completed": 5, "compensated": 1, "running": 2}
    assert (saga["started"], saga["ended"]) == (0, {})
    assert recent["windowSeconds"] == 600


def test_stats_table(busy: tuple[str, list[str]]) -> None:
    db, _ = busy
    output = ok("stats", "--db", db)
    assert "Instances (throughput over the last 1h)" in output
    assert "order_fulfillment" in output
    assert "Step latency" in output
    assert "take_payment" in output
    assert "Backlog: 0 queued events; 1 effects in the outbox" in output
    assert "1 with an expired lease" in output
    assert "4 timers (1 overdue" in output


@pytest.mark.parametrize(("window", "why"), [("soon", ""), ("0s", "must be longer than zero")])
def test_stats_rejects_a_bad_window(busy: tuple[str, list[str]], window: str, why: str) -> None:
    db, _ = busy
    output = usage_error("stats", "--window", window, "--db", db)
    assert "--window" in output
    assert why in output
