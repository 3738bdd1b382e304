"""The HTTP API, /metrics, /healthz and the dashboard of ``sagas serve`` on a seeded database:
listing and filters, problem details, the bearer token, operator actions one at a time and in
bulk (carried out by a worker afterwards), statistics, definitions and step graphs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from prometheus_client.parser import text_string_to_metric_families
from sample_services import Participants
from server_checks import TOKEN, Seeded, open_app, seeded_engine

from sagas.engine.operator import OPERATOR_EVENT_TYPES
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.runtime.engine import Engine
from sagas.server.graph import STEP_COLOURS
from sagas.server.problems import PROBLEM_JSON
from sagas.testing import ManualClock

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def seeded(database: str, clock: ManualClock) -> Iterator[tuple[Engine, Participants, Seeded]]:
    with seeded_engine(database, clock) as found:
        yield found


@pytest.fixture
def client(
    database: str, clock: ManualClock, seeded: tuple[Engine, Participants, Seeded]
) -> Iterator[TestClient]:
    with open_app(database, clock) as app, TestClient(app) as client:
        yield client


@pytest.fixture
def sqlite_database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'server.db'}"


@pytest.fixture
def sqlite_seeded(sqlite_database: str, clock: ManualClock) -> Iterator[Seeded]:
    with seeded_engine(sqlite_database, clock) as (_, _, seeded):
        yield seeded


@pytest.fixture
def sqlite_client(
    sqlite_database: str, clock: ManualClock, sqlite_seeded: Seeded
) -> Iterator[TestClient]:
    """A client on a seeded SQLite database, for what does not depend on the backend."""
    with open_app(sqlite_database, clock) as app, TestClient(app) as client:
        yield client


def problem(response: Response, status: int) -> dict[str, Any]:
    """The problem detail of ``response``, after checking it is one with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= set(body)
    assert body["instance"] == response.request.url.path
    return body


