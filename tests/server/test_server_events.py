"""``POST /events`` through the real ``sagas serve`` process: the CloudEvents modes and the
engine's JSON, duplicates, limits, hostile bodies and headers, token scopes, a read-only
server, and an event taken over HTTP that starts a saga a worker completes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sample_services import Participants, order_definition

from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus
from sagas.runtime.engine import Engine
from sagas.store.sql import SQLStore

SAGAS = Path(sys.executable).with_name("sagas")
START_TIMEOUT = 30.0
OPERATOR = "operator-token-0123456789abcdef"
PUBLISH = "publish-token-0123456789abcdef"
AS_PUBLISHER = {"Authorization": f"Bearer {PUBLISH}"}
STRUCTURED = {"Content-Type": "application/cloudevents+json"} | AS_PUBLISHER
BATCH = {"Content-Type": "application/cloudevents-batch+json"} | AS_PUBLISHER
ENGINE_JSON = {"Content-Type": "application/json"} | AS_PUBLISHER
MAX_EVENT_BYTES = 4096
MAX_BATCH = 5
MAX_BODY_BYTES = 65536


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment() -> dict[str, str]:
    hidden = ("SAGAS_API_TOKEN", "SAGAS_PUBLISH_TOKEN")
    return {k: v for k, v in os.environ.items() if k not in hidden}


def wait_until(predicate: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
    """Poll ``predicate`` (another process starting) until it holds; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout}s: {predicate!r}"
        time.sleep(0.05)


@contextmanager
def sagas_serve(database: str, *options: str, log: Path) -> Iterator[httpx.Client]:
    """``sagas serve`` on ``database`` in a process of its own, until the block ends."""
    port = free_port()
    command = [str(SAGAS), "serve", "--port", str(port), "--db", database, *options]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env=environment(), stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as client:

            def healthy() -> bool:
                assert process.poll() is None, f"sagas serve exited: {log.read_text()}"
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(healthy)
            yield client
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    """One server for the cases below, with small limits; each case uses ids of its own."""
    folder = tmp_path_factory.mktemp("events")
    url = f"sqlite:///{folder / 'events.db'}"
    SQLStore(url).close()  # the database exists, at the current schema

    options = (
        "--token",
        OPERATOR,
        "--publish-token",
        PUBLISH,
        "--max-event-bytes",
        str(MAX_EVENT_BYTES),
        "--max-batch-events",
        str(MAX_BATCH),
        "--max-body-bytes",
        str(MAX_BODY_BYTES),
    )
    with sagas_serve(url, *options, log=folder / "serve.log") as client:
        yield client, url


@pytest.fixture
def client(served: tuple[httpx.Client, str]) -> httpx.Client:
    return served[0]


def queued_ids(url: str) -> set[str]:
    store = SQLStore(url)
    try:
        return {queued.event.event_id for queued in store.queued(10_000)}
    finally:
        store.close()


def cloudevent(event_id: str, **attributes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/shop",
        "type": "OrderCreated",
        "time": "2026-05-01T11:00:00Z",
        "data": {"orderId": event_id},
    }
    return value | attributes


def engine_event(event_id: str, **fields: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "eventId": event_id,
        "eventType": "OrderCreated",
        "timestamp": "2026-05-01T11:00:00Z",
        "data": {"orderId": event_id},
    }
    return value | fields


def binary_headers(event_id: str, **attributes: str) -> dict[str, str]:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "/shop",
        "ce-type": "OrderCreated",
        "Content-Type": "application/json",
    }
    return headers | {f"ce-{k}": v for k, v in attributes.items()} | AS_PUBLISHER


