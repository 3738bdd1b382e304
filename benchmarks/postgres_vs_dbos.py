"""The order saga on PostgreSQL: this engine against DBOS Transact, in one run, on one server.

Both sides run the same work: the shipped order saga (``definitions/order_fulfillment.yaml``:
reserve inventory (command) → take payment (handler) → ship (command, pivot), with the
compensations release inventory and refund) with trivial participants. Each side gets its own
fresh database on the same server, created at the start and dropped at the end:

* engine: :class:`~sagas.store.sql.SQLStore` on ``postgresql://.../<db>`` (psycopg 3) and the
  demo's participants (:class:`~sagas.demo.participants.Participants`), one
  :class:`~sagas.runtime.engine.Engine` with its defaults (``batch_size``, ``concurrency=1``);
* DBOS: a durable workflow ``order_saga`` whose steps are ``reserve_inventory``,
  ``take_payment`` and ``ship`` (``@DBOS.step()``, no retries), with the compensations
  ``release_inventory`` and ``refund_payment`` (also steps) run from ``try``/``except``, and
  its system database on the same PostgreSQL server. The participants fail for the same
  orders as the demo's (the same seeded hash of the order id), so a fail rate gives both
  sides the same outcomes.

Scenarios, each side in turn (engine, then DBOS, scenario by scenario, so that a change in the
machine's load hits both):

* sequential: one saga at a time end to end. Engine: publish the ``OrderCreated`` event, then
  ``run_until_idle()``, then the next. DBOS: call the workflow, then the next;
* concurrency C: C sagas in flight at any time.
  DBOS: C threads, each calling the workflow for its next order as soon as the previous one
  returned (the way to keep C workflows in flight from a client; a DBOS queue would add its
  polling interval to every saga).
  Engine, two ways, both printed: *driver*: one thread tops the sagas in flight up to C (one
  ``publish`` each, a commit per event, as a client does) and then runs one round
  (``run_once()``), until all are done; *threads*: C publisher threads, each publishing one
  order and waiting until the engine reports it finished, then the next, while one worker
  thread runs the real worker loop ``Engine.run(stop)`` (idle, it waits until it is woken,
  as ``Engine.run`` describes);
* concurrency C with fail rate 0.1 (``--fail-rate``, 0 to leave it out): the driver and the
  DBOS threads again, for the first C of ``--concurrency``; a tenth of the orders fail and
  compensate.

Figures, the same for both sides:

* sagas/s: sagas finished ÷ wall time of the scenario;
* steps/s: *steps* are the trigger (the saga's start: the ``OrderCreated`` event, the workflow
  call) plus every participant call actually made (reserve, payment, ship, release, refund),
  counted where the participants run; 4 per saga when nothing fails;
* latency per saga, p50 and p99: from just before the publish (the workflow call) to the saga's
  end (the engine's ``on_finish`` after the commit of the final decision; the workflow's return);
* ``÷ DBOS``: engine sagas/s ÷ DBOS sagas/s of the same scenario;
* engine transitions/s: rows written to ``saga_event_log`` (one per decision) per second, and
  ``÷ raw``: that ÷ the raw commit rate, a psycopg loop of single-row ``INSERT`` + ``COMMIT`` of
  rows shaped like a log row into a fresh table of a third database on the same server,
  measured before and after the sagas (the mean is used). A second raw line, ``batch_size``
  rows per commit, shows what group commit alone allows.

Database work per saga is counted on the client for both sides (SQLAlchemy ``Engine`` and
``Pool`` events: statements, ``executemany`` counting once; commits; connection checkouts) and
printed after the table. Both sides' rows are checked after the run (instances and log rows;
DBOS ``workflow_status`` and ``operation_outputs``): the work really was persisted.

Run from the repository root (``pip install 'sagas-engine[bench]'`` for DBOS)::

    .venv/bin/python -m benchmarks.postgres_vs_dbos
    .venv/bin/python -m benchmarks.postgres_vs_dbos --sagas 500 --sequential 100 --skip-dbos
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine as SQLAlchemyEngine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import Pool

from benchmarks.sqlite_throughput import (
    ORDER_DEFINITION,
    _log_like_row,
    decisions_since,
    last_position,
    order_events,
)
from sagas import SagaDefinition, load_definition
from sagas.clock import SystemClock
from sagas.demo.participants import Participants, _chance  # _chance: the demo's failure draw
from sagas.engine.state import SagaState
from sagas.events import Event
from sagas.runtime.engine import Engine
from sagas.store.sql import SQLStore

__all__ = ["DBOS_REFERENCE", "DbWork", "Figures", "main", "raw_commits"]

DEFAULT_SERVER = os.environ.get("SAGAS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
"""The server (``--server``); a database in the URL is ignored: each side gets a new one."""
DEFAULT_BATCH_SIZE: int = inspect.signature(Engine.__init__).parameters["batch_size"].default
DBOS_REFERENCE = (
    "the issue's figures for DBOS 3.4 on this kind of machine: ~54 sagas/s sequential, "
    "~82 sagas/s with 8 threads (not measured in this run)"
)
TARGET_RATIO = 10.0
WAIT_LIMIT = 120.0  # seconds a saga may take before the run is declared stuck


class StepRefused(Exception):  # noqa: N818 - a business outcome, like the demo's StepFailed
    """A DBOS participant's business failure (out of stock, declined, undeliverable)."""


