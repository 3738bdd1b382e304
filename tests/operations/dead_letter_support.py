"""What the dead-letter tests share: a small saga, and replaying or dropping a dead letter
through the CLI or the HTTP API (the way an operator does)."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner
from fastapi.testclient import TestClient

from sagas import parse_definition
from sagas.cli import cli
from sagas.engine.decide import saga_id_for
from sagas.intake import DEFAULT_MAX_EVENT_BYTES
from sagas.server import create_app
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

__all__ = ["SHOP", "TOKEN", "VIAS", "act", "listed", "shop", "shop_id"]

TOKEN = "dead-letter-operator-token-0123456789"
VIAS = ("cli", "api")
SHOP = """
name: shop
trigger: OrderPlaced
correlation: orderId
steps:
  - name: book
    command: {type: Book, success: Booked, failure: BookingFailed}
    compensation:
      command: {type: CancelBooking, success: BookingCancelled}
"""


def shop() -> Any:
    return parse_definition(SHOP)


def shop_id(order: str) -> str:
    return saga_id_for("shop", order)


def act(
    via: str,
    database: str,
    action: str,
    letter_id: int,
    *,
    clock: ManualClock,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> dict[str, Any]:
    """Replay or drop one dead letter as an operator would; the report of that message."""
    if via == "cli":
        args = ["dead-letters", action, str(letter_id), "--db", database, "--json"]
        if action == "replay":
            args += ["--max-event-bytes", str(max_event_bytes)]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code in (0, 1), result.output
        document = json.loads(result.output)
        assert document["action"] == action
        [report] = document["results"]
        assert (result.exit_code == 1) == (report["fate"] in ("refused", "not found"))
        return dict(report)
    store = SQLStore(database)
    try:
        app = create_app(store, token=TOKEN, clock=clock, max_event_bytes=max_event_bytes)
        with TestClient(app) as client:
            response = client.post(
                f"/api/dead-letters/{letter_id}/{action}",
                json={},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
    finally:
        store.close()
    if response.status_code == 409:
        return {"fate": "refused", "note": response.json()["detail"], "removed": False}
    assert response.status_code == 200, response.text
    return dict(response.json())


CLI_OPTIONS = {
    "source": "--source",
    "eventType": "--type",
    "reason": "--reason",
    "sagaId": "--saga-id",
}


def listed(via: str, database: str, **query: str) -> list[dict[str, Any]]:
    """The dead letters ``query`` (the API's parameters) selects, as the CLI (``list
    --json``) or the API (``GET``) lists them."""
    if via == "cli":
        options = [part for name, value in query.items() for part in (CLI_OPTIONS[name], value)]
        args = ["dead-letters", "list", "--db", database, "--json", *options]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return list(json.loads(result.output)["items"])
    store = SQLStore(database)
    try:
        with TestClient(create_app(store, token=TOKEN)) as client:
            response = client.get("/api/dead-letters", params=query)
    finally:
        store.close()
    assert response.status_code == 200, response.text
    return list(response.json()["items"])