def answers(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 202, response.text
    return [(one["eventId"], one["status"]) for one in response.json()["events"]]


def problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail: str = response.json()["detail"]
    return detail


# -- the four forms ----------------------------------------------------------------------------


def test_a_structured_cloudevent_is_queued_once(
    client: httpx.Client, served: tuple[httpx.Client, str]
) -> None:
    body = json.dumps(cloudevent("st-1", sagaid="s-st-1"))
    assert answers(client.post("/events", content=body, headers=STRUCTURED)) == [
        ("st-1", "accepted")
    ]
    again = client.post("/events", content=body, headers=STRUCTURED)
    assert answers(again) == [("st-1", "duplicate")]
    assert again.json()["accepted"] == 0
    assert again.json()["duplicates"] == 1
    assert "st-1" in queued_ids(served[1])


def test_a_binary_cloudevent_is_queued_with_its_attributes(
    client: httpx.Client, served: tuple[httpx.Client, str]
) -> None:
    headers = binary_headers("bin-1", time="2026-05-01T13:00:00%2B02:00", correlationid="c-9")
    response = client.post("/events", content=b'{"orderId": "bin-1"}', headers=headers)
    assert answers(response) == [("bin-1", "accepted")]
    store = SQLStore(served[1])
    try:
        [event] = [q.event for q in store.queued(10_000) if q.event.event_id == "bin-1"]
    finally:
        store.close()
    assert event.correlation_id == "c-9"
    assert event.data == {"orderId": "bin-1"}
    assert event.timestamp.isoformat() == "2026-05-01T13:00:00+02:00"


def test_a_batch_reports_each_event_in_order(client: httpx.Client) -> None:
    client.post("/events", content=json.dumps(cloudevent("ba-2")), headers=STRUCTURED)
    batch = [cloudevent("ba-1"), cloudevent("ba-2"), cloudevent("ba-3"), cloudevent("ba-1")]
    response = client.post("/events", content=json.dumps(batch), headers=BATCH)
    assert answers(response) == [
        ("ba-1", "accepted"),
        ("ba-2", "duplicate"),
        ("ba-3", "accepted"),
        ("ba-1", "duplicate"),
    ]
    assert (response.json()["accepted"], response.json()["duplicates"]) == (2, 2)


def test_the_engines_own_json_one_event_or_an_array(client: httpx.Client) -> None:
    one = client.post("/events", content=json.dumps(engine_event("en-1")), headers=ENGINE_JSON)
    assert answers(one) == [("en-1", "accepted")]
    many = [engine_event("en-1"), engine_event("en-2", sagaId="s-en-2")]
    assert answers(client.post("/events", content=json.dumps(many), headers=ENGINE_JSON)) == [
        ("en-1", "duplicate"),
        ("en-2", "accepted"),
    ]


def test_a_refused_event_refuses_the_whole_batch(
    client: httpx.Client, served: tuple[httpx.Client, str]
) -> None:
    batch = [cloudevent("all-1"), cloudevent("all-2", time="yesterday"), cloudevent("all-3")]
    response = client.post("/events", content=json.dumps(batch), headers=BATCH)
    detail = problem(response, 422)
    assert "1 of 3 event(s) refused, none accepted" in detail
    assert "events[1]: event 'all-2': time: 'yesterday' is not an RFC 3339 timestamp" in detail
    assert response.json()["errors"] == [
        {
            "where": "events[1]",
            "message": "event 'all-2': time: 'yesterday' is not an RFC 3339 timestamp",
            "eventId": "all-2",
        }
    ]
    assert not {"all-1", "all-3"} & queued_ids(served[1])
    fixed = [cloudevent("all-1"), cloudevent("all-2"), cloudevent("all-3")]
    assert [
        status
        for _, status in answers(client.post("/events", content=json.dumps(fixed), headers=BATCH))
    ] == ["accepted"] * 3


# -- engine event types --------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["sagas.HandlerSucceeded", "sagas.CancelRequested"])
def test_engine_event_types_are_refused_on_every_form(
    client: httpx.Client, served: tuple[httpx.Client, str], event_type: str
) -> None:
    forged = f"forged-{event_type}"
    attempts = [
        client.post(
            "/events", content=json.dumps(cloudevent(forged, type=event_type)), headers=STRUCTURED
        ),
        client.post(
            "/events",
            content=json.dumps([cloudevent(forged + "-b", type=event_type)]),
            headers=BATCH,
        ),
        client.post(
            "/events",
            content=b"{}",
            headers=binary_headers(forged, type=event_type),
        ),
        client.post(
            "/events",
            content=json.dumps(engine_event(forged, eventType=event_type, sagaId="s-1")),
            headers=ENGINE_JSON,
        ),
    ]
    for response in attempts:
        detail = problem(response, 422)
        assert f"event type '{event_type}' is not accepted from outside" in detail
        assert "operator token" in detail
    assert not {forged, forged + "-b"} & queued_ids(served[1])


# -- limits --------------------------------------------------------------------------------------


def test_an_event_larger_than_the_limit_is_413_naming_it(client: httpx.Client) -> None:
    big = {"blob": "x" * MAX_EVENT_BYTES}
    detail = problem(
        client.post(
            "/events", content=json.dumps(cloudevent("big-1", data=big)), headers=STRUCTURED
        ),
        413,
    )
    assert f"larger than {MAX_EVENT_BYTES:,} bytes" in detail
    batch = [cloudevent("big-2"), cloudevent("big-3", data=big)]
    response = client.post("/events", content=json.dumps(batch), headers=BATCH)
    detail = problem(response, 413)
    assert "events[1]: event 'big-3': " in detail
    assert f"more than the limit of {MAX_EVENT_BYTES:,} bytes" in detail
    binary = client.post(
        "/events", content=json.dumps(big).encode(), headers=binary_headers("big-4")
    )
    assert "larger than" in problem(binary, 413)
    engine = client.post(
        "/events", content=json.dumps(engine_event("big-5", data=big)), headers=ENGINE_JSON
    )
    assert "larger than" in problem(engine, 413)


def test_a_body_larger_than_the_server_takes_is_413_unread(client: httpx.Client) -> None:
    body = b"[" + b"1," * MAX_BODY_BYTES + b"1]"
    detail = problem(client.post("/events", content=body, headers=BATCH), 413)
    assert f"larger than {MAX_BODY_BYTES:,} bytes" in detail


def test_a_batch_longer_than_the_limit_is_413(client: httpx.Client) -> None:
    batch = [cloudevent(f"long-{n}") for n in range(MAX_BATCH + 1)]
    detail = problem(client.post("/events", content=json.dumps(batch), headers=BATCH), 413)
    assert f"of {MAX_BATCH + 1} events: at most {MAX_BATCH} in one request" in detail
    many = json.dumps([engine_event(f"longer-{n}") for n in range(200)])
    assert "at most 5" in problem(client.post("/events", content=many, headers=ENGINE_JSON), 413)


def test_a_huge_array_of_nothing_is_refused_quickly(client: httpx.Client) -> None:
    body = b"[" + b"0," * 30_000 + b"0]"
    assert "at most 5" in problem(client.post("/events", content=body, headers=BATCH), 413)


# -- content types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/xml", "application/cloudevents+json; charset=latin-1"],
)
def test_an_unsupported_content_type_is_415(client: httpx.Client, content_type: str | None) -> None:
    headers = dict(AS_PUBLISHER) | ({"Content-Type": content_type} if content_type else {})
    response = client.post("/events", content=json.dumps(cloudevent("ct-1")), headers=headers)
    assert problem(response, 415)


