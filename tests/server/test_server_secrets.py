"""The database password is shown nowhere: a PostgreSQL URL with a password (the test server
trusts any password, so it is really used) never shows it on the dashboard, in the API's
documents and problems, in the worker's log, nor in the CLI's output and errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_checks import TOKEN, Seeded, open_app, seeded_engine
from sqlalchemy.engine import make_url

from sagas.server import create_app
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

PASSWORD = "s3cret-Pa55"
SAGAS = Path(sys.executable).with_name("sagas")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def secret_url(postgres_database: object) -> str:
    """A fresh schema of the run's PostgreSQL database, reached with a password."""
    plain = postgres_database.create_schema()  # type: ignore[attr-defined]
    url = make_url(plain).set(password=PASSWORD).render_as_string(hide_password=False)
    assert PASSWORD in url
    return url


@pytest.fixture
def seeded(secret_url: str) -> Iterator[Seeded]:
    with seeded_engine(secret_url, ManualClock()) as (_, _, found):
        yield found


def sagas(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGAS_")}
    return subprocess.run(
        [str(SAGAS), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_dashboard_and_the_api_never_show_the_password(secret_url: str, seeded: Seeded) -> None:
    with open_app(secret_url, ManualClock()) as app, TestClient(app) as client:
        home = client.get("/")
        assert home.status_code == 200
        assert "postgres:***@" in home.text, "the dashboard says which database"
        paths = [
            "/",
            "/definitions",
            f"/instances/{seeded.travel_failed}",
            "/api/instances",
            f"/api/instances/{seeded.order_failed}",
            "/api/definitions",
            "/api/stats",
            "/openapi.json",
            "/metrics",
            "/healthz",
            "/docs",
        ]
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            assert PASSWORD not in response.text, path
            assert PASSWORD not in str(response.headers), path


def test_a_database_error_in_the_api_does_not_show_the_password(secret_url: str) -> None:
    # Nothing listens on port 1: every request fails in the database.
    gone = make_url(secret_url).set(port=1).render_as_string(hide_password=False)
    store = SQLStore(gone, migrate=False)
    try:
        app = create_app(store, token=TOKEN, database=gone)
        with TestClient(app) as client:
            for path in ("/api/instances", "/healthz", "/"):
                response = client.get(path)
                assert response.status_code == 503, (path, response.text)
                assert "the database failed" in response.text
                assert "postgres:***@" in response.text
                assert PASSWORD not in response.text, path
    finally:
        store.close()


def test_the_worker_log_and_the_cli_never_show_the_password(
    secret_url: str, tmp_path: Path
) -> None:
    worker = sagas(
        "worker",
        "--until-idle",
        "--definitions",
        str(ROOT / "definitions" / "order_fulfillment.yaml"),
        "--handlers",
        "sagas.demo.services",
        "--db",
        secret_url,
        cwd=tmp_path,
    )
    assert worker.returncode == 0, worker.stderr
    output = worker.stdout + worker.stderr
    assert "worker on postgresql://postgres:***@" in output
    assert PASSWORD not in output

    upgrade = sagas("db", "upgrade", "--db", secret_url, cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "postgres:***@" in upgrade.stdout
    assert PASSWORD not in upgrade.stdout + upgrade.stderr

    gone = make_url(secret_url).set(port=1).render_as_string(hide_password=False)
    malformed = f"postgresql://postgres:{PASSWORD}@127.0.0.1:no-port/test"
    unknown = make_url(secret_url).set(drivername="nosuchdb").render_as_string(hide_password=False)
    for args in (
        ("list", "--db", gone),
        ("show", "no-such-saga", "--db", gone),
        ("stats", "--db", gone),
        ("db", "upgrade", "--db", gone),
        ("serve", "--read-only", "--port", "0", "--db", gone),
        ("list", "--db", unknown),
        ("publish", "--db", gone, '{"eventType": "OrderCreated"}'),
        ("list", "--db", malformed),
        ("db", "upgrade", "--db", malformed),
        ("worker", "--until-idle", "--handlers", "sagas.demo.services", "--db", malformed),
    ):
        result = sagas(*args, cwd=tmp_path)
        assert result.returncode != 0, (args, result)
        assert "Error" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert PASSWORD not in result.stdout + result.stderr, (args, result.stderr)
