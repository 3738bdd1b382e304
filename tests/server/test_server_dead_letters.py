"""``/api/dead-letters`` and the dashboard's dead-letter page: reading without a token, replay
and drop with the operator token only, bulk with a report per message, and malformed
requests refused (422, 401, 403) with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sagas.events import Event
from sagas.server import create_app
from sagas.server.problems import PROBLEM_JSON
from sagas.store.dead_letters import dead_letter_of
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

TOKEN = "dead-letter-api-token-0123456789"
PUBLISH_TOKEN = "dead-letter-publish-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store(database: str) -> Iterator[SQLStore]:
    store = SQLStore(database)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def letters(store: SQLStore, clock: ManualClock) -> dict[str, int]:
    """Three dead letters: two events from a broker (one a minute later), one garbled."""
    found = {}
    for n, order in enumerate(("o-1", "o-2")):
        raw = Event.create("OrderPlaced", {"orderId": order}, at=clock.now(), event_id=order)
        at = clock.now() + timedelta(minutes=n)
        letter = dead_letter_of(
            raw.to_json(), "redelivered 6 times", source="rabbitmq", at=at, event_id=order
        )
        found[order] = store.record_dead_letter(letter)
    garbled = dead_letter_of(b"\xff{", "not UTF-8", source="nats", at=clock.now())
    found["garbled"] = store.record_dead_letter(garbled)
    return found


@pytest.fixture
def client(store: SQLStore, clock: ManualClock, letters: dict[str, int]) -> Iterator[TestClient]:
    app = create_app(store, token=TOKEN, clock=clock, publish_token=PUBLISH_TOKEN)
    with TestClient(app) as client:
        yield client


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    return body


def test_listing_and_showing_need_no_token(client: TestClient, letters: dict[str, int]) -> None:
    page = client.get("/api/dead-letters").json()
    assert page["total"] == 3
    assert [item["id"] for item in page["items"]] == sorted(letters.values(), reverse=True)
    assert "payload" not in page["items"][0]
    page = client.get("/api/dead-letters", params={"source": "rabbitmq", "limit": 1}).json()
    assert (page["total"], len(page["items"])) == (2, 1)
    page = client.get("/api/dead-letters", params={"reason": "UTF-8"}).json()
    assert [item["id"] for item in page["items"]] == [letters["garbled"]]

    shown = client.get(f"/api/dead-letters/{letters['garbled']}").json()
    assert (shown["encoding"], shown["payload"], shown["source"]) == ("base64", "/3s=", "nats")
    assert "no dead letter 999" in problem(client.get("/api/dead-letters/999"), 404)["detail"]


def test_replay_and_drop_take_only_the_operator_token(
    client: TestClient, store: SQLStore, letters: dict[str, int]
) -> None:
    target = f"/api/dead-letters/{letters['o-1']}/replay"
    assert "missing bearer token" in problem(client.post(target, json={}), 401)["detail"]
    wrong = {"Authorization": "Bearer nope"}
    assert (
        "wrong bearer token" in problem(client.post(target, json={}, headers=wrong), 401)["detail"]
    )
    publisher = {"Authorization": f"Bearer {PUBLISH_TOKEN}"}
    assert (
        "only publishes" in problem(client.post(target, json={}, headers=publisher), 403)["detail"]
    )
    assert store.count_dead_letters() == 3

    dry = client.post(target, json={"dryRun": True}, headers=AUTH).json()
    assert (dry["fate"], store.count_dead_letters()) == ("would queue", 3)
    done = client.post(target, json={}, headers=AUTH).json()
    assert (done["fate"], done["removed"], done["eventId"]) == ("queued", True, "o-1")
    assert store.queue_depth() == 1
    assert problem(client.post(target, json={}, headers=AUTH), 404)

    garbled = f"/api/dead-letters/{letters['garbled']}"
    refused = problem(client.post(garbled + "/replay", json={}, headers=AUTH), 409)
    assert "the dead letter stays" in refused["detail"]
    assert client.post(garbled + "/drop", json={}, headers=AUTH).json()["fate"] == "dropped"
    assert store.count_dead_letters() == 1


def test_a_read_only_server_lists_but_neither_replays_nor_drops(
    store: SQLStore, letters: dict[str, int]
) -> None:
    with TestClient(create_app(store, token=TOKEN, read_only=True)) as client:
        assert client.get("/api/dead-letters").json()["total"] == 3
        response = client.post(f"/api/dead-letters/{letters['o-1']}/drop", json={}, headers=AUTH)
        assert "read-only" in problem(response, 403)["detail"]
        page = client.get("/dead-letters")
        assert page.status_code == 200
        assert "data-letter-action" not in page.text
    assert store.count_dead_letters() == 3


def test_bulk_replay_and_drop_report_each_message(
    client: TestClient, store: SQLStore, letters: dict[str, int]
) -> None:
    body = {"where": {"source": "rabbitmq"}, "dryRun": True}
    report = client.post("/api/dead-letters/replay", json=body, headers=AUTH).json()
    assert (report["dryRun"], report["summary"]) == (True, {"would queue": 2})
    assert store.count_dead_letters() == 3

    report = client.post("/api/dead-letters/replay", json={"all": True}, headers=AUTH).json()
    assert report["summary"] == {"queued": 2, "refused": 1}
    by_id = {result["id"]: result for result in report["results"]}
    assert by_id[letters["garbled"]]["removed"] is False
    assert "UTF-8" in by_id[letters["garbled"]]["note"]

    body = {"ids": [letters["garbled"], 999]}
    report = client.post("/api/dead-letters/drop", json=body, headers=AUTH).json()
    assert report["summary"] == {"dropped": 1, "not found": 1}
    assert store.count_dead_letters() == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("get", "/api/dead-letters", None, {"limit": 0}),
        ("get", "/api/dead-letters", None, {"offset": -1}),
        ("get", "/api/dead-letters", None, {"event_type": "X"}),
        ("get", "/api/dead-letters", None, {"since": "yesterday"}),
        ("get", "/api/dead-letters", None, {"since": "2026-01-01T00:00:00"}),
        ("get", "/api/dead-letters", None, {"reason": "x" * 501}),
        ("get", "/api/dead-letters/0", None, None),
        ("get", "/api/dead-letters/99999999999999999999999", None, None),
        ("get", "/api/dead-letters/abc", None, None),
        ("post", "/api/dead-letters/1/replay", {"dryRun": "maybe"}, None),
        ("post", "/api/dead-letters/1/drop", {"force": True}, None),
        ("post", "/api/dead-letters/replay", {}, None),
        ("post", "/api/dead-letters/drop", {"all": True, "ids": [1]}, None),
        ("post", "/api/dead-letters/drop", {"where": {}}, None),
        ("post", "/api/dead-letters/drop", {"where": {"source": "a\u0000b"}}, None),
        ("post", "/api/dead-letters/drop", {"ids": [0]}, None),
        ("post", "/api/dead-letters/drop", {"ids": list(range(1, 10_002))}, None),
        ("post", "/api/dead-letters/replay", {"where": {"colour": "red"}}, None),
    ],
)
def test_malformed_requests_are_422_and_change_nothing(
    client: TestClient,
    store: SQLStore,
    method: str,
    path: str,
    body: Any,
    params: Any,
) -> None:
    if method == "get":
        response = client.get(path, params=params)
    else:
        response = client.post(path, json=body, headers=AUTH)
    assert problem(response, 422)["detail"]
    assert store.count_dead_letters() == 3


def test_a_body_that_is_not_strict_json_is_refused_after_the_token(client: TestClient) -> None:
    response = client.post(
        "/api/dead-letters/drop",
        content=b'{"all": true, "all": false}',
        headers=AUTH | {"Content-Type": "application/json"},
    )
    assert problem(response, 422)
    response = client.post(
        "/api/dead-letters/drop",
        content=b"x" * 2_000_000,
        headers={"Content-Type": "application/json"},
    )
    assert problem(response, 401)  # the token is checked before the body is read


def test_the_dashboard_page_lists_and_filters_without_inline_scripts(
    client: TestClient, letters: dict[str, int], tmp_path: Path
) -> None:
    page = client.get("/dead-letters")
    assert page.status_code == 200
    assert page.text.count("data-letter-id=") == 3
    assert "<script>" not in page.text  # every script is a file (the CSP forbids inline ones)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'href="/dead-letters"' in client.get("/").text  # in the nav
    page = client.get("/dead-letters", params={"source": "nats"})
    assert page.text.count("data-letter-id=") == 1
    page = client.get("/dead-letters", params={"reason": "x" * 501})
    assert page.status_code == 422
    assert "Filter not understood" in page.text