def test_binary_mode_takes_json_data_only(client: httpx.Client) -> None:
    headers = binary_headers("bin-text") | {"Content-Type": "text/plain"}
    detail = problem(client.post("/events", content=b"hello", headers=headers), 415)
    assert "binary mode takes JSON data only" in detail


# -- malformed bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (b"", STRUCTURED, "the request has no body"),
        (b"{not json", STRUCTURED, "the body is not strict JSON"),
        (b'{"id": "d-1", "id": "d-2"}', STRUCTURED, "key 'id' appears twice"),
        (
            b'{"specversion":"1.0","id":"nan-1","source":"/s","type":"T","data":{"x":NaN}}',
            STRUCTURED,
            "NaN is not a JSON number",
        ),
        (b'{"id": "\xff"}', STRUCTURED, "not UTF-8: byte 0xff"),
        (b"[" * 50_000, BATCH, "nested deeper than"),
        (json.dumps({"a": 1}).encode(), BATCH, "a CloudEvents batch must be a JSON array"),
        (b"[]", BATCH, "holds no event"),
        (b"[]", ENGINE_JSON, "holds no event"),
        (b"[1]", BATCH, "events[0]: event: a CloudEvent must be a JSON object, not a number"),
        (b'"text"', ENGINE_JSON, "must be a JSON object, not a string"),
    ],
)
def test_a_malformed_body_is_422_saying_why(
    client: httpx.Client, body: bytes, headers: dict[str, str], expected: str
) -> None:
    assert expected in problem(client.post("/events", content=body, headers=headers), 422)