# -- figures ----------------------------------------------------------------------------------


@dataclass
class DbWork:
    """Client-side database work on one database: statements, commits, checkouts."""

    statements: int = 0
    commits: int = 0
    checkouts: int = 0

    def minus(self, other: DbWork) -> DbWork:
        return DbWork(
            self.statements - other.statements,
            self.commits - other.commits,
            self.checkouts - other.checkouts,
        )


@dataclass(frozen=True)
class Figures:
    """What one side did in one scenario, and how long it took (``perf_counter`` seconds)."""

    side: str
    scenario: str
    sagas: int
    steps: int
    seconds: float
    latencies: tuple[float, ...]
    statuses: Counter[str]
    work: DbWork
    transitions: int | None = None  # engine: saga_event_log rows written

    @property
    def sagas_per_second(self) -> float:
        return self.sagas / self.seconds

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds

    def percentile(self, q: int) -> float:
        """The ``q``-th percentile latency in ms."""
        values = self.latencies
        if len(values) < 2:
            return values[0] * 1e3
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1e3


class WorkCounter:
    """Counts statements, commits and pool checkouts per database name, for every SQLAlchemy
    engine in the process (this engine's store and DBOS's system database alike)."""

    def __init__(self) -> None:
        self._by_db: dict[str, DbWork] = {}
        self._lock = threading.Lock()

    def _work(self, database: str | None) -> DbWork:
        return self._by_db.setdefault(database or "?", DbWork())

    def _statement(self, conn: Any, *_: Any) -> None:
        with self._lock:
            self._work(conn.engine.url.database).statements += 1

    def _commit(self, conn: Any) -> None:
        with self._lock:
            self._work(conn.engine.url.database).commits += 1

    def _checkout(self, dbapi_connection: Any, *_: Any) -> None:
        info = getattr(dbapi_connection, "info", None)
        with self._lock:
            self._work(getattr(info, "dbname", None)).checkouts += 1

    @contextmanager
    def installed(self) -> Iterator[WorkCounter]:
        listeners: list[tuple[type[Any], str, Callable[..., None]]] = [
            (SQLAlchemyEngine, "before_cursor_execute", self._statement),
            (SQLAlchemyEngine, "commit", self._commit),
            (Pool, "checkout", self._checkout),
        ]
        for target, name, fn in listeners:
            sa_event.listen(target, name, fn)
        try:
            yield self
        finally:
            for target, name, fn in listeners:
                sa_event.remove(target, name, fn)

    def snapshot(self, database: str) -> DbWork:
        with self._lock:
            work = self._work(database)
            return DbWork(work.statements, work.commits, work.checkouts)


# -- databases --------------------------------------------------------------------------------


def database_url(server: str, database: str) -> str:
    """The libpq URL of ``database`` on ``server`` (a URL whose own database is ignored)."""
    url = make_url(server).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


def _admin(server: str) -> psycopg.Connection[Any]:
    return psycopg.connect(database_url(server, "postgres"), autocommit=True, connect_timeout=5)


