"""What the dashboard's browser tests share: a database seeded by real engine runs with the
participants of ``sample_services`` (``send_itinerary`` retried once after 10 ms),
``sagas serve``'s app served by uvicorn in a thread, a worker loop in another, and Debian's
Chromium driven by Playwright (never a downloaded browser).

Seeded, one instance after the other (so the list, newest first, always shows the same order):

* completed: orders ``order-1001``..``order-1003`` and trip ``trip-2001``;
* compensated: order ``nostock-1004`` (out of stock) and ``declined-1005`` (card declined);
* failed: trips ``nomail-2002`` and ``nomail-2003``, whose ``send_itinerary`` (after the pivot
  ``charge_customer``) gave up while the mail server was down.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sample_services import (
    Participants,
    order_created,
    order_definition,
    travel_definition,
    trip_requested,
)

from sagas import SagaDefinition
from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus
from sagas.runtime.engine import Engine
from sagas.server import create_app
from sagas.store.sql import SQLStore

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
TOKEN = "browser-test-operator-token-42"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WAIT = 20.0
"""Seconds any wait for the worker or the server may take before the test fails."""

COMPLETED_ORDERS = ("order-1001", "order-1002", "order-1003")
COMPENSATED_ORDERS = ("nostock-1004", "declined-1005")
COMPLETED_TRIPS = ("trip-2001",)
FAILED_TRIPS = ("nomail-2002", "nomail-2003")


@dataclass
class Seeded:
    """The seeded saga ids by correlation key and by status."""

    keys: dict[str, str]
    by_status: dict[InstanceStatus, list[str]]


def _run_until(engine: Engine, saga_id: str, status: InstanceStatus) -> None:
    """Drive ``engine`` (on the system clock: retries wait for real) until the instance
    ends with ``status``."""
    deadline = time.monotonic() + WAIT
    while True:
        engine.run_until_idle()
        record = engine.store.instances([saga_id]).get(saga_id)
        found = record.state if record is not None else None
        if found is not None and found.status not in (
            InstanceStatus.RUNNING,
            InstanceStatus.COMPENSATING,
        ):
            assert found.status == status, (found.correlation_key, found.status, found.reason)
            return
        assert time.monotonic() < deadline, f"{saga_id} did not end within {WAIT}s"
        time.sleep(0.005)


def seed(engine: Engine, participants: Participants) -> Seeded:
    """Register the sagas and run the instances one after the other to their end; the mail
    server is left down (``participants.mail_down``) until a test brings it back."""
    orders = engine.register(order_definition())
    trips = engine.register(travel_definition(quick_retry=True))
    participants.mail_down = True
    plan: list[tuple[SagaDefinition, str, InstanceStatus]] = [
        *((orders, key, InstanceStatus.COMPLETED) for key in COMPLETED_ORDERS),
        *((orders, key, InstanceStatus.COMPENSATED) for key in COMPENSATED_ORDERS),
        *((trips, key, InstanceStatus.COMPLETED) for key in COMPLETED_TRIPS),
        *((trips, key, InstanceStatus.FAILED) for key in FAILED_TRIPS),
    ]
    keys: dict[str, str] = {}
    by_status: dict[InstanceStatus, list[str]] = {}
    for definition, key, status in plan:
        started = order_created if definition is orders else trip_requested
        event = started(key, datetime.now(UTC))
        assert engine.publish(event)
        saga_id = keys[key] = saga_id_for(definition.name, key)
        _run_until(engine, saga_id, status)
        by_status.setdefault(status, []).append(saga_id)
        time.sleep(0.01)  # distinct update times: a stable order in the list
    return Seeded(keys, by_status)


@contextmanager
def running_worker(engine: Engine) -> Iterator[None]:
    """``engine.run(stop)`` in a thread of its own until the block ends."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            engine.run(stop, poll_interval=0.02)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failure.append(exc)
            raise

    thread = threading.Thread(target=work, name="sagas-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=WAIT)
        assert not thread.is_alive(), "the worker did not stop"
    assert not failure, f"the worker failed: {failure[0]!r}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="sagas-serve", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, f"uvicorn did not start within {WAIT}s"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT)
        assert not thread.is_alive(), "uvicorn did not stop"


@dataclass
class Dashboard:
    """A seeded database, its worker running and ``sagas serve`` on it."""

    url: str
    store: SQLStore
    """The test's own view of the database (neither the worker's nor the server's)."""
    participants: Participants
    seeded: Seeded


@contextmanager
def dashboard(db_path: Path) -> Iterator[Dashboard]:
    """Seed ``db_path``, then run a worker and the server on it until the block ends."""
    database = f"sqlite:///{db_path}"
    engine = Engine(SQLStore(database))
    server_store = SQLStore(database)
    store = SQLStore(database)
    try:
        participants = Participants()
        participants.attach(engine)
        seeded = seed(engine, participants)
        # The header shows the database; the test's temporary path would clutter screenshots.
        app = create_app(server_store, token=TOKEN, database="sqlite:///sagas.db")
        with running_worker(engine), serving(app) as url:
            yield Dashboard(url, store, participants, seeded)
    finally:
        store.close()
        server_store.close()
        engine.close()
