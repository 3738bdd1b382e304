"""Shared fixtures: the database of a test on every backend, a manual clock, the order saga, a
bounded polling helper.

``database`` runs a test once per backend: a fresh SQLite file, and a fresh schema in ONE
PostgreSQL database created for the test run on the server of this machine. The server is
``postgresql://postgres@127.0.0.1:5432/test`` (the maintenance connection; set
``SAGAS_TEST_POSTGRES_URL`` for another one). When it cannot be reached the ``postgresql``
cases fail: CI starts the server (``.ci/run``), so a skip would only hide that it did not.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import Pool

from sagas import SagaDefinition, load_definition
from sagas.testing import ManualClock

ROOT = Path(__file__).resolve().parent.parent
"""The repository root (where `definitions/` and `engine/` live)."""

POSTGRES_URL_ENV = "SAGAS_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


class PostgresDatabase:
    """The run's PostgreSQL database; every test gets a schema of its own in it.

    A schema costs a few milliseconds where a database costs a hundred, and the URL's
    ``search_path`` puts everything the store creates (the tables and Alembic's version table)
    into it, so no test sees another's rows.
    """

    def __init__(self, maintenance_url: str) -> None:
        import psycopg  # the `postgres` extra; without it the postgresql cases fail here

        self._psycopg = psycopg
        server = make_url(maintenance_url).set(drivername="postgresql")
        self.name = f"sagas_test_{os.getpid()}_{secrets.token_hex(3)}"
        self.url = server.set(database=self.name)
        self._names = itertools.count(1)
        self._maintenance = psycopg.connect(
            server.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        )
        self._execute(self._maintenance, "CREATE DATABASE {}", self.name)
        try:
            # Commits need not wait for the disk: no test crashes the server.
            alter = "ALTER DATABASE {} SET synchronous_commit = off"
            self._execute(self._maintenance, alter, self.name)
            # Sessions far from UTC: the store must not depend on the server's time zone.
            alter = "ALTER DATABASE {} SET timezone = 'Pacific/Kiritimati'"
            self._execute(self._maintenance, alter, self.name)
            self._admin = psycopg.connect(
                self.url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
            )
        except BaseException:
            self._execute(self._maintenance, "DROP DATABASE {} WITH (FORCE)", self.name)
            self._maintenance.close()
            raise

    def create_schema(self) -> str:
        """A new empty schema; the SQLAlchemy URL whose connections work in it only.

        Schemas are not dropped one by one (a drop costs 10-50 ms, a creation 1 ms): they go
        with the database at the end of the run.
        """
        schema = f"t{next(self._names):05d}"
        self._execute(self._admin, "CREATE SCHEMA {}", schema)
        url = self.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    def tables_outside_test_schemas(self) -> list[str]:
        """Tables that landed in ``public``: a statement that ignored the URL's search_path."""
        rows = self._admin.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).fetchall()
        return [str(row[0]) for row in rows]

    def close(self) -> None:
        """Drop the database, whatever is still connected to it."""
        self._admin.close()
        self._execute(self._maintenance, "DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)
        self._maintenance.close()

    def _execute(self, conn: Any, statement: str, name: str) -> None:
        sql = self._psycopg.sql
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase]:
    """ONE database for the whole run, created on first use and dropped at the end."""
    maintenance_url = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL
    where = make_url(maintenance_url).render_as_string(hide_password=True)
    try:
        database = PostgresDatabase(maintenance_url)
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    else:
        problem = None
    if problem is not None:  # outside the except: the message alone, no chained traceback
        pytest.fail(
            f"PostgreSQL at {where} cannot be used for the postgresql cases: {problem}\n"
            f"Start the server ({START_POSTGRES}), or point {POSTGRES_URL_ENV} at one; "
            "psycopg comes with `pip install -e '.[test,postgres]'`.",
            pytrace=False,
        )
    try:
        yield database
    finally:
        database.close()


@contextmanager
def no_connection_left_checked_out() -> Iterator[None]:
    """Fail when a pooled connection checked out inside the block is still out at its end (a
    store or a transaction the code under test forgot to close), whichever engine it came from."""
    out: dict[int, str] = {}
    lock = threading.Lock()

    def checked_out(_dbapi: Any, record: Any, _proxy: Any) -> None:
        with lock:
            out[id(record)] = threading.current_thread().name

    def returned(_dbapi: Any, record: Any) -> None:
        with lock:
            out.pop(id(record), None)

    listeners: list[tuple[str, Callable[..., None]]] = [
        ("checkout", checked_out),
        ("checkin", returned),
        ("detach", returned),
    ]
    for name, listener in listeners:
        event.listen(Pool, name, listener)
    try:
        yield
    finally:
        for name, listener in listeners:
            event.remove(Pool, name, listener)
    assert not out, f"{len(out)} pooled connection(s) still checked out, by {sorted(out.values())}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database for this test only, once per backend: a SQLite
    file, and a fresh schema of the run's PostgreSQL database. Connections left checked out
    at the end fail the test."""
    if request.param == "sqlite":
        with no_connection_left_checked_out():
            yield f"sqlite:///{tmp_path / 'test.db'}"  # not sagas.db, the default's name
        return
    postgres: PostgresDatabase = request.getfixturevalue("postgres_database")
    url = postgres.create_schema()
    with no_connection_left_checked_out():
        yield url
    stray = postgres.tables_outside_test_schemas()
    assert not stray, f"tables created outside the test's schema, in public: {stray}"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file for this test only (for what only SQLite has: files, query plans)."""
    return tmp_path / "sagas.db"


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so."""
    return ManualClock()


@pytest.fixture
def order_definition() -> SagaDefinition:
    """The shipped order fulfilment saga."""
    return load_definition(ROOT / "definitions" / "order_fulfillment.yaml")


Eventually = Callable[..., None]
"""``eventually(predicate, timeout=10.0, interval=0.02)``: see :func:`poll_until`."""


def poll_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds.

    Only for work in another thread or process: an in-process engine is driven to idle instead.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate!r}")
        time.sleep(interval)


@pytest.fixture
def eventually() -> Eventually:
    """The bounded polling helper (a fixture, so no test imports a conftest module)."""
    return poll_until
