"""Schemathesis against the app's own OpenAPI document: whatever the document allows a client
to send (and much it does not), on a seeded database and with the operator token, the server
never answers with a server error.

Path parameters named ``saga_id`` are mostly replaced by the ids of seeded instances, so the
actions reach real instances in every state instead of answering 404 to random strings.
"""

from __future__ import annotations

import itertools
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
from server_checks import TOKEN, Seeded, open_app, seeded_engine

from sagas.testing import ManualClock

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACT = "POST /api/instances/{saga_id}/{action}"
BULK = "POST /api/actions/{action}"
_turns = itertools.count()


@pytest.fixture(scope="module")
def seeded_database(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Seeded]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('schemathesis')) / 'server.db'}"
    with seeded_engine(url, ManualClock()) as (_, _, seeded):
        pass
    return url, seeded


@pytest.fixture(scope="module")
def answers() -> Iterator[Counter[tuple[str, int]]]:
    """The status codes the app answered, per operation; at the end, proof that the actions
    were exercised for real: with the token, on seeded instances (applied and refused)."""
    found: Counter[tuple[str, int]] = Counter()
    started = time.monotonic()
    yield found
    operations = {label for label, _ in found}
    print(
        f"\nschemathesis: {len(operations)} operations, {found.total()} calls "
        f"in {time.monotonic() - started:.1f}s: {sorted(found.items())}"
    )
    if ACT in operations:
        assert found[(ACT, 200)], sorted(found.items())
        assert found[(ACT, 409)], sorted(found.items())
    if BULK in operations:
        assert found[(BULK, 200)], sorted(found.items())


@pytest.fixture(scope="module")
def seeded_ids(seeded_database: tuple[str, Seeded]) -> list[str]:
    return seeded_database[1].all


@pytest.fixture(scope="module")
def seeded_app(seeded_database: tuple[str, Seeded]) -> Iterator[FastAPI]:
    url, _ = seeded_database
    with open_app(url, ManualClock()) as app:
        yield app


def _document() -> dict[str, Any]:
    """The app's OpenAPI document (the same whatever the database: an in-memory one here)."""
    with open_app("sqlite://") as app, TestClient(app) as client:
        response = client.get("/openapi.json")
        assert response.status_code == 200
        document: dict[str, Any] = response.json()
        return document


schema = schemathesis.openapi.from_dict(_document())


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_api_never_answers_with_a_server_error(
    case: schemathesis.Case[Any],
    seeded_app: FastAPI,
    seeded_ids: list[str],
    answers: Counter[tuple[str, int]],
) -> None:
    turn = next(_turns)
    if case.path_parameters and "saga_id" in case.path_parameters and turn % 4:
        case.path_parameters["saga_id"] = seeded_ids[turn % len(seeded_ids)]
    response = case.call_and_validate(headers=AUTH, checks=[not_a_server_error], app=seeded_app)
    answers[(case.operation.label, response.status_code)] += 1