def listed(client: TestClient, params: Any) -> tuple[int, list[str]]:
    response = client.get("/api/instances", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    return page["total"], [item["sagaId"] for item in page["items"]]


# -- listing -------------------------------------------------------------------------------


def test_paging_goes_through_every_instance_once_most_recently_updated_first(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    _, _, ids = seeded
    seen: list[str] = []
    updated: list[str] = []
    for offset in range(0, 12, 3):
        page = client.get("/api/instances", params={"limit": 3, "offset": offset}).json()
        assert (page["total"], page["limit"], page["offset"]) == (len(ids.all), 3, offset)
        assert len(page["items"]) == min(3, len(ids.all) - offset)
        seen += [item["sagaId"] for item in page["items"]]
        updated += [item["updatedAt"] for item in page["items"]]
    assert sorted(seen) == sorted(ids.all)
    assert updated == sorted(updated, reverse=True)
    beyond = client.get("/api/instances", params={"offset": 100}).json()
    assert (beyond["total"], beyond["items"]) == (len(ids.all), [])
    first = client.get("/api/instances").json()
    assert (first["limit"], first["offset"], first["total"]) == (50, 0, len(ids.all))
    item = first["items"][0]
    assert set(item) == {
        "sagaId",
        "saga",
        "version",
        "correlationKey",
        "status",
        "reason",
        "failedStep",
        "startedAt",
        "updatedAt",
    }


def test_each_filter_selects_what_it_says(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    _, _, ids = seeded
    k = ids.keys
    two = ids.phase_two
    east = timezone(timedelta(hours=5))
    cases: list[tuple[Any, list[str]]] = [
        ({"status": "failed"}, ids.failed),
        ([("status", "failed"), ("status", "running")], ids.failed + ids.running),
        ({"status": "completed"}, ids.completed),
        ({"status": "cancelled"}, []),
        ({"saga": "travel_booking"}, [k["trip-ok-1"], k["nomail-1"]]),
        ({"saga": "order_fulfillment", "status": "compensated"}, ids.compensated),
        ({"saga": "no_such_saga"}, []),
        ({"version": 1}, ids.all),
        ({"version": 2}, []),
        ({"key": "ok-2"}, [k["ok-2"]]),
        ({"failedStep": "send_itinerary"}, [ids.travel_failed]),
        ({"failedStep": "take_payment"}, [k["declined-1"], ids.order_failed]),
        ({"failedStep": "reserve_inventory"}, [k["nostock-1"]]),
        ({"waitingTimer": "true"}, [ids.waiting_retry]),
        ({"waitingTimer": "false"}, ids.all),
        ({"startedAfter": two.isoformat()}, ids.running),
        ({"startedBefore": two.isoformat()}, ids.completed + ids.compensated + ids.failed),
        ({"updatedAfter": two.astimezone(east).isoformat()}, ids.running),
        (
            {"updatedBefore": (ids.phase_one + timedelta(seconds=1)).isoformat()},
            ids.completed + ids.compensated,
        ),
        (
            {"saga": "order_fulfillment", "status": "failed", "startedBefore": two.isoformat()},
            [ids.order_failed],
        ),
    ]
    for params, expected in cases:
        total, found = listed(client, params)
        assert sorted(found) == sorted(expected), params
        assert total == len(expected), params
    # Paging within a filter: the total is the filter's, not the page's.
    total, found = listed(client, {"status": "completed", "limit": 3, "offset": 2})
    assert (total, len(found)) == (4, 2)
    assert set(found) < set(ids.completed)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("status=bogus", "status"),
        ("status=failed&status=sleeping", "status"),
        ("startedAfter=2030-01-01T00:00:00", "startedAfter"),
        ("startedBefore=2030-01-01", "startedBefore"),
        ("updatedAfter=yesterday", "updatedAfter"),
        ("updatedBefore=2030-13-01T00:00:00Z", "updatedBefore"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("version=0", "version"),
        ("version=one", "version"),
        ("saga=", "saga"),
        ("key=", "key"),
        ("failedStep=", "failedStep"),
        ("waitingTimer=maybe", "waitingTimer"),
        ("stauts=failed", "stauts"),
        ("failed_step=ship", "failed_step"),
    ],
)
def test_a_malformed_filter_is_a_problem_naming_the_parameter(
    sqlite_client: TestClient, query: str, parameter: str
) -> None:
    body = problem(sqlite_client.get(f"/api/instances?{query}"), 422)
    assert parameter in body["detail"]
    assert any(parameter in error["where"] for error in body["errors"]), body


def test_input_the_database_cannot_hold_is_a_422_not_a_server_error(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    """NUL characters (PostgreSQL text cannot hold one), times with no UTC equivalent, versions
    beyond the INTEGER column (SQLite overflows), NaN, and data nested deeper than the store
    reads back (the instance would be unreadable for good): each a 422 naming what is wrong,
    where they were 500 or 503 ("the database failed"), on every backend."""
    _, _, ids = seeded
    nul = "must not contain NUL characters"
    requests: list[tuple[str, str, Any, str]] = [
        ("GET", "/api/instances?key=a%00b", None, nul),
        ("GET", "/api/instances?saga=a%00b", None, nul),
        ("GET", "/api/instances/a%00b", None, nul),
        ("GET", "/api/instances/a%00b/graph.svg", None, nul),
        ("GET", "/api/definitions/a%00b/1/graph.svg", None, nul),
        ("GET", "/instances/a%00b", None, nul),
        ("POST", "/api/instances/a%00b/retry", {}, nul),
        ("POST", f"/api/instances/{ids.order_failed}/retry", {"reason": "a\x00b"}, "reason"),
        ("POST", f"/api/instances/{ids.stuck}/cancel", {"actor": "\x00"}, "actor"),
        (
            "POST",
            f"/api/instances/{ids.travel_failed}/skip",
            {"step": "send_itinerary", "data": {"note": ["ok", "a\x00b"]}},
            "data.note.1",
        ),
        ("POST", "/api/actions/retry", {"where": {"key": "a\x00b"}}, "where.key"),
        ("GET", "/api/instances?updatedBefore=9999-12-31T23:59:59-14:00", None, "updatedBefore"),
        ("GET", "/api/instances?startedAfter=0001-01-01T00:00:00%2B14:00", None, "startedAfter"),
        (
            "POST",
            "/api/actions/cancel",
            {"where": {"startedBefore": "0001-01-01T00:00:00+14:00"}},
            "where.startedBefore",
        ),
        ("GET", f"/api/instances?version={2**63}", None, "version"),
        ("GET", f"/api/definitions/order_fulfillment/{2**63}/graph.svg", None, "version"),
        ("POST", "/api/actions/retry", {"where": {"version": 2**63}}, "where.version"),
        ("GET", "/api/stats?window=99999999999d", None, "window"),
        ("GET", "/api/stats?window=P9999Y", None, "window"),
        (
            "POST",
            f"/api/instances/{ids.stuck}/skip",
            {"step": "ship", "data": {"deep": _nested(40)}},
            "nested deeper than",
        ),
    ]
    before = {saga_id: client.get(f"/api/instances/{saga_id}").json() for saga_id in ids.all}
    for method, path, body, words in requests:
        found = problem(client.request(method, path, json=body, headers=AUTH), 422)
        assert words in found["detail"], (method, path, found["detail"])
    nan = '{"step": "ship", "data": {"ratio": NaN}}'
    headers = AUTH | {"Content-Type": "application/json"}
    found = problem(
        client.post(f"/api/instances/{ids.stuck}/skip", content=nan, headers=headers), 422
    )
    assert "body: NaN is not a JSON number" in found["detail"]
    page = client.get("/?startedAfter=0001-01-01T00:00:00%2B14:00")
    assert page.status_code == 422
    assert "Filter not understood" in page.text
    after = {saga_id: client.get(f"/api/instances/{saga_id}").json() for saga_id in ids.all}
    assert after == before
    # Nesting the store reads back is fine.
    shallow = {"step": "ship", "data": {"deep": _nested(10)}}
    assert client.post(f"/api/instances/{ids.stuck}/skip", json=shallow, headers=AUTH).is_success
    shown = client.get(f"/api/instances/{ids.stuck}").json()
    assert shown["instance"]["data"]["deep"] == _nested(10)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"in": [value]}
    return value


# -- problems: unknown ids, the token ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/instances/no-such-saga"),
        ("GET", "/api/instances/no-such-saga/graph.svg"),
        ("POST", "/api/instances/no-such-saga/retry"),
        ("POST", "/api/instances/no-such-saga/cancel"),
        ("GET", "/api/definitions/no_such_saga/1/graph.svg"),
        ("GET", "/api/definitions/order_fulfillment/7/graph.svg"),
    ],
)
def test_what_does_not_exist_is_a_404_problem(
    sqlite_client: TestClient, method: str, path: str
) -> None:
    body = problem(sqlite_client.request(method, path, headers=AUTH, json={}), 404)
    assert "no-such-saga" in body["detail"] or "no definition" in body["detail"]


