"""Schemathesis over ``POST /events``: whatever the OpenAPI document allows a client to send
(the four body forms, the ce- headers, and much it does not allow), with the publish token, the
server never answers with a server error; some events are accepted for real."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from server_checks import open_app

PUBLISH = "publish-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {PUBLISH}"}
OPERATION = "POST /events"


def _document() -> dict[str, Any]:
    with open_app("sqlite://", publish_token=PUBLISH) as app, TestClient(app) as client:
        response = client.get("/openapi.json")
        assert response.status_code == 200
        document: dict[str, Any] = response.json()
        return document


schema = schemathesis.openapi.from_dict(_document()).include(path="/events")


@pytest.fixture(scope="module")
def events_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('events-fuzz')) / 'events.db'}"
    with open_app(url, publish_token=PUBLISH) as app:
        yield app


@pytest.fixture(scope="module")
def answers() -> Iterator[Counter[int]]:
    """The status codes answered; at the end, proof the run reached the store (202s) and was
    refused for reasons (4xx), within a few seconds."""
    found: Counter[int] = Counter()
    started = time.monotonic()
    yield found
    elapsed = time.monotonic() - started
    print(f"\nschemathesis {OPERATION}: {found.total()} calls in {elapsed:.1f}s: {dict(found)}")
    if found.total() >= 30:
        assert found[202], dict(found)
        assert any(400 <= status < 500 for status in found), dict(found)


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_post_events_never_answers_with_a_server_error(
    case: schemathesis.Case[Any], events_app: FastAPI, answers: Counter[int]
) -> None:
    response = case.call_and_validate(headers=AUTH, checks=[not_a_server_error], app=events_app)
    answers[response.status_code] += 1
