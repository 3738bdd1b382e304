"""Selecting instances: ``parse_where`` (the ``--where`` clauses), ``InstanceFilter`` as JSON,
and the store's ``list_instances``, ``count_matching``, ``backlog`` and the statistics on every
backend, over instances written at known times on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from operations_support import FLEET, Orders, build_fleet
from pydantic import ValidationError

from sagas import SagaDefinition
from sagas.engine.operator import OperatorAction
from sagas.engine.state import InstanceStatus
from sagas.events import Event
from sagas.operations import ActionRequest, Operations, collect_stats
from sagas.store.filters import WHERE_FIELDS, InstanceFilter, WhereError, parse_where
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock, saga_engine

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
FAILED, RUNNING = InstanceStatus.FAILED, InstanceStatus.RUNNING

# -- parse_where ----------------------------------------------------------------------------


def test_no_clause_selects_every_instance() -> None:
    where = parse_where([], NOW)
    assert where == InstanceFilter()
    assert where.describe() == "every instance"


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("status=failed", InstanceFilter(status=(FAILED,))),
        (
            "status=failed, cancelled ,",
            InstanceFilter(status=(FAILED, InstanceStatus.CANCELLED)),
        ),
        ("saga=order_fulfillment", InstanceFilter(saga="order_fulfillment")),
        ("version=2", InstanceFilter(version=2)),
        ("key=order-7", InstanceFilter(key="order-7")),
        ("key=a=b", InstanceFilter(key="a=b")),
        ("failed_step=take_payment", InstanceFilter(failed_step="take_payment")),
        ("failed-step=ship", InstanceFilter(failed_step="ship")),
        ("waiting_timer=true", InstanceFilter(waiting_timer=True)),
        ("waiting_timer=false", InstanceFilter(waiting_timer=False)),
        (" saga = spaced ", InstanceFilter(saga="spaced")),
    ],
)
def test_each_field_parses(clause: str, expected: InstanceFilter) -> None:
    assert parse_where([clause], NOW) == expected


def test_times_take_at_or_after_and_before_with_durations_relative_to_now() -> None:
    where = parse_where(["started>=2h", "started<30m", "updated>=1d", "updated<90s"], NOW)

    assert where.started_after == NOW - timedelta(hours=2)
    assert where.started_before == NOW - timedelta(minutes=30)
    assert where.updated_after == NOW - timedelta(days=1)
    assert where.updated_before == NOW - timedelta(seconds=90)


def test_iso_times_without_an_offset_are_utc_and_with_one_keep_it() -> None:
    naive = parse_where(["updated>=2030-05-31T08:15"], NOW)
    aware = parse_where(["started<2030-05-31T08:15:00+02:00"], NOW)
    zulu = parse_where(["started>=2030-05-31T08:15:00Z"], NOW)

    assert naive.updated_after == datetime(2030, 5, 31, 8, 15, tzinfo=UTC)
    assert aware.started_before == datetime(2030, 5, 31, 6, 15, tzinfo=UTC)
    assert aware.started_before is not None
    assert aware.started_before.utcoffset() == timedelta(hours=2)
    assert zulu.started_after == datetime(2030, 5, 31, 8, 15, tzinfo=UTC)


def test_all_clauses_hold_together() -> None:
    where = parse_where(
        ["status=failed", "saga=order_fulfillment", "version=1", "updated>=2h"], NOW
    )
    assert where == InstanceFilter(
        status=(FAILED,),
        saga="order_fulfillment",
        version=1,
        updated_after=NOW - timedelta(hours=2),
    )
    assert where.describe() == (
        "status=failed saga=order_fulfillment version=1 "
        f"updated_after={(NOW - timedelta(hours=2)).isoformat()}"
    )


@pytest.mark.parametrize(
    ("clauses", "bad", "why"),
    [
        (["statu=failed"], "statu=failed", "unknown field 'statu'"),
        (["status"], "status", "expected FIELD=VALUE"),
        (["Status=failed"], "Status=failed", "expected FIELD=VALUE"),
        (["saga>=x"], "saga>=x", "saga takes = only"),
        (["status<failed"], "status<failed", "status takes = only"),
        (["updated<=2h"], "updated<=2h", "times take >= or <"),
        (["started>2h"], "started>2h", "times take >= or <"),
        (["updated>=yesterday"], "updated>=yesterday", "neither a time"),
        (["started<2030-13-45"], "started<2030-13-45", "neither a time"),
        (["status=broken"], "status=broken", "status"),
        (["version=two"], "version=two", "version"),
        (["version=0"], "version=0", "version"),
        (["key="], "key=", "key"),
        (["waiting_timer=maybe"], "waiting_timer=maybe", "waiting_timer"),
    ],
)
def test_every_error_names_the_clause(clauses: list[str], bad: str, why: str) -> None:
    with pytest.raises(WhereError) as raised:
        parse_where(["saga=fine", *clauses], NOW)
    message = str(raised.value)
    assert f"{bad}" in message
    assert why in message
    assert isinstance(raised.value, ValueError)


def test_a_field_given_twice_with_different_values_is_an_error_not_a_silent_override() -> None:
    # "all must hold": saga=a and saga=b select nothing; keeping only the last one would make a
    # bulk action act on every instance of b.
    for clauses in (
        ["saga=a", "saga=b"],
        ["status=failed", "status=running"],
        ["updated>=2h", "updated>=1h"],
        ["waiting_timer=true", "waiting_timer=false"],
    ):
        with pytest.raises(WhereError) as raised:
            parse_where(clauses, NOW)
        assert repr(clauses[1]) in str(raised.value), clauses
        assert "twice" in str(raised.value)
    # The same condition twice is harmless.
    assert parse_where(["saga=a", "saga=a"], NOW) == InstanceFilter(saga="a")
    assert parse_where(["status=failed", "status=failed"], NOW) == InstanceFilter(status=(FAILED,))


def test_where_fields_are_what_the_help_lists() -> None:
    assert set(WHERE_FIELDS) == {
        "status",
        "saga",
        "version",
        "key",
        "failed_step",
        "waiting_timer",
        "started",
        "updated",
    }


# -- InstanceFilter as JSON -----------------------------------------------------------------


def test_instance_filter_reads_camel_case_aliases_and_field_names() -> None:
    at = "2030-05-31T08:15:00+00:00"
    by_alias = InstanceFilter.model_validate(
        {
            "status": ["failed", "running"],
            "saga": "order_fulfillment",
            "version": 2,
            "key": "o-1",
            "failedStep": "take_payment",
            "waitingTimer": True,
            "startedAfter": at,
            "startedBefore": at,
            "updatedAfter": at,
            "updatedBefore": at,
        }
    )
    by_name = InstanceFilter.model_validate(
        {
            "status": ["failed", "running"],
            "saga": "order_fulfillment",
            "version": 2,
            "key": "o-1",
            "failed_step": "take_payment",
            "waiting_timer": True,
            "started_after": at,
            "started_before": at,
            "updated_after": at,
            "updated_before": at,
        }
    )
    assert by_alias == by_name
    assert by_alias.status == (FAILED, RUNNING)
    assert by_alias.updated_before == datetime(2030, 5, 31, 8, 15, tzinfo=UTC)
    dumped = by_alias.model_dump(mode="json", by_alias=True)
    assert dumped["failedStep"] == "take_payment"
    assert InstanceFilter.model_validate_json(by_alias.model_dump_json(by_alias=True)) == by_alias


@pytest.mark.parametrize(
    "raw",
    [
        {"status": ["broken"]},
        {"version": 0},
        {"saga": ""},
        {"startedAfter": "2030-05-31T08:15:00"},  # naive: ambiguous
        {"colour": "red"},
    ],
)
def test_instance_filter_rejects_bad_json(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        InstanceFilter.model_validate(raw)


def test_an_instance_filter_is_frozen() -> None:
    where = InstanceFilter(saga="x")
    with pytest.raises(ValidationError):
        where.saga = "y"  # type: ignore[misc]


# -- the store ------------------------------------------------------------------------------


@pytest.fixture
def fleet(
    database: str, clock: ManualClock, order_definition: SagaDefinition
) -> Iterator[tuple[SQLStore, dict[str, str], datetime]]:
    """The seven orders of ``build_fleet``; the store, their ids by key, and T."""
    start = clock.now()
    ids = build_fleet(database, clock, order_definition)
    store = SQLStore(database)
    try:
        yield store, ids, start
    finally:
        store.close()


def keys(store: SQLStore, where: InstanceFilter) -> list[str]:
    records = store.list_instances(where, limit=100)
    assert store.count_matching(where) == len(records), where
    return [record.state.correlation_key for record in records]


def test_list_instances_is_most_recently_updated_first(
    fleet: tuple[SQLStore, dict[str, str], datetime],
) -> None:
    store, _, _ = fleet
    assert keys(store, InstanceFilter()) == ["w-1", "r-1", "f-1", "x-1", "c-2", "p-1", "c-1"]
    assert store.list_instances() == store.list_instances(InstanceFilter())
    assert store.count_matching() == len(FLEET)


def test_each_filter_on_the_store(fleet: tuple[SQLStore, dict[str, str], datetime]) -> None:
    store, _, t = fleet
    h = timedelta(hours=1)
    cases: list[tuple[InstanceFilter, list[str]]] = [
        (InstanceFilter(status=(RUNNING,)), ["w-1", "r-1"]),
        (
            InstanceFilter(status=(InstanceStatus.COMPLETED, InstanceStatus.CANCELLED)),
            ["x-1", "c-2", "c-1"],
        ),
        (InstanceFilter(status=(InstanceStatus.COMPENSATING,)), []),
        (
            InstanceFilter(saga="order_fulfillment"),
            ["w-1", "r-1", "f-1", "x-1", "c-2", "p-1", "c-1"],
        ),
        (InstanceFilter(saga="travel_booking"), []),
        (InstanceFilter(version=1), ["f-1", "p-1", "c-1"]),
        (InstanceFilter(version=2), ["w-1", "r-1", "x-1", "c-2"]),
        (InstanceFilter(key="f-1"), ["f-1"]),
        (InstanceFilter(key="nobody"), []),
        (InstanceFilter(failed_step="take_payment"), ["f-1"]),
        (InstanceFilter(failed_step="ship"), ["p-1"]),
        (InstanceFilter(failed_step="reserve_inventory"), []),
        (InstanceFilter(waiting_timer=True), ["w-1"]),
        (InstanceFilter(updated_after=t + 8 * h), ["w-1", "r-1", "f-1"]),
        (InstanceFilter(updated_before=t + 8 * h), ["x-1", "c-2", "p-1", "c-1"]),
        (InstanceFilter(started_after=t + 3 * h), ["w-1", "r-1", "f-1", "x-1", "c-2"]),
        (InstanceFilter(started_before=t + 5 * h), ["f-1", "p-1", "c-1"]),
        # The bounds are after <= t < before.
        (InstanceFilter(started_after=t + 2 * h, started_before=t + 4 * h), ["p-1"]),
        (InstanceFilter(updated_after=t + 9 * h, updated_before=t + 9.5 * h), ["f-1"]),
        (InstanceFilter(status=(InstanceStatus.COMPLETED,), version=2), ["c-2"]),
        (InstanceFilter(status=(FAILED,), version=2), []),
        (InstanceFilter(status=(RUNNING,), waiting_timer=True, key="r-1"), []),
    ]
    for where, expected in cases:
        assert keys(store, where) == expected, where.describe()


def test_a_filter_in_another_time_zone_selects_the_same_instances(
    fleet: tuple[SQLStore, dict[str, str], datetime],
) -> None:
    store, _, t = fleet
    far = timezone(timedelta(hours=14))
    where = InstanceFilter(updated_after=(t + timedelta(hours=8)).astimezone(far))
    assert keys(store, where) == ["w-1", "r-1", "f-1"]


def test_pages_cover_every_instance_once(
    fleet: tuple[SQLStore, dict[str, str], datetime],
) -> None:
    store, ids, _ = fleet
    pages = [store.list_instances(limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [len(page) for page in pages] == [3, 3, 1, 0]
    seen = [record.saga_id for page in pages for record in page]
    assert sorted(seen) == sorted(ids.values())
    where = InstanceFilter(version=2)
    assert [r.state.correlation_key for r in store.list_instances(where, limit=2, offset=1)] == [
        "r-1",
        "x-1",
    ]


def test_instance_ids_list_the_same_instances_in_the_same_order(
    fleet: tuple[SQLStore, dict[str, str], datetime],
) -> None:
    store, ids, _ = fleet
    for where in (InstanceFilter(), InstanceFilter(version=2)):
        for limit, offset in ((3, 0), (3, 3), (2, 1), (100, 0)):
            listed = [r.saga_id for r in store.list_instances(where, limit=limit, offset=offset)]
            assert store.instance_ids(where, limit=limit, offset=offset) == listed
    assert sorted(store.instance_ids(limit=100)) == sorted(ids.values())


def test_the_backlog_counts_queue_outbox_leases_and_overdue_timers(
    fleet: tuple[SQLStore, dict[str, str], datetime], clock: ManualClock
) -> None:
    store, ids, t = fleet
    now = clock.now()
    idle = store.backlog(now)
    assert (idle.queued, idle.outbox, idle.outbox_expired) == (0, 0, 0)
    assert idle.outbox_oldest is None
    # r-1: its deadline and its shipment's timeout; w-1: its deadline and its retry.
    assert idle.timers == 4
    assert (idle.timers_overdue, idle.overdue_since) == (0, None)
    [retry] = [r.timer for r in store.timers(ids["w-1"]) if r.timer.kind.value == "retry"]

    later = store.backlog(retry.due_at)
    assert (later.timers_overdue, later.overdue_since) == (1, retry.due_at)
    hours = store.backlog(t + timedelta(hours=11))
    assert hours.timers == hours.timers_overdue == 4
    assert hours.overdue_since == retry.due_at

    # Two events queued, nobody deciding them.
    store.enqueue(
        [
            Event.create("Unrelated", {}, at=now),
            Event.create("OrderShipped", {}, at=now, saga_id=ids["r-1"]),
        ],
        received_at=now,
    )
    # An operator's retry leaves the new attempt in the outbox, its lease already expired.
    clock.advance("1m")
    acted_at = clock.now()
    operations = Operations(store, clock)
    result = operations.act(ids["w-1"], ActionRequest(OperatorAction.RETRY, "alice"))
    assert result.status_after == RUNNING
    backlog = store.backlog(acted_at + timedelta(seconds=5))
    assert backlog.queued == 2
    assert backlog.outbox == 1
    assert backlog.outbox_oldest == acted_at
    assert backlog.outbox_expired == 1
    # The retry timer went; the new attempt's timeout came.
    assert backlog.timers == 4
    assert store.backlog(acted_at - timedelta(seconds=1)).outbox_expired == 0


def test_collect_stats_counts_and_step_latency_percentiles(
    database: str, clock: ManualClock, order_definition: SagaDefinition
) -> None:
    with saga_engine(database, clock=clock) as engine:
        engine.register(order_definition)
        orders = Orders(engine, clock)
        for n in range(1, 11):  # payments taking 1s, 2s, ... 10s
            orders.payment_seconds = n
            orders.start(f"o-{n}")
            engine.run_until_idle()
        orders.payment_seconds = 0
        orders.failing_shipments.add("bad")
        orders.start("bad")
        engine.run_until_idle()
        clock.advance("1h")
        orders.start("late")  # a running one, started after the window below
        orders.silent_shipments.add("late")
        engine.run_until_idle()
        now = clock.now()

        stats = collect_stats(engine.store, now, timedelta(minutes=30))
        whole = collect_stats(engine.store, now, timedelta(hours=3))

    [order] = whole.sagas
    assert order.counts == {
        InstanceStatus.COMPLETED: 10,
        InstanceStatus.COMPENSATED: 1,
        RUNNING: 1,
    }
    assert order.total == 12
    assert order.started == 12
    assert order.ended == {InstanceStatus.COMPLETED: 10, InstanceStatus.COMPENSATED: 1}
    latency = {step.step: step for step in whole.steps}
    payment = latency["take_payment"]
    assert payment.count == 10 + 1, "the running one paid at once"
    assert (payment.p50, payment.p90, payment.p99, payment.max) == (5.0, 9.0, 10.0, 10.0)
    assert latency["reserve_inventory"].max == 0.0
    assert whole.sampled == 12
    document = whole.to_dict()
    assert document["windowSeconds"] == 3 * 3600
    assert document["sagas"][0]["startedPerSecond"] == pytest.approx(12 / (3 * 3600))

    [recent] = stats.sagas
    assert recent.counts == order.counts, "counts are of now, not of the window"
    assert recent.started == 1
    assert recent.ended == {}
    assert {step.step for step in stats.steps} == {"reserve_inventory", "take_payment"}
    assert stats.sampled == 1
