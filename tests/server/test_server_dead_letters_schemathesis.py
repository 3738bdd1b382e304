"""Schemathesis over ``/api/dead-letters``: whatever the OpenAPI document lets a client send
(ids, filters, bodies, and much it does not allow), with the operator token, the server never
answers with a server error, on a database that holds dead letters of every kind."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from sagas.events import Event
from sagas.server import create_app
from sagas.store.dead_letters import dead_letter_of
from sagas.store.sql import SQLStore

TOKEN = "dead-letter-fuzz-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _document() -> dict[str, Any]:
    store = SQLStore("sqlite://")
    try:
        with TestClient(create_app(store, token=TOKEN)) as client:
            document: dict[str, Any] = client.get("/openapi.json").json()
            return document
    finally:
        store.close()


schema = schemathesis.openapi.from_dict(_document()).include(path_regex="^/api/dead-letters")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('dead-letter-fuzz')) / 'letters.db'}"
    store = SQLStore(url)
    now = datetime.now(UTC)
    for n in range(40):  # replays and drops take some: enough stay for the run
        raw = Event.create("OrderPlaced", {"n": n}, at=now, event_id=f"e-{n}").to_json()
        store.record_dead_letter(dead_letter_of(raw, "no saga", source="runtime", at=now))
        store.record_dead_letter(dead_letter_of(b"\xff\x00" * n, "garbled", source="nats", at=now))
    try:
        yield create_app(store, token=TOKEN)
    finally:
        store.close()


@pytest.fixture(scope="module")
def answers() -> Iterator[Counter[int]]:
    found: Counter[int] = Counter()
    started = time.monotonic()
    yield found
    print(
        f"\nschemathesis /api/dead-letters: {found.total()} calls in "
        f"{time.monotonic() - started:.1f}s: {dict(found)}"
    )
    if found.total() >= 50:
        assert found[200], dict(found)
        assert found[422], dict(found)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_dead_letter_api_never_answers_with_a_server_error(
    case: schemathesis.Case[Any], app: FastAPI, answers: Counter[int]
) -> None:
    response = case.call_and_validate(headers=AUTH, checks=[not_a_server_error], app=app)
    answers[response.status_code] += 1