def test_deeply_nested_data_is_refused_naming_the_event(client: httpx.Client) -> None:
    data: dict[str, Any] = {}
    inner = data
    for _ in range(70):
        inner["x"] = {}
        inner = inner["x"]
    response = client.post(
        "/events", content=json.dumps(cloudevent("deep-1", data=data)), headers=STRUCTURED
    )
    detail = problem(response, 422)
    assert "event 'deep-1'" in detail
    assert "nested deeper than 64 levels" in detail


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"specversion": "0.3"}, "must be '1.0'"),
        ({"time": "2026-05-01"}, "not an RFC 3339 timestamp"),
        ({"time": "Fri, 01 May 2026 11:00:00 GMT"}, "not an RFC 3339 timestamp"),
        ({"eventId": "camel"}, "'eventId' should only contain lowercase letters and numbers"),
        ({"data": [1]}, "data: must be a JSON object"),
    ],
)
def test_a_malformed_structured_cloudevent_is_422(
    client: httpx.Client, attributes: dict[str, Any], expected: str
) -> None:
    response = client.post(
        "/events", content=json.dumps(cloudevent("mal-1", **attributes)), headers=STRUCTURED
    )
    detail = problem(response, 422)
    assert expected in detail
    assert "event 'mal-1'" in detail


def test_missing_required_attributes_are_named(client: httpx.Client) -> None:
    value = cloudevent("req-1")
    del value["source"], value["specversion"]
    detail = problem(client.post("/events", content=json.dumps(value), headers=STRUCTURED), 422)
    assert "required attribute(s) missing: source, specversion" in detail


# -- hostile ce- headers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("ce-id", "missing: id"),
        ("ce-source", "missing: source"),
        ("ce-specversion", "missing: specversion"),
        ("ce-type", "missing: type"),
    ],
)
def test_binary_mode_without_a_required_attribute_is_422(
    client: httpx.Client, drop: str, expected: str
) -> None:
    headers = {k: v for k, v in binary_headers("hdr-1").items() if k != drop}
    assert expected in problem(client.post("/events", content=b"{}", headers=headers), 422)


def test_a_ce_header_given_twice_is_422(client: httpx.Client) -> None:
    headers = [*binary_headers("twice-1").items(), ("ce-id", "twice-2")]
    detail = problem(client.post("/events", content=b"{}", headers=headers), 422)
    assert "header 'ce-id' is given more than once" in detail


def test_binary_mode_with_a_wrong_specversion_or_time_is_422(client: httpx.Client) -> None:
    old = binary_headers("old-1") | {"ce-specversion": "0.3"}
    assert "must be '1.0'" in problem(client.post("/events", content=b"{}", headers=old), 422)
    late = binary_headers("late-1", time="tomorrow")
    assert "not an RFC 3339" in problem(client.post("/events", content=b"{}", headers=late), 422)


def test_huge_ce_headers_count_towards_the_event_size(
    client: httpx.Client, served: tuple[httpx.Client, str]
) -> None:
    headers = binary_headers("huge-1", subject="s" * 100_000)
    detail = problem(client.post("/events", content=b"{}", headers=headers), 413)
    assert f"is larger than {MAX_EVENT_BYTES:,} bytes" in detail
    split = binary_headers("huge-2", subject="s" * 3000)
    body = json.dumps({"blob": "x" * 3000}).encode()
    assert "larger than" in problem(client.post("/events", content=body, headers=split), 413)
    assert not {"huge-1", "huge-2"} & queued_ids(served[1])


def test_many_ce_headers_are_refused_or_ignored_never_a_server_error(client: httpx.Client) -> None:
    headers = list(binary_headers("many-1").items()) + [(f"ce-x{n}", "v") for n in range(500)]
    response = client.post("/events", content=b"{}", headers=headers)
    assert response.status_code in (202, 400, 413, 431), response.text


# -- tokens ----------------------------------------------------------------------------------------


