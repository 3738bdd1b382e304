"""``sagas serve`` serves the event contract (AsyncAPI 3.0) of the registered sagas beside its
OpenAPI document: without a token, in JSON and YAML, always from the definitions registered
now, and over a real HTTP server too."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from asyncapi_checks import assert_valid
from fastapi.testclient import TestClient
from server_checks import open_app, serving

from sagas import SagaDefinition, load_definition
from sagas.asyncapi import asyncapi_document
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

ROOT = Path(__file__).resolve().parents[2]
ORDER = ROOT / "definitions" / "order_fulfillment.yaml"
TRAVEL = ROOT / "definitions" / "travel_booking.yaml"


def register(database: str, *definitions: SagaDefinition) -> list[SagaDefinition]:
    """Register ``definitions`` in ``database``; every registered version afterwards."""
    store = SQLStore(database)
    try:
        for definition in definitions:
            store.register_definition(definition, ManualClock().now())
        return store.definitions()
    finally:
        store.close()


@pytest.fixture
def client(database: str) -> Iterator[TestClient]:
    with open_app(database) as app, TestClient(app) as client:
        yield client


def test_the_contract_of_the_registered_sagas_is_served_without_a_token(
    database: str, client: TestClient
) -> None:
    registered = register(database, load_definition(ORDER), load_definition(TRAVEL))
    response = client.get("/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    document = response.json()
    assert_valid(document)
    assert document == asyncapi_document(registered)
    names = {message["name"] for message in document["components"]["messages"].values()}
    assert {"OrderCreated", "ReserveInventory", "TripApproved", "HotelRejected"} <= names
    response = client.get("/asyncapi.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(response.text) == document


def test_a_definition_registered_while_serving_is_in_the_next_document(
    database: str, client: TestClient
) -> None:
    empty = client.get("/asyncapi.json").json()
    assert_valid(empty)
    assert empty["operations"] == {}
    register(database, load_definition(ORDER))
    document = client.get("/asyncapi.json").json()
    assert_valid(document)
    assert "order_fulfillment.receive.OrderCreated" in document["operations"]
    assert document["info"]["version"] != empty["info"]["version"]


def test_a_read_only_server_serves_it_too(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'read-only.db'}"
    registered = register(database, load_definition(TRAVEL))
    with open_app(database, token=None) as app, TestClient(app) as client:
        response = client.get("/asyncapi.json")
    assert response.status_code == 200
    assert response.json() == asyncapi_document(registered)


def test_the_openapi_document_lists_it_beside_the_api_with_no_token(tmp_path: Path) -> None:
    with open_app(f"sqlite:///{tmp_path / 'docs.db'}") as app, TestClient(app) as client:
        openapi = client.get("/openapi.json").json()
    for path, media in (
        ("/asyncapi.json", "application/json"),
        ("/asyncapi.yaml", "application/yaml"),
    ):
        operation = openapi["paths"][path]["get"]
        assert "security" not in operation
        assert media in operation["responses"]["200"]["content"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/asyncapi.json?format=%00", 422),
        ("GET", "/asyncapi.json/", 404),
        ("GET", "/asyncapi.yml", 404),
        ("POST", "/asyncapi.json", 405),
        ("DELETE", "/asyncapi.yaml", 405),
        ("GET", "/asyncapi.json?" + "x=1&" * 2000, 200),
    ],
)
def test_odd_requests_get_a_client_answer_never_a_server_error(
    tmp_path: Path, method: str, path: str, status: int
) -> None:
    with open_app(f"sqlite:///{tmp_path / 'odd.db'}") as app, TestClient(app) as client:
        response = client.request(method, path)
    assert response.status_code == status


def test_over_http_the_document_is_the_same(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'http.db'}"
    registered = register(database, load_definition(ORDER), load_definition(TRAVEL))
    with open_app(database) as app, serving(app) as (host, port):
        url = f"http://{host}:{port}/asyncapi.json"
        reply = urllib.request.urlopen(url, timeout=20)
        with reply:
            assert reply.status == 200
            document = json.loads(reply.read())
    assert_valid(document)
    assert document == asyncapi_document(registered)