def drop_database(server: str, name: str) -> None:
    with _admin(server) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


def fresh_database(server: str, name: str) -> str:
    """Create the database ``name`` (dropping any earlier one); returns its URL."""
    drop_database(server, name)
    with _admin(server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(server, name)


def server_settings(server: str) -> str:
    """The server's version and the settings that decide what a commit costs."""
    names = ("server_version", "synchronous_commit", "fsync", "wal_sync_method", "shared_buffers")
    with _admin(server) as conn:
        values = {
            name: str(row[0]) if (row := conn.execute(f"SHOW {name}").fetchone()) else "?"
            for name in names
        }
    version = values.pop("server_version")
    return f"PostgreSQL {version} ({', '.join(f'{k}={v}' for k, v in values.items())})"


# -- the raw limit ----------------------------------------------------------------------------

_RAW_TABLE = (
    "CREATE TABLE raw_log (position BIGSERIAL PRIMARY KEY, saga_id VARCHAR(64) NOT NULL,"
    " seq INTEGER NOT NULL, event_id VARCHAR(200) NOT NULL, event_type VARCHAR(200) NOT NULL,"
    " event TEXT NOT NULL, note TEXT NOT NULL, effects TEXT NOT NULL, ignored BOOLEAN NOT NULL,"
    " recorded_at TIMESTAMP WITH TIME ZONE NOT NULL, UNIQUE (saga_id, seq))"
)
_RAW_INSERT = (
    "INSERT INTO raw_log (saga_id, seq, event_id, event_type, event, note, effects, ignored,"
    " recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def raw_commits(url: str, rows: int, per_commit: int = 1) -> float:
    """Rows/s of a psycopg loop: ``per_commit`` single-row INSERTs, then COMMIT, into a fresh
    table shaped like the event log (rows about as large as the engine's)."""
    values = []
    for n in range(rows):
        *head, ignored, recorded_at = _log_like_row(n)
        values.append((*head, bool(ignored), datetime.fromisoformat(recorded_at)))
    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_log")
        conn.execute(_RAW_TABLE)
        conn.commit()
        started = time.perf_counter()
        for start in range(0, rows, per_commit):
            for row in values[start : start + per_commit]:
                conn.execute(_RAW_INSERT, row)
            conn.commit()
        seconds = time.perf_counter() - started
        stored = conn.execute("SELECT count(*) FROM raw_log").fetchone()
    if stored is None or stored[0] != rows:
        raise SystemExit(f"raw loop stored {stored} of {rows} rows")
    return rows / seconds


# -- the engine -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Before:
    """Where the engine's database and counters stood when a scenario began."""

    position: int
    calls: int
    statuses: Counter[str]
    work: DbWork


class EngineSide:
    """An engine on a PostgreSQL database running the order saga with the demo participants."""

    def __init__(
        self, url: str, definition: SagaDefinition, *, fail_rate: float, batch_size: int
    ) -> None:
        self.store = SQLStore(url)
        self.engine = Engine(self.store, clock=SystemClock(), batch_size=batch_size)
        self.participants = Participants(fail_rate=fail_rate, seed=0)
        self.participants.subscribe(self.engine.bus)
        self.participants.register(self.engine.handlers)
        self.engine.register(definition)
        self.statuses: Counter[str] = Counter()
        self.finished_at: dict[str, float] = {}
        self._just_finished: list[str] = []
        self._waiters: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.engine.on_finish.append(self._finished)

    def close(self) -> None:
        self.engine.close()

    def _finished(self, state: SagaState) -> None:
        at = time.perf_counter()
        key = state.correlation_key
        with self._lock:
            self.statuses[state.status.value] += 1
            self.finished_at[key] = at
            self._just_finished.append(key)
            waiter = self._waiters.pop(key, None)
        if waiter is not None:
            waiter.set()

    def _calls(self) -> int:
        return sum(self.participants.counts.values())  # read while no participant runs

    def _events(self, sagas: int, prefix: str) -> list[Event]:
        return order_events(sagas, prefix, self.engine.clock.now())

    def _begin(self, counter: WorkCounter, database: str) -> _Before:
        with self._lock:
            self._just_finished.clear()  # sagas that ended before this scenario
        return _Before(
            last_position(self.store),
            self._calls(),
            Counter(self.statuses),
            counter.snapshot(database),
        )

    def _end(
        self,
        before: _Before,
        side: str,
        scenario: str,
        sagas: int,
        seconds: float,
        latencies: list[float],
        counter: WorkCounter,
        database: str,
    ) -> Figures:
        """The figures of a scenario that began at ``before`` (log rows counted once idle)."""
        work = counter.snapshot(database).minus(before.work)
        self.engine.run_until_idle()  # the round that deletes the carried-out outbox rows
        statuses = Counter(self.statuses)
        statuses.subtract(before.statuses)
        done = sum(statuses.values())
        if done != sagas or len(latencies) != sagas:
            raise SystemExit(f"{side}, {scenario}: {done} of {sagas} sagas finished")
        return Figures(
            side,
            scenario,
            sagas,
            sagas + self._calls() - before.calls,
            seconds,
            tuple(latencies),
            +statuses,
            work,
            decisions_since(self.store, before.position),
        )

    def warm_up(self, sagas: int) -> None:
        self.store.enqueue(self._events(sagas, "warm"), received_at=self.engine.clock.now())
        self.engine.run_until_idle()
        for event in self._events(3, "warm-seq"):
            self.engine.publish(event)
            self.engine.run_until_idle()

    def sequential(self, scenario: str, sagas: int, counter: WorkCounter, db: str) -> Figures:
        """Publish one order, run until idle, the next."""
        events = self._events(sagas, "seq")
        latencies: list[float] = []
        before = self._begin(counter, db)
        started = time.perf_counter()
        for event in events:
            begun = time.perf_counter()
            self.engine.publish(event)
            self.engine.run_until_idle()
            key = str(event.data["orderId"])
            if key not in self.finished_at:
                raise SystemExit(f"engine, {scenario}: saga {key} did not finish")
            latencies.append(self.finished_at[key] - begun)
        seconds = time.perf_counter() - started
        with self._lock:
            self._just_finished.clear()
        return self._end(before, "engine", scenario, sagas, seconds, latencies, counter, db)

    def driver(
        self,
        scenario: str,
        sagas: int,
        concurrency: int,
        prefix: str,
        counter: WorkCounter,
        db: str,
    ) -> Figures:
        """Top the sagas in flight up to ``concurrency`` (a publish each), run one round,
        repeat until all finished."""
        upcoming = iter(self._events(sagas, prefix))
        latencies: list[float] = []
        published: dict[str, float] = {}
        in_flight = finished = idle = 0
        before = self._begin(counter, db)
        started = time.perf_counter()
        while finished < sagas:
            while in_flight < concurrency and (event := next(upcoming, None)) is not None:
                published[str(event.data["orderId"])] = time.perf_counter()
                self.engine.publish(event)
                in_flight += 1
            idle = 0 if self.engine.run_once() else idle + 1
            if idle > 1000:
                raise SystemExit(f"engine, {scenario}: idle with {in_flight} sagas in flight")
            with self._lock:
                done, self._just_finished = self._just_finished, []
            latencies += [self.finished_at[key] - published[key] for key in done]
            in_flight -= len(done)
            finished += len(done)
        seconds = time.perf_counter() - started
        side = "engine, driver"
        return self._end(before, side, scenario, sagas, seconds, latencies, counter, db)

    def threads(
        self,
        scenario: str,
        sagas: int,
        concurrency: int,
        prefix: str,
        counter: WorkCounter,
        db: str,
    ) -> Figures:
        """``concurrency`` publisher threads (publish one, wait for its end, next) and one
        worker thread running ``Engine.run(stop)``."""
        upcoming = iter(self._events(sagas, prefix))
        take = threading.Lock()
        stop = threading.Event()
        latencies: list[float] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                self.engine.run(stop)
            except BaseException as exc:
                errors.append(exc)

        def publish() -> None:
            try:
                while not errors:
                    with take:
                        event = next(upcoming, None)
                    if event is None:
                        return
                    key = str(event.data["orderId"])
                    done = threading.Event()
                    with self._lock:
                        self._waiters[key] = done
                    begun = time.perf_counter()
                    self.engine.publish(event)
                    if not done.wait(WAIT_LIMIT):
                        raise RuntimeError(f"saga {key} not finished after {WAIT_LIMIT} s")
                    latencies.append(self.finished_at[key] - begun)
            except BaseException as exc:
                errors.append(exc)

        before = self._begin(counter, db)
        worker = threading.Thread(target=work, name="engine-worker", daemon=True)
        worker.start()
        started = time.perf_counter()
        publishers = [threading.Thread(target=publish, daemon=True) for _ in range(concurrency)]
        for thread in publishers:
            thread.start()
        for thread in publishers:
            thread.join()
        seconds = time.perf_counter() - started
        stop.set()
        worker.join()
        with self._lock:
            self._just_finished.clear()
        if errors:
            raise SystemExit(f"engine, threads, {scenario}: {errors[0]!r}")
        side = "engine, threads"
        return self._end(before, side, scenario, sagas, seconds, latencies, counter, db)

    def persisted(self, url: str) -> str:
        with psycopg.connect(url) as conn:
            statuses = conn.execute(
                "SELECT status, count(*) FROM saga_instances GROUP BY status ORDER BY status"
            ).fetchall()
            log = conn.execute("SELECT count(*) FROM saga_event_log").fetchone()
        listed = ", ".join(f"{n:,} {status}" for status, n in statuses)
        return f"saga_instances: {listed}; saga_event_log: {log[0] if log else 0:,} rows"


# -- DBOS -------------------------------------------------------------------------------------


@dataclass
class DbosParticipants:
    """The same participants for DBOS: fail for the same orders as the demo's, and count."""

    fail_rate: float = 0.0
    seed: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def calls(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def fails(self, what: str, order_id: str) -> bool:
        return _chance(self.seed, what, order_id) < self.fail_rate / 3


@dataclass(frozen=True)
class DbosApp:
    """The DBOS workflow (registered once per process) and its participants."""

    workflow: Callable[[str, list[dict[str, Any]], float, str], str]
    participants: DbosParticipants


_dbos_app: DbosApp | None = None


def dbos_available() -> bool:
    try:
        import dbos  # noqa: F401
    except ImportError:
        return False
    return True


def dbos_version() -> str:
    from importlib.metadata import version

    return version("dbos")


def _dbos_order_saga() -> DbosApp:
    """Define (once) the DBOS workflow ``order_saga`` and its steps."""
    global _dbos_app
    if _dbos_app is not None:
        return _dbos_app
    from dbos import DBOS

    participants = DbosParticipants()

    @DBOS.step(name="reserve_inventory")
    def reserve_inventory(order_id: str, items: list[dict[str, Any]]) -> str:
        participants.count("reserve")
        if participants.fails("stock", order_id):
            raise StepRefused("out of stock")
        return f"res-{order_id}"

    @DBOS.step(name="release_inventory")
    def release_inventory(order_id: str, reservation: str) -> None:
        participants.count("release")

    @DBOS.step(name="take_payment")
    def take_payment(order_id: str, amount: float) -> str:
        participants.count("payment")
        if participants.fails("card", order_id):
            raise StepRefused(f"card declined for order {order_id}")
        return f"pay-{order_id}"

    @DBOS.step(name="refund_payment")
    def refund_payment(payment_id: str) -> None:
        participants.count("refund")

    @DBOS.step(name="ship")
    def ship(order_id: str, address: str) -> str:
        participants.count("ship")
        if participants.fails("address", order_id):
            raise StepRefused("address undeliverable")
        return f"trk-{order_id}"

    @DBOS.workflow(name="order_saga")
    def order_saga(order_id: str, items: list[dict[str, Any]], amount: float, address: str) -> str:
        try:
            reservation = reserve_inventory(order_id, items)
        except StepRefused:
            return "compensated"  # nothing was done, nothing to undo
        try:
            payment = take_payment(order_id, amount)
        except StepRefused:
            release_inventory(order_id, reservation)
            return "compensated"
        try:
            ship(order_id, address)
        except StepRefused:
            refund_payment(payment)
            release_inventory(order_id, reservation)
            return "compensated"
        return "completed"

    _dbos_app = DbosApp(order_saga, participants)
    return _dbos_app


class DbosSide:
    """DBOS launched on its own PostgreSQL system database, running ``order_saga``."""

    def __init__(self, url: str, pool_size: int) -> None:
        from dbos import DBOS, DBOSConfig

        self.app = _dbos_order_saga()
        self.app.participants.fail_rate = 0.0
        config: DBOSConfig = {
            "name": "sagas-bench",
            "system_database_url": url,
            "sys_db_pool_size": pool_size,
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()
        self.workflows = 0

    def close(self) -> None:
        from dbos import DBOS

        DBOS.destroy()

    def _run(self, order: Event) -> tuple[str, float]:
        from dbos import SetWorkflowID

        data = order.data
        order_id = str(data["orderId"])
        begun = time.perf_counter()
        with SetWorkflowID(order_id):
            status = self.app.workflow(order_id, data["items"], data["amount"], data["address"])
        return status, time.perf_counter() - begun

    def warm_up(self, sagas: int) -> None:
        for event in order_events(sagas, "warm", SystemClock().now()):
            self._run(event)
        self.workflows += sagas

    def scenario(
        self,
        scenario: str,
        sagas: int,
        concurrency: int,
        prefix: str,
        counter: WorkCounter,
        db: str,
    ) -> Figures:
        """``concurrency`` threads calling the workflow back to back (0: the main thread)."""
        events = order_events(sagas, prefix, SystemClock().now())
        upcoming = iter(events)
        take = threading.Lock()
        latencies: list[float] = []
        statuses: Counter[str] = Counter()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                while not errors:
                    with take:
                        event = next(upcoming, None)
                    if event is None:
                        return
                    status, latency = self._run(event)
                    with take:
                        statuses[status] += 1
                    latencies.append(latency)
            except BaseException as exc:
                errors.append(exc)

        before_calls = self.app.participants.calls()
        before_work = counter.snapshot(db)
        started = time.perf_counter()
        if concurrency == 0:
            run()
        else:
            threads = [threading.Thread(target=run, daemon=True) for _ in range(concurrency)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        seconds = time.perf_counter() - started
        work = counter.snapshot(db).minus(before_work)
        if errors:
            raise SystemExit(f"DBOS, {scenario}: {errors[0]!r}")
        self.workflows += sagas
        side = "DBOS, main thread" if concurrency == 0 else "DBOS, threads"
        steps = sagas + self.app.participants.calls() - before_calls
        return Figures(side, scenario, sagas, steps, seconds, tuple(latencies), statuses, work)

    def persisted(self, url: str) -> str:
        with psycopg.connect(url) as conn:
            statuses = conn.execute(
                "SELECT status, count(*) FROM dbos.workflow_status GROUP BY status ORDER BY status"
            ).fetchall()
            outputs = conn.execute("SELECT count(*) FROM dbos.operation_outputs").fetchone()
        stored = sum(n for _, n in statuses)
        if stored != self.workflows:
            raise SystemExit(f"DBOS stored {stored} workflows of {self.workflows} run")
        listed = ", ".join(f"{n:,} {status}" for status, n in statuses)
        return (
            f"dbos.workflow_status: {listed}; dbos.operation_outputs: "
            f"{outputs[0] if outputs else 0:,} rows (step calls made: "
            f"{self.app.participants.calls():,})"
        )


# -- the program ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.postgres_vs_dbos",
        description="The order saga on PostgreSQL: this engine vs DBOS Transact, same run.",
    )
    parser.add_argument("--sagas", type=int, default=2000, help="sagas per concurrent scenario")
    parser.add_argument("--sequential", type=int, default=300, help="sagas run sequentially")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[8, 32], help="sagas in flight (C)"
    )
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.1,
        help="fail rate of the extra line at the first C (0: leave the line out)",
    )
    parser.add_argument(
        "--engine-modes",
        nargs="+",
        choices=("driver", "threads"),
        default=["driver", "threads"],
        help="how the engine keeps C sagas in flight",
    )
    parser.add_argument("--skip-dbos", action="store_true", help="run the engine side only")
    parser.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        help="PostgreSQL server URL; its database is ignored (env SAGAS_BENCH_POSTGRES)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="engine events per round"
    )
    parser.add_argument("--raw-rows", type=int, default=5000, help="rows of each raw loop")
    parser.add_argument("--warm-up", type=int, default=50, help="unmeasured sagas per side")
    parser.add_argument("--keep", action="store_true", help="keep the databases at the end")
    return parser


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


HEADER = (
    f"{'side':<18} {'scenario':<26} {'sagas':>6} {'seconds':>8} {'sagas/s':>8} "
    f"{'steps/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'÷ DBOS':>7} {'transitions/s':>13} "
    f"{'÷ raw':>6}"
)


def _row(figure: Figures, dbos: Figures | None, raw: float) -> str:
    ratio = f"{figure.sagas_per_second / dbos.sagas_per_second:>7.2f}" if dbos else f"{'':>7}"
    if figure.transitions is None:
        transitions = f"{'':>13} {'':>6}"
    else:
        per_second = figure.transitions / figure.seconds
        transitions = f"{per_second:>13,.0f} {per_second / raw:>6.2f}"
    return (
        f"{figure.side:<18} {figure.scenario:<26} {figure.sagas:>6} {figure.seconds:>8.2f} "
        f"{figure.sagas_per_second:>8,.1f} {figure.steps_per_second:>8,.1f} "
        f"{figure.percentile(50):>8.2f} {figure.percentile(99):>8.2f} {ratio} {transitions}"
    )


def _report(figures: list[Figures], raw_before: float, raw_after: float, grouped: float) -> None:
    raw = (raw_before + raw_after) / 2
    dbos = {f.scenario: f for f in figures if f.side.startswith("DBOS")}
    print()
    print(HEADER)
    print("-" * len(HEADER))
    print(
        f"{'raw INSERT+COMMIT':<18} {'1 row per commit (mean)':<26} {'':>6} {'':>8} {'':>8} "
        f"{'':>8} {'':>8} {'':>8} {'':>7} {raw:>13,.0f} {1:>6.2f}"
    )
    print(
        f"{'raw INSERT+COMMIT':<18} {'batch rows per commit':<26} {'':>6} {'':>8} {'':>8} "
        f"{'':>8} {'':>8} {'':>8} {'':>7} {grouped:>13,.0f} {grouped / raw:>6.2f}"
    )
    for figure in figures:
        print(
            _row(figure, None if figure.side.startswith("DBOS") else dbos.get(figure.scenario), raw)
        )
    print()
    print("database work per saga (client side: statements, commits, connection checkouts)")
    for figure in figures:
        work, n = figure.work, figure.sagas
        outcome = ", ".join(
            f"{count} {status}" for status, count in sorted(figure.statuses.items())
        )
        transitions = (
            "" if figure.transitions is None else f", {figure.transitions / n:.2f} transitions"
        )
        print(
            f"  {figure.side + ', ' + figure.scenario + ':':<48} {work.statements / n:6.1f} "
            f"statements, {work.commits / n:5.2f} commits, {work.checkouts / n:5.1f} checkouts"
            f"{transitions}; {figure.steps / n:.2f} steps/saga; {outcome}"
        )
    if dbos:
        print()
        for figure in figures:
            other = dbos.get(figure.scenario)
            if other is None or figure.side.startswith("DBOS"):
                continue
            ratio = figure.sagas_per_second / other.sagas_per_second
            verdict = "met" if ratio >= TARGET_RATIO else "not met"
            print(
                f"{figure.side}, {figure.scenario}: {ratio:.2f} × DBOS "
                f"(target ×{TARGET_RATIO:.0f}: {verdict})"
            )
    print(f"\nFor orientation: {DBOS_REFERENCE}")
    print(
        f"raw single-row INSERT + COMMIT: before {raw_before:,.0f}, after {raw_after:,.0f} rows/s"
    )


def run(args: argparse.Namespace) -> list[Figures]:
    """All the measurements; prints as it goes and at the end. Returns every side's figures."""
    server = args.server
    with_dbos = not args.skip_dbos
    if with_dbos and not dbos_available():
        raise SystemExit(
            "dbos is not installed (pip install 'sagas-engine[bench]'), or --skip-dbos"
        )
    tag = os.getpid()
    names = {side: f"sagas_bench_{side}_{tag}" for side in ("raw", "engine", "dbos")}
    if not with_dbos:
        names.pop("dbos")
    print(f"{server_settings(server)} at {server}; Python {sys.version.split()[0]}")
    versions = f"psycopg {psycopg.__version__}"
    if with_dbos:
        versions += f", DBOS Transact {dbos_version()}"
    print(f"{versions}; engine batch_size={args.batch_size}, concurrency=1; {_load()}")
    print(f"databases: {', '.join(names.values())}")
    urls = {side: fresh_database(server, name) for side, name in names.items()}
    definition = load_definition(ORDER_DEFINITION)
    figures: list[Figures] = []
    dbos: DbosSide | None = None
    engine: EngineSide | None = None
    try:
        with WorkCounter().installed() as counter:
            raw_before = raw_commits(urls["raw"], args.raw_rows)
            print(f"raw single-row INSERT + COMMIT (before): {raw_before:,.0f} rows/s")

            engine = EngineSide(
                urls["engine"], definition, fail_rate=0.0, batch_size=args.batch_size
            )
            engine.warm_up(args.warm_up)
            if with_dbos:
                dbos = DbosSide(urls["dbos"], pool_size=max(20, max(args.concurrency) + 8))
                dbos.warm_up(args.warm_up)
            edb, ddb = names["engine"], names.get("dbos", "")

            def done(figure: Figures) -> None:
                figures.append(figure)
                print(
                    f"  {figure.side}, {figure.scenario}: {figure.sagas_per_second:,.1f} sagas/s, "
                    f"p50 {figure.percentile(50):.2f} ms"
                )

            done(engine.sequential("sequential", args.sequential, counter, edb))
            if dbos:
                done(dbos.scenario("sequential", args.sequential, 0, "seq", counter, ddb))
            for c in args.concurrency:
                scenario = f"concurrency {c}"
                if "driver" in args.engine_modes:
                    done(engine.driver(scenario, args.sagas, c, f"d{c}", counter, edb))
                if "threads" in args.engine_modes:
                    done(engine.threads(scenario, args.sagas, c, f"t{c}", counter, edb))
                if dbos:
                    done(dbos.scenario(scenario, args.sagas, c, f"c{c}", counter, ddb))
            engine_rows = engine.persisted(urls["engine"])
            engine.close()
            engine = None

            if args.fail_rate > 0:
                c = args.concurrency[0]
                scenario = f"concurrency {c}, fail {args.fail_rate:.1f}"
                engine = EngineSide(
                    urls["engine"], definition, fail_rate=args.fail_rate, batch_size=args.batch_size
                )
                done(engine.driver(scenario, args.sagas, c, f"f{c}", counter, edb))
                engine_rows = engine.persisted(urls["engine"])
                engine.close()
                engine = None
                if dbos:
                    dbos.app.participants.fail_rate = args.fail_rate
                    done(dbos.scenario(scenario, args.sagas, c, f"f{c}", counter, ddb))
                    dbos.app.participants.fail_rate = 0.0

            dbos_rows = dbos.persisted(urls["dbos"]) if dbos else ""
            raw_after = raw_commits(urls["raw"], args.raw_rows)
            print(f"raw single-row INSERT + COMMIT (after): {raw_after:,.0f} rows/s")
            grouped = raw_commits(urls["raw"], args.raw_rows, args.batch_size)
    finally:
        if engine is not None:
            engine.close()
        if dbos is not None:
            dbos.close()
        if not args.keep:
            for name in names.values():
                drop_database(server, name)
    _report(figures, raw_before, raw_after, grouped)
    print(f"\npersisted, engine: {engine_rows}")
    if dbos_rows:
        print(f"persisted, DBOS: {dbos_rows}")
    print(f"after the run: {_load()}")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; ``argv`` as on the command line (without the program name)."""
    args = _parser().parse_args(argv)
    sizes = (args.sagas, args.sequential, args.raw_rows, args.batch_size, *args.concurrency)
    if min(sizes) < 1 or args.warm_up < 0 or not 0 <= args.fail_rate < 1:
        raise SystemExit("sizes and --concurrency must be >= 1, --fail-rate in [0, 1)")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