def test_events_need_the_publish_token(client: httpx.Client) -> None:
    body = json.dumps(cloudevent("tok-1"))
    kind = {"Content-Type": "application/cloudevents+json"}
    assert "missing bearer token" in problem(
        client.post("/events", content=body, headers=kind), 401
    )
    wrong = kind | {"Authorization": "Bearer not-the-token-at-all-000"}
    assert problem(client.post("/events", content=body, headers=wrong), 401) == "wrong bearer token"
    operator = kind | {"Authorization": f"Bearer {OPERATOR}"}
    detail = problem(client.post("/events", content=body, headers=operator), 403)
    assert "the operator token does not publish events" in detail


def test_the_token_is_checked_before_the_body_is_read(client: httpx.Client) -> None:
    body = b"x" * (MAX_BODY_BYTES * 4)  # too large and not JSON: neither is looked at
    response = client.post("/events", content=body, headers={"Content-Type": "text/plain"})
    assert problem(response, 401)


def test_the_publish_token_allows_no_operator_action(client: httpx.Client) -> None:
    for path in ("/api/instances/any-saga/retry", "/api/actions/cancel"):
        response = client.post(path, json={}, headers=AS_PUBLISHER)
        assert "the publish token only publishes events" in problem(response, 403)


# -- servers that take no events ------------------------------------------------------------


def test_a_read_only_server_takes_no_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    SQLStore(url).close()
    with sagas_serve(url, "--read-only", log=tmp_path / "serve.log") as ro:
        response = ro.post("/events", content=json.dumps(cloudevent("ro-1")), headers=STRUCTURED)
        assert "read-only" in problem(response, 403)
    assert queued_ids(url) == set()


def test_a_server_without_a_publish_token_takes_no_events(
    client: httpx.Client, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'np.db'}"
    SQLStore(url).close()
    with sagas_serve(url, "--token", OPERATOR, log=tmp_path / "serve.log") as np:
        response = np.post("/events", content=json.dumps(cloudevent("np-1")), headers=STRUCTURED)
        assert "start it with --publish-token" in problem(response, 403)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("--read-only", "--publish-token", PUBLISH), "a read-only server takes no events"),
        (("--token", OPERATOR, "--publish-token", OPERATOR), "must differ from the operator"),
        (("--token", OPERATOR, "--publish-token", "short"), "at least 16 characters"),
    ],
)
def test_publish_tokens_that_cannot_work_stop_the_start(
    tmp_path: Path, options: tuple[str, ...], expected: str
) -> None:
    url = f"sqlite:///{tmp_path / 'start.db'}"
    SQLStore(url).close()
    result = subprocess.run(
        [str(SAGAS), "serve", "--db", url, "--port", "0", *options],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result
    assert expected in result.stderr


def test_the_publish_token_can_come_from_a_file_or_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'file.db'}"
    SQLStore(url).close()
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    result = subprocess.run(
        [str(SAGAS), "serve", "--db", url, "--token", OPERATOR, "--publish-token-file", str(empty)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "holds no token" in result.stderr
    token_file = tmp_path / "publish-token"
    token_file.write_text(PUBLISH + "\n", encoding="utf-8")
    options = ("--token", OPERATOR, "--publish-token-file", str(token_file))
    with sagas_serve(url, *options, log=tmp_path / "serve.log") as served:
        body = json.dumps(cloudevent("file-1"))
        assert answers(served.post("/events", content=body, headers=STRUCTURED))


# -- end to end ------------------------------------------------------------------------------------


def test_an_event_taken_over_http_starts_a_saga_a_worker_completes(
    database: str, tmp_path: Path
) -> None:
    definition = order_definition()
    engine = Engine(SQLStore(database))
    try:
        engine.register(definition)
        Participants().attach(engine)
        options = ("--token", OPERATOR, "--publish-token", PUBLISH)
        with sagas_serve(database, *options, log=tmp_path / "serve.log") as http:
            data = {
                "orderId": "http-1",
                "items": [{"sku": "sku-1", "quantity": 1}],
                "address": "1 Road",
            }
            response = http.post(
                "/events",
                content=json.dumps(data),
                headers=binary_headers("http-order-1", subject="http-1"),
            )
            assert answers(response) == [("http-order-1", "accepted")]
        engine.run_until_idle()
        state = engine.store.instance(saga_id_for(definition.name, "http-1")).state
        assert state.status == InstanceStatus.COMPLETED, state
        [first, *_] = engine.store.log(state.saga_id)
        assert first.event.event_id == "http-order-1"
    finally:
        engine.close()
