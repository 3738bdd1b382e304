"""``sagas serve`` against hostile requests: security headers on every response, no host taken
from the ``Host`` header, malformed paging numbers, request bodies that are too large, not
strict JSON or sent without the token, and Swagger UI served without a CDN."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx2 import Response
from server_checks import TOKEN, Seeded, open_app, seeded_engine, serving

from sagas.server import api
from sagas.server.bodies import GuardedRoute
from sagas.server.problems import PROBLEM_JSON
from sagas.testing import ManualClock

AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
HOSTILE_HOST = "evil.example"


@pytest.fixture(scope="module")
def seeded_database(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Seeded]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('hardening')) / 'server.db'}"
    with seeded_engine(url, ManualClock()) as (_, _, seeded):
        pass
    return url, seeded


@pytest.fixture
def seeded(seeded_database: tuple[str, Seeded]) -> Seeded:
    return seeded_database[1]


@pytest.fixture
def client(seeded_database: tuple[str, Seeded]) -> Iterator[TestClient]:
    with open_app(seeded_database[0], ManualClock()) as app, TestClient(app) as client:
        yield client


def problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def pages(seeded: Seeded) -> list[str]:
    """A path of every kind the server answers: dashboard pages, API documents, pictures,
    static files, metrics, documentation, problems."""
    return [
        "/",
        "/?status=failed",
        "/?offset=-1",
        "/definitions",
        f"/instances/{seeded.travel_failed}",
        "/instances/no-such-saga",
        "/static/dashboard.js",
        "/api/instances",
        "/api/instances/",
        f"/api/instances/{seeded.order_failed}",
        f"/api/instances/{seeded.order_failed}/graph.svg",
        "/api/definitions",
        "/api/stats",
        "/api/instances?offset=x",
        "/openapi.json",
        "/metrics",
        "/healthz",
        "/docs",
        "/docs/assets/swagger-ui.css",
        "/no/such/path",
    ]


# -- headers -------------------------------------------------------------------------------


def test_every_response_forbids_framing_sniffing_and_foreign_code(
    client: TestClient, seeded: Seeded
) -> None:
    for path in pages(seeded):
        response = client.get(path)
        headers = response.headers
        policy = dict(
            part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";")
        )
        assert policy["frame-ancestors"] == "'none'", path
        assert policy["default-src"] == "'none'", path
        assert "'unsafe-inline'" not in policy["script-src"], path
        assert "'unsafe-eval'" not in policy["script-src"], path
        assert policy["style-src"] == "'self'", path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path


class _Page(HTMLParser):
    """What a page would run or load: script and style elements, event-handler and style
    attributes, and every URL of ``src``/``href``/``action``."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts: list[str] = []
        self.inline_handlers: list[str] = []
        self.inline_styles: list[str] = []
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in found
        if tag == "style":
            self.inline_styles.append("<style>")
        for name, value in attrs:
            if name.startswith("on"):
                self.inline_handlers.append(f"{tag} {name}")
            if name == "style":
                self.inline_styles.append(f"{tag} style={value}")
            if name in ("src", "href", "action") and value is not None:
                self.urls.append(value)

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def parsed(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_dashboard_pages_run_no_inline_script_or_style(client: TestClient, seeded: Seeded) -> None:
    for path in ("/", "/definitions", f"/instances/{seeded.travel_failed}", "/?offset=x"):
        page = parsed(client.get(path).text)
        assert page.inline_scripts == [], path
        assert page.inline_handlers == [], path
        assert page.inline_styles == [], path
        assert page.urls, path


def test_links_and_assets_never_take_their_host_from_the_host_header(
    client: TestClient, seeded: Seeded
) -> None:
    for path in pages(seeded):
        response = client.get(path, headers={"Host": HOSTILE_HOST}, follow_redirects=False)
        assert response.status_code < 500, (path, response.text)
        assert HOSTILE_HOST not in response.text, path
        for name, value in response.headers.items():
            assert HOSTILE_HOST not in value, (path, name, value)
    # The other spelling of a path is not a redirect (whose Location would name the host).
    assert client.get("/api/instances/", follow_redirects=False).status_code == 404
    for path in ("/", "/definitions", f"/instances/{seeded.travel_failed}", "/docs"):
        for url in parsed(client.get(path, headers={"Host": HOSTILE_HOST}).text).urls:
            # Paths on the server (or in the page), never "//host/…" nor "scheme://…".
            assert url.startswith(("/", "?", "#", "data:")), (path, url)
            assert not url.startswith("//"), (path, url)


def test_links_and_assets_are_under_the_configured_root_path(
    seeded_database: tuple[str, Seeded],
) -> None:
    url, seeded = seeded_database
    with (
        open_app(url, ManualClock()) as app,
        TestClient(app, root_path="/sagas") as client,
    ):
        for path in ("/", "/definitions", f"/instances/{seeded.travel_failed}", "/docs"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            urls = [u for u in parsed(response.text).urls if u.startswith("/")]
            assert urls, path
            assert all(u.startswith("/sagas/") for u in urls), (path, urls)
        assert 'data-root="/sagas"' in client.get("/").text


# -- paging numbers ------------------------------------------------------------------------

MALFORMED_NUMBERS = ["-1", "abc", "1e3", "1.5", "%C2%B2", "%EF%BC%91", "0x10", "", "9" * 5000]


@pytest.mark.parametrize("value", MALFORMED_NUMBERS, ids=lambda v: v[:12] or "empty")
def test_a_malformed_offset_or_limit_is_a_422_never_a_500(client: TestClient, value: str) -> None:
    api = problem(client.get(f"/api/instances?offset={value}"), 422)
    assert "offset" in api["detail"]
    limit = problem(client.get(f"/api/instances?limit={value}"), 422)
    assert "limit" in limit["detail"]
    page = client.get(f"/?offset={value}")
    if value == "":  # the form sends empty fields: left out, the first page
        assert page.status_code == 200
        return
    if value == "9" * 5000:  # a whole number, only past the end: capped, an empty page
        assert page.status_code == 200
        assert '<tr data-saga-id="' not in page.text
        return
    assert page.status_code == 422, page.text
    assert "Filter not understood" in page.text
    assert "offset" in page.text


def test_huge_but_well_formed_numbers_are_422_in_the_api(client: TestClient) -> None:
    for query in (f"offset={10**30}", f"limit={10**30}", "offset=10000001"):
        problem(client.get(f"/api/instances?{query}"), 422)
    assert client.get(f"/?offset={10**30}").status_code == 200  # the dashboard caps it


# -- request bodies ------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


HOSTILE_BODIES: list[tuple[str, bytes, str]] = [
    ("duplicate keys", b'{"reason": "a", "reason": "b"}', "'reason' appears twice"),
    ("nested duplicate", b'{"data": {"x": 1, "x": 2}, "step": "s"}', "'x' appears twice"),
    ("NaN", b'{"data": {"ratio": NaN}}', "NaN"),
    ("Infinity", b'{"data": {"ratio": -Infinity}}', "Infinity"),
    ("overflowing number", b'{"data": {"ratio": 1e999}}', "1e999"),
    ("too deep", b'{"data": {"deep": ' + nested(5000) + b"}}", "nested deeper than"),
    ("deep unclosed", b"[" * 200_000, "nested deeper than"),
    ("invalid UTF-8", b'{"reason": "\xff\xfe"}', "not UTF-8"),
    ("lone surrogate", b'{"reason": "\\ud800"}', "lone surrogate"),
    ("not JSON", b"{reason: 1}", "not valid JSON"),
    ("truncated", b'{"reason": "a', "not valid JSON"),
    ("huge integer", b'{"data": {"n": ' + b"9" * 10_000 + b"}}", "10,000 digits"),
]


@pytest.mark.parametrize(
    ("body", "words"),
    [(b, w) for _, b, w in HOSTILE_BODIES],
    ids=[name for name, _, _ in HOSTILE_BODIES],
)
def test_a_body_that_is_not_strict_json_is_a_422_saying_why(
    client: TestClient, seeded: Seeded, body: bytes, words: str
) -> None:
    saga_id = seeded.order_failed
    before = client.get(f"/api/instances/{saga_id}").json()
    for path in (f"/api/instances/{saga_id}/retry", "/api/actions/retry"):
        found = problem(client.post(path, content=body, headers=AUTH | JSON), 422)
        assert words in found["detail"], (path, found["detail"])
        assert found["detail"].startswith("invalid request: body: ")
        assert found["errors"][0]["where"] == "body"
    assert client.get(f"/api/instances/{saga_id}").json() == before


@pytest.mark.parametrize(
    ("body", "_words"),
    [(b, w) for _, b, w in HOSTILE_BODIES],
    ids=[name for name, _, _ in HOSTILE_BODIES],
)
def test_without_the_token_no_body_is_read(
    seeded_database: tuple[str, Seeded], body: bytes, _words: str
) -> None:
    """Whatever the body, a stranger gets 401 (and a read-only server 403), never a 413 or
    422 that would say the body was read and parsed."""
    url, seeded = seeded_database
    path = f"/api/instances/{seeded.order_failed}/retry"
    with open_app(url, ManualClock()) as app, TestClient(app) as client:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            problem(client.post(path, content=body, headers=headers | JSON), 401)
        huge = {"Content-Length": str(10**12)} | JSON
        problem(client.post(path, content=body, headers=huge), 401)
    with open_app(url, ManualClock(), read_only=True) as app, TestClient(app) as client:
        problem(client.post(path, content=body, headers=AUTH | JSON), 403)


def test_a_body_past_the_limit_is_a_413_before_it_is_read(
    seeded_database: tuple[str, Seeded],
) -> None:
    url, seeded = seeded_database
    path = f"/api/instances/{seeded.order_failed}/retry"
    with (
        open_app(url, ManualClock(), max_body_bytes=1000) as app,
        TestClient(app) as client,
    ):
        fits = json.dumps({"reason": "r" * 900, "dryRun": True}).encode()
        assert len(fits) <= 1000
        assert client.post(path, content=fits, headers=AUTH | JSON).status_code == 200
        too_big = json.dumps({"reason": "r" * 1000, "dryRun": True}).encode()
        found = problem(client.post(path, content=too_big, headers=AUTH | JSON), 413)
        assert "larger than 1,000 bytes" in found["detail"]
        # Declared too large: refused on the header alone, before any byte is read.
        for declared in (str(10**12), "9" * 5000):
            found = problem(
                client.post(
                    path, content=b"{}", headers=AUTH | JSON | {"Content-Length": declared}
                ),
                413,
            )
            assert "larger than 1,000 bytes" in found["detail"]

        # Streamed without a length (chunked; over a real socket below).
        def chunks() -> Iterator[bytes]:
            yield b'{"reason": "'
            for _ in range(100):
                yield b"r" * 100
            yield b'"}'

        found = problem(client.post(path, content=chunks(), headers=AUTH | JSON), 413)
        assert "larger than 1,000 bytes" in found["detail"]


def _raw_request(address: tuple[str, int], head: str, body_parts: list[bytes]) -> str:
    """Send ``head`` and ``body_parts`` over a socket of its own and return the answer's
    status line and headers and body, read until the server closes or 5 s pass; the server
    must answer without the rest of the body (the request is never finished)."""
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        for part in body_parts:
            conn.sendall(part)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer.decode("utf-8", "replace")


def test_over_http_a_body_is_refused_before_the_client_finished_sending_it(
    seeded_database: tuple[str, Seeded],
) -> None:
    """With uvicorn over a real socket: a chunked body that grows past the limit is answered
    413 while the client is still sending; a declared length past the limit is answered 413,
    and a stranger 401, without any byte of the body sent."""
    url, seeded = seeded_database
    path = f"/api/instances/{seeded.order_failed}/retry"
    base = f"POST {path} HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n"
    with open_app(url, ManualClock(), max_body_bytes=1000) as app, serving(app) as address:
        chunk = b"r" * 500
        chunked = [b'c\r\n{"reason": "\r\n'] + [b"1f4\r\n" + chunk + b"\r\n"] * 3
        answer = _raw_request(
            address, base + f"Authorization: Bearer {TOKEN}\nTransfer-Encoding: chunked\n", chunked
        )
        assert answer.startswith("HTTP/1.1 413 "), answer
        assert "larger than 1,000 bytes" in answer
        declared = base + f"Authorization: Bearer {TOKEN}\nContent-Length: {10**12}\n"
        answer = _raw_request(address, declared, [])
        assert answer.startswith("HTTP/1.1 413 "), answer
        stranger = base + f"Content-Length: {10**12}\n"
        answer = _raw_request(address, stranger, [b"[[[["])
        assert answer.startswith("HTTP/1.1 401 "), answer
        assert "missing bearer token" in answer


def test_the_default_limit_is_one_mebibyte(client: TestClient, seeded: Seeded) -> None:
    path = f"/api/instances/{seeded.order_failed}/retry"
    body = b'{"reason": "' + b"r" * (1024 * 1024) + b'"}'
    found = problem(client.post(path, content=body, headers=AUTH | JSON), 413)
    assert "1,048,576 bytes" in found["detail"]


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_that_is_not_json_by_its_type_is_a_415(
    client: TestClient, seeded: Seeded, content_type: str | None
) -> None:
    headers = AUTH | ({"Content-Type": content_type} if content_type else {})
    path = f"/api/instances/{seeded.order_failed}/retry"
    found = problem(client.post(path, content=b'{"dryRun": true}', headers=headers), 415)
    assert "application/json" in found["detail"]
    ok = client.post(path, content=b'{"dryRun": true}', headers=AUTH | JSON)
    assert ok.status_code == 200, ok.text
    typed = {"Content-Type": "application/merge-patch+json; charset=utf-8"}
    assert client.post(path, content=b'{"dryRun": true}', headers=AUTH | typed).is_success


def test_every_route_with_a_body_is_guarded(client: TestClient) -> None:
    with_body = [r for r in api.router.routes if isinstance(r, APIRoute) and r.body_field]
    assert len(with_body) == 2, "the API has routes that take a body"
    assert all(isinstance(route, GuardedRoute) for route in with_body), with_body
    app: FastAPI = client.app  # type: ignore[assignment]
    others = [r for r in app.routes if isinstance(r, APIRoute)]
    assert others, "the app's own routes"
    assert all(route.body_field is None for route in others), others


def test_the_openapi_document_names_the_body_problems(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    act = document["paths"]["/api/instances/{saga_id}/{action}"]["post"]
    assert {"401", "403", "413", "415", "422"} <= set(act["responses"])


# -- Swagger UI ----------------------------------------------------------------------------


def test_swagger_ui_is_served_by_the_server_itself(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    page = parsed(response.text)
    assert page.urls, "the page loads Swagger UI's files"
    for url in page.urls:
        assert url.startswith("/docs/assets/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    assert "://" not in response.text.replace("http://www.w3.org", "")
    assert "cdn" not in response.text.lower()
    # Its one inline script (Swagger UI's start-up) is allowed by its hash, nothing else.
    [script] = page.inline_scripts
    policy = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy
    assert "'sha256-" in policy
    assert "/openapi.json" in script
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN
    assert client.get("/docs/oauth2-redirect").status_code == 404


# -- anything else a client can send -------------------------------------------------------

HOSTILE_REQUESTS: list[tuple[str, str, int]] = [
    ("GET", "/instances/" + "x" * 5000, 404),
    ("GET", "/instances/%FF", 404),
    ("GET", "/api/instances/%FF", 404),
    ("GET", "/api/instances/" + "x" * 65, 422),
    ("GET", "/api/definitions/%FF/1/graph.svg", 404),
    ("GET", "/api/definitions/order_fulfillment/" + "9" * 5000 + "/graph.svg", 422),
    ("GET", "/api/stats?window=" + "9" * 5000, 422),
    ("GET", "/api/instances?key=%FF%FE", 200),
    ("GET", "/?key=%FF", 200),
    ("GET", "/?saga=" + "a" * 10_000, 422),
    ("GET", "/?waitingTimer=maybe", 422),
    ("GET", "/?startedAfter=99999-01-01", 422),
    ("GET", "/?" + "status=failed&" * 2000, 200),
    ("GET", "/?offset=1&offset=" + "9" * 5000, 200),
    ("GET", "/static/../sagas/server/app.py", 404),
    ("GET", "/static/%2e%2e/app.py", 404),
    ("GET", "/docs/assets/%2e%2e/%2e%2e/secrets.py", 404),
    ("PUT", "/api/instances/x/retry", 405),
    ("DELETE", "/", 405),
]


@pytest.mark.parametrize(
    ("method", "path", "status"), HOSTILE_REQUESTS, ids=[p[:40] for _, p, _ in HOSTILE_REQUESTS]
)
def test_hostile_paths_and_queries_are_answered_without_a_server_error(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status, response.text[:500]
    assert response.headers["x-frame-options"] == "DENY"
    if status >= 400 and not response.headers["content-type"].startswith("text/html"):
        assert response.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer",
        b"Bearer " + b"t" * 100_000,
        b"Basic dXNlcjpwYXNz",
        b"Bearer " + TOKEN.encode() + b"\xc3\xa9\xff",
        b"bearer  " + TOKEN.encode() + b"x",
    ],
    ids=["no-credentials", "huge", "basic", "not-ascii", "near-miss"],
)
def test_a_malformed_authorization_header_is_a_401(
    client: TestClient, seeded: Seeded, authorization: bytes
) -> None:
    response = client.post(
        f"/api/instances/{seeded.order_failed}/retry",
        content=b"{}",
        headers=[(b"content-type", b"application/json"), (b"authorization", authorization)],
    )
    body = problem(response, 401)
    assert "bearer token" in body["detail"]
    assert response.headers["www-authenticate"] == "Bearer"