def test_malformed_paths_and_bodies_are_422_problems(
    sqlite_client: TestClient, sqlite_seeded: Seeded
) -> None:
    saga_id = sqlite_seeded.order_failed
    body = problem(sqlite_client.post(f"/api/instances/{saga_id}/explode", headers=AUTH), 422)
    assert "action" in body["detail"]
    body = problem(
        sqlite_client.post(f"/api/instances/{saga_id}/retry", headers=AUTH, json={"colour": 1}),
        422,
    )
    assert "colour" in body["detail"]
    json_type = AUTH | {"Content-Type": "application/json"}
    body = problem(
        sqlite_client.post(
            f"/api/instances/{saga_id}/retry", headers=json_type, content=b"{not json"
        ),
        422,
    )
    assert "not valid JSON" in body["detail"]
    body = problem(sqlite_client.get("/api/definitions/order_fulfillment/0/graph.svg"), 422)
    assert "version" in body["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/instances/{id}/retry", {}),
        ("/api/actions/retry", {"where": {"status": ["failed"]}}),
    ],
)
def test_mutations_need_the_bearer_token(
    sqlite_database: str, clock: ManualClock, sqlite_seeded: Seeded, path: str, body: Any
) -> None:
    path = path.format(id=sqlite_seeded.order_failed)
    with open_app(sqlite_database, clock) as app, TestClient(app) as client:
        missing = client.post(path, json=body)
        assert problem(missing, 401)
        assert missing.headers["www-authenticate"] == "Bearer"
        for wrong in ("Bearer not-the-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN):
            response = client.post(path, json=body, headers={"Authorization": wrong})
            assert problem(response, 401), wrong
            assert response.headers["www-authenticate"] == "Bearer"
        assert client.get(f"/api/instances/{sqlite_seeded.order_failed}").status_code == 200
    for options in ({"read_only": True}, {"token": None}):
        with open_app(sqlite_database, clock, **options) as app, TestClient(app) as client:
            for headers in (AUTH, {}):
                found = problem(client.post(path, json=body, headers=headers), 403)
                assert "read-only" in found["detail"]
            assert client.get("/api/instances").status_code == 200
            page = client.get("/")
            assert page.status_code == 200
    # Nothing was done by any of these requests.
    with open_app(sqlite_database, clock) as app, TestClient(app) as client:
        shown = client.get(f"/api/instances/{sqlite_seeded.order_failed}").json()
        assert shown["instance"]["status"] == "failed"
        assert not [e for e in shown["timeline"] if e["event"]["eventType"].startswith("sagas.op")]


# -- operator actions ----------------------------------------------------------------------


def operator_entries(shown: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in shown["timeline"] if e["event"]["eventType"] in OPERATOR_EVENT_TYPES]


def test_retry_of_a_failed_saga_is_applied_then_carried_out_by_a_worker(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    engine, participants, ids = seeded
    saga_id = ids.travel_failed
    response = client.post(
        f"/api/instances/{saga_id}/retry",
        headers=AUTH,
        json={"actor": "alice", "reason": "the mail server is back"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["sagaId"] == saga_id
    assert (report["outcome"], report["statusBefore"], report["statusAfter"]) == (
        "applied",
        "failed",
        "running",
    )
    assert report["eventId"]

    participants.mail_down = False
    engine.run_until_idle()

    shown = client.get(f"/api/instances/{saga_id}").json()
    assert shown["instance"]["status"] == "completed", shown["instance"]["reason"]
    assert shown["instance"]["steps"]["send_itinerary"]["status"] == "succeeded"
    [entry] = operator_entries(shown)
    assert entry["event"]["eventType"] == "sagas.RetryRequested"
    assert entry["event"]["eventId"] == report["eventId"]
    assert entry["event"]["data"]["actor"] == "alice"
    assert entry["event"]["data"]["reason"] == "the mail server is back"
    assert "retry by alice" in entry["note"]
    assert not entry["ignored"]
    assert shown["timeline"][-1]["event"]["eventType"] == "sagas.HandlerSucceeded"
    assert [seq["seq"] for seq in shown["timeline"]] == list(range(1, len(shown["timeline"]) + 1))


@pytest.mark.parametrize(
    ("kind", "action", "body", "why"),
    [
        ("completed", "compensate", {}, "only a running saga can be compensated"),
        ("completed", "retry", {}, "nothing to retry"),
        ("completed", "cancel", {}, "already ended completed"),
        ("running", "resume", {}, "only a cancelled or failed saga resumes"),
        ("failed", "skip", {}, "skip needs the step"),
        ("failed", "skip", {"step": "no_such_step"}, "no step 'no_such_step'"),
        ("failed", "retry", {"step": "reserve_inventory"}, "nothing to retry in step"),
    ],
)
def test_an_action_that_does_not_apply_is_refused_with_the_reason(
    client: TestClient,
    seeded: tuple[Engine, Participants, Seeded],
    kind: str,
    action: str,
    body: dict[str, Any],
    why: str,
) -> None:
    _, _, ids = seeded
    saga_id = {"completed": ids.keys["ok-1"], "running": ids.stuck, "failed": ids.order_failed}[
        kind
    ]
    before = client.get(f"/api/instances/{saga_id}").json()
    found = problem(client.post(f"/api/instances/{saga_id}/{action}", headers=AUTH, json=body), 409)
    assert found["detail"].startswith(f"{action} refused: ")
    assert why in found["detail"]
    assert found["sagaId"] == saga_id
    after = client.get(f"/api/instances/{saga_id}").json()
    assert after["instance"] == before["instance"] | {"version": before["instance"]["version"] + 1}
    # The refusal is in the log, as an ignored decision saying why.
    assert len(after["timeline"]) == len(before["timeline"]) + 1
    assert after["timeline"][-1]["ignored"]


def test_a_dry_run_reports_what_would_happen_and_changes_nothing(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    engine, _, ids = seeded
    before = client.get(f"/api/instances/{ids.order_failed}").json()
    outbox = engine.store.pending_outbox(100)
    response = client.post(
        f"/api/instances/{ids.order_failed}/retry", headers=AUTH, json={"dryRun": True}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["outcome"], report["statusBefore"], report["statusAfter"]) == (
        "would apply",
        "failed",
        "compensating",
    )
    assert report["eventId"] is None
    bulk = client.post(
        "/api/actions/cancel", headers=AUTH, json={"where": {"status": ["running"]}, "dryRun": True}
    ).json()
    assert bulk["dryRun"] is True
    assert bulk["summary"] == {"would apply": len(ids.running)}
    assert client.get(f"/api/instances/{ids.order_failed}").json() == before
    assert engine.store.pending_outbox(100) == outbox
    assert listed(client, {"status": "running"})[0] == len(ids.running)
    assert engine.run_until_idle() == 0


def test_bulk_retry_reports_per_instance_what_really_happened(
    client: TestClient, clock: ManualClock, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    engine, participants, ids = seeded
    clock.advance("1s")  # the retried ones are updated after everything else
    first = clock.now()
    where = {"where": {"status": ["failed"]}, "actor": "bob", "reason": "outage over"}
    response = client.post("/api/actions/retry", headers=AUTH, json=where)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["action"], report["dryRun"]) == ("retry", False)
    assert report["summary"] == {"applied": len(ids.failed)}
    assert sorted(r["sagaId"] for r in report["results"]) == sorted(ids.failed)
    for result in report["results"]:
        assert (result["outcome"], result["statusBefore"]) == ("applied", "failed")
        assert result["statusAfter"] in ("running", "compensating")
        assert result["eventId"]

    # The same request again: no instance is failed any more, so none is selected.
    again = client.post("/api/actions/retry", headers=AUTH, json=where).json()
    assert (again["summary"], again["results"]) == ({}, [])
    # Selected otherwise, the same instances: each refuses, saying why.
    same = {"where": {"updatedAfter": first.isoformat()}, "actor": "bob"}
    refused = client.post("/api/actions/retry", headers=AUTH, json=same).json()
    assert refused["summary"] == {"refused": len(ids.failed)}
    assert sorted(r["sagaId"] for r in refused["results"]) == sorted(ids.failed)
    for result in refused["results"]:
        assert result["outcome"] == "refused"
        assert result["note"].startswith("nothing to retry"), result
        assert result["eventId"]  # recorded in the log, ignored

    participants.mail_down = participants.refund_down = False
    engine.run_until_idle()
    assert listed(client, {"status": "failed"}) == (0, [])
    assert listed(client, {"status": "completed"})[1].count(ids.travel_failed) == 1
    assert listed(client, {"status": "compensated"})[1].count(ids.order_failed) == 1
    for saga_id in ids.failed:
        shown = client.get(f"/api/instances/{saga_id}").json()
        actors = [e["event"]["data"]["actor"] for e in operator_entries(shown)]
        assert actors == ["bob", "bob"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"where": {}}, "at least one condition"),
        ({}, "where"),
        ({"where": {"status": ["sleeping"]}}, "status"),
        ({"where": {"colour": "red"}}, "colour"),
        ({"where": {"startedAfter": "2030-01-01T00:00:00"}}, "startedAfter"),
        ({"where": {"status": ["failed"]}, "dryRun": "perhaps"}, "dryRun"),
    ],
)
def test_a_bulk_action_needs_a_well_formed_where(
    sqlite_client: TestClient, body: dict[str, Any], words: str
) -> None:
    found = problem(sqlite_client.post("/api/actions/retry", headers=AUTH, json=body), 422)
    assert words in found["detail"]
    total, _ = listed(sqlite_client, {"status": "failed"})
    assert total == 2


def test_skip_marks_the_step_done_with_the_data_given(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    engine, participants, ids = seeded
    calls = len(participants.calls)
    body = {
        "step": "send_itinerary",
        "data": {"itinerary": {"sentBy": "hand", "pages": 2}},
        "actor": "carol",
        "reason": "posted it",
    }
    response = client.post(f"/api/instances/{ids.travel_failed}/skip", headers=AUTH, json=body)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["outcome"], report["statusBefore"], report["statusAfter"]) == (
        "applied",
        "failed",
        "completed",
    )
    shown = client.get(f"/api/instances/{ids.travel_failed}").json()
    assert shown["instance"]["status"] == "completed"
    assert shown["instance"]["data"]["itinerary"] == {"sentBy": "hand", "pages": 2}
    assert shown["instance"]["steps"]["send_itinerary"]["status"] == "succeeded"
    [entry] = operator_entries(shown)
    assert entry["event"]["data"]["data"] == body["data"]
    assert entry["event"]["data"]["actor"] == "carol"
    engine.run_until_idle()  # nothing is left for a worker: the step is done
    assert engine.store.instance(ids.travel_failed).state.status == InstanceStatus.COMPLETED
    assert ("send_itinerary", ids.keys["nomail-1"]) not in participants.calls[calls:]


def test_cancel_and_resume_a_running_saga(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    _, _, ids = seeded
    cancel = client.post(f"/api/instances/{ids.stuck}/cancel", headers=AUTH, json={})
    assert cancel.json()["statusAfter"] == "cancelled"
    assert listed(client, {"status": "cancelled"}) == (1, [ids.stuck])
    resume = client.post(f"/api/instances/{ids.stuck}/resume", headers=AUTH, json={})
    assert (resume.json()["outcome"], resume.json()["statusAfter"]) == ("applied", "running")
    entries = operator_entries(client.get(f"/api/instances/{ids.stuck}").json())
    actions = [entry["event"]["eventType"] for entry in entries]
    assert actions == ["sagas.CancelRequested", "sagas.ResumeRequested"]
    for entry in entries:
        assert entry["event"]["data"]["actor"] == "api"


# -- statistics, definitions, graphs -------------------------------------------------------


def test_stats_count_per_saga_and_status(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    _, _, ids = seeded
    stats = client.get("/api/stats").json()
    assert set(stats) >= {"at", "windowSeconds", "sagas", "steps", "sampledInstances", "backlog"}
    assert stats["windowSeconds"] == 3600
    per_saga = {s["saga"]: s for s in stats["sagas"]}
    assert set(per_saga) == {"order_fulfillment", "travel_booking"}
    assert per_saga["order_fulfillment"]["counts"] == {
        "completed": 3,
        "compensated": 2,
        "failed": 1,
        "running": 2,
    }
    assert per_saga["travel_booking"]["counts"] == {"completed": 1, "failed": 1}
    assert sum(s["total"] for s in stats["sagas"]) == len(ids.all)
    assert set(stats["backlog"]) == {
        "queued",
        "outbox",
        "outboxLagSeconds",
        "outboxExpired",
        "timers",
        "timersOverdue",
        "timerLatenessSeconds",
    }
    assert stats["backlog"]["queued"] == stats["backlog"]["outbox"] == 0
    for step in stats["steps"]:
        assert set(step) == {"saga", "step", "count", "p50", "p90", "p99", "max"}
    longer = client.get("/api/stats", params={"window": "PT24H"}).json()
    assert longer["windowSeconds"] == 24 * 3600
    started = sum(s["started"] for s in longer["sagas"])
    assert started == len(ids.all)


@pytest.mark.parametrize("window", ["soon", "0s", "-1h", "1 fortnight", ""])
def test_a_bad_stats_window_is_a_422_problem(sqlite_client: TestClient, window: str) -> None:
    found = problem(sqlite_client.get("/api/stats", params={"window": window}), 422)
    assert "window" in found["detail"]


def test_definitions_lists_every_registered_version(client: TestClient) -> None:
    definitions = client.get("/api/definitions").json()
    by_name = {d["name"]: d for d in definitions}
    assert set(by_name) == {"order_fulfillment", "travel_booking"}
    order = by_name["order_fulfillment"]
    assert (order["version"], order["trigger"]) == (1, "OrderCreated")
    assert order["steps"] == ["reserve_inventory", "take_payment", "ship"]
    assert order["mermaid"].startswith("flowchart")
    assert "reserve_inventory<br/>command ReserveInventory" in order["mermaid"]
    assert by_name["travel_booking"]["steps"][-1] == "send_itinerary"


def svg_steps(response: Response) -> dict[str, tuple[str, str]]:
    """Per step box of an SVG response: its data-status and fill colour."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.text)
    assert root.tag == f"{SVG_NS}svg"
    boxes: dict[str, tuple[str, str]] = {}
    for group in root.iter(f"{SVG_NS}g"):
        if group.get("class") == "step":
            name = group.get("data-step") or ""
            assert name not in boxes, name
            rect = group.find(f"{SVG_NS}rect")
            assert rect is not None
            boxes[name] = (group.get("data-status") or "", rect.get("fill") or "")
    return boxes


def test_an_instance_graph_has_one_box_per_step_coloured_by_its_status(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    engine, _, ids = seeded
    for saga_id in (ids.order_failed, ids.travel_failed, ids.stuck, ids.keys["nostock-1"]):
        state = engine.store.instance(saga_id).state
        boxes = svg_steps(client.get(f"/api/instances/{saga_id}/graph.svg"))
        assert set(boxes) == set(state.steps)
        for name, step in state.steps.items():
            assert boxes[name] == (step.status.value, STEP_COLOURS[step.status][0]), name
    failed = svg_steps(client.get(f"/api/instances/{ids.order_failed}/graph.svg"))
    assert failed["ship"][0] == failed["take_payment"][0] == StepStatus.FAILED.value
    assert failed["reserve_inventory"][0] == StepStatus.SUCCEEDED.value
    definition = svg_steps(client.get("/api/definitions/travel_booking/1/graph.svg"))
    assert list(definition) == [
        "book_flight",
        "book_hotel",
        "book_car",
        "manager_approval",
        "charge_customer",
        "send_itinerary",
    ]


# -- metrics, health -----------------------------------------------------------------------


def test_metrics_tell_instances_per_saga_and_status_and_the_backlog(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    _, _, ids = seeded
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }

    def instances(saga: str, status: InstanceStatus) -> float:
        return samples[("sagas_instances", (("saga", saga), ("status", status.value)))]

    order, travel = "order_fulfillment", "travel_booking"
    assert instances(order, InstanceStatus.COMPLETED) == 3
    assert instances(order, InstanceStatus.COMPENSATED) == 2
    assert instances(order, InstanceStatus.FAILED) == 1
    assert instances(order, InstanceStatus.RUNNING) == 2
    assert instances(order, InstanceStatus.CANCELLED) == 0
    assert instances(travel, InstanceStatus.COMPLETED) == 1
    assert instances(travel, InstanceStatus.FAILED) == 1
    assert instances(travel, InstanceStatus.RUNNING) == 0
    assert samples[("sagas_instances_started_total", (("saga", order),))] == 8
    assert samples[("sagas_queue_depth", ())] == 0
    assert samples[("sagas_outbox_lag_seconds", ())] == 0
    assert samples[("sagas_timers_pending", ())] >= 2
    buckets = [key for key in samples if key[0] == "sagas_step_duration_seconds_recent_bucket"]
    assert buckets, "the running orders' first steps succeeded in the window"
    # The running orders reserved their stock within the last five minutes (the others ended
    # hours before the scrape).
    reserved = (("le", "+Inf"), ("saga", order), ("step", "reserve_inventory"))
    assert samples[("sagas_step_duration_seconds_recent_bucket", reserved)] == len(ids.running)
    assert "# TYPE sagas_instances gauge" in response.text
    assert "sagas_outbox_lag_seconds" in response.text
    assert "sagas_queue_depth" in response.text


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_openapi_documents_the_api_but_not_the_dashboard(sqlite_client: TestClient) -> None:
    document = sqlite_client.get("/openapi.json").json()
    paths = set(document["paths"])
    assert {
        "/api/instances",
        "/api/instances/{saga_id}",
        "/api/instances/{saga_id}/graph.svg",
        "/api/instances/{saga_id}/{action}",
        "/api/actions/{action}",
        "/api/definitions",
        "/api/definitions/{name}/{version}/graph.svg",
        "/api/stats",
        "/healthz",
    } <= paths
    assert "/" not in paths
    assert "/metrics" not in paths


# -- the dashboard -------------------------------------------------------------------------


def rows(page: Response) -> list[str]:
    """The saga ids of the instance rows of a dashboard page."""
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    marker = '<tr data-saga-id="'
    return [part.split('"', 1)[0] for part in page.text.split(marker)[1:]]


def test_the_dashboard_lists_instances_and_filters_them(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    _, _, ids = seeded
    assert sorted(rows(client.get("/"))) == sorted(ids.all)
    assert sorted(rows(client.get("/?status=failed"))) == sorted(ids.failed)
    assert sorted(rows(client.get("/?status=failed&status=running"))) == sorted(
        ids.failed + ids.running
    )
    assert rows(client.get("/?saga=travel_booking&status=completed")) == [ids.keys["trip-ok-1"]]
    # What the filter form sends: every field, the empty ones too.
    form = "/?status=failed&saga=&key=&failedStep="
    assert sorted(rows(client.get(form))) == sorted(ids.failed)
    assert rows(client.get("/?status=completed&saga=&key=ok-3&failedStep=")) == [ids.keys["ok-3"]]
    assert sorted(rows(client.get("/?offset=4"))) != sorted(ids.all)
    assert len(rows(client.get("/?offset=4"))) == len(ids.all) - 4
    past_the_end = client.get(f"/?offset={10**30}")  # capped, not a database error
    assert past_the_end.status_code == 200
    assert rows(past_the_end) == []


def test_a_filter_the_dashboard_does_not_understand_is_said_on_the_page(
    client: TestClient,
) -> None:
    page = client.get("/?status=sleeping")
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert "Filter not understood" in page.text
    assert "status" in page.text
    assert '<tr data-saga-id="' not in page.text


def test_the_dashboard_shows_an_instance_and_the_definitions(
    client: TestClient, seeded: tuple[Engine, Participants, Seeded]
) -> None:
    _, _, ids = seeded
    for saga_id in (ids.travel_failed, ids.order_failed, ids.stuck, ids.keys["ok-1"]):
        page = client.get(f"/instances/{saga_id}")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert saga_id in page.text
        assert 'class="step-graph"' in page.text
    failed = client.get(f"/instances/{ids.travel_failed}").text
    assert "send_itinerary" in failed
    assert "mail server down" in failed
    missing = client.get("/instances/no-such-saga")
    assert missing.status_code == 404
    definitions = client.get("/definitions")
    assert definitions.status_code == 200
    assert "order_fulfillment" in definitions.text
    assert "travel_booking" in definitions.text
    assert client.get("/static/dashboard.css").status_code == 200
