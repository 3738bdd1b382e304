"""Order sagas per second and saga transitions per second on SQLite, against the raw limit.

Every measurement runs on a fresh SQLite file:

* raw limit: a loop of single-row ``INSERT`` + ``COMMIT`` (``BEGIN IMMEDIATE`` per row) into a
  table shaped like an event log row, with the engine's own pragmas (``SQLITE_PRAGMAS``);
  rows/s is the most commits per second this database gives one writer on this machine. It is
  measured before and after the engine scenarios, and the ratios use the mean of the two;
* concurrent: all the ``OrderCreated`` events queued at once, then ``run_until_idle()``, with
  fail rate 0 and 0.2 (compensations) and the demo's simulated participants;
* sequential: one saga at a time (publish one, run until idle, the next one), with the
  per-saga latency.

A transition is one decision written to the event log (one ``saga_event_log`` row). The ratio
column is transitions/s ÷ raw single-row commits/s: above 1 means the engine's group commit
writes more decisions per second than a loop of one commit per row could.

Run from the repository root::

    .venv/bin/python -m benchmarks.sqlite_throughput --sagas 5000
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from sagas import SagaDefinition, load_definition
from sagas.clock import SystemClock
from sagas.demo.participants import Participants
from sagas.events import Event
from sagas.runtime.engine import Engine
from sagas.store import schema
from sagas.store.sql import SQLITE_PRAGMAS, SQLStore

__all__ = [
    "DBOS_REFERENCE",
    "Figures",
    "OrderRun",
    "decisions_since",
    "fresh_database",
    "main",
    "order_events",
    "raw_commits",
]

ROOT = Path(__file__).resolve().parent.parent
ORDER_DEFINITION = ROOT / "definitions" / "order_fulfillment.yaml"
DEFAULT_BATCH_SIZE: int = inspect.signature(Engine.__init__).parameters["batch_size"].default
DBOS_REFERENCE = (
    "DBOS Transact 3.4 on SQLite here: ~72 sagas/s (issue's figure, not measured in this run)"
)
HEADER = (
    f"{'scenario':<40} {'sagas':>6} {'transitions':>11} {'seconds':>8} "
    f"{'sagas/s':>9} {'transitions/s':>13} {'÷ raw':>7}"
)


@dataclass(frozen=True)
class Figures:
    """What one scenario did and how long it took (``perf_counter`` seconds)."""

    scenario: str
    sagas: int
    transitions: int
    seconds: float
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: tuple[float, ...] = ()

    @property
    def sagas_per_second(self) -> float:
        return self.sagas / self.seconds

    @property
    def transitions_per_second(self) -> float:
        return self.transitions / self.seconds

    @property
    def micros_per_transition(self) -> float:
        return self.seconds / self.transitions * 1e6

    def row(self, raw_per_second: float) -> str:
        ratio = self.transitions_per_second / raw_per_second
        return (
            f"{self.scenario:<40} {self.sagas:>6} {self.transitions:>11} {self.seconds:>8.2f} "
            f"{self.sagas_per_second:>9,.0f} {self.transitions_per_second:>13,.0f} {ratio:>7.3g}"
        )


def fresh_database(directory: Path, name: str) -> Path:
    """The path ``directory/name.db``, with any earlier file of that name (and its WAL) gone."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.db"
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def order_events(count: int, prefix: str, at: datetime) -> list[Event]:
    """``count`` OrderCreated events with order ids ``prefix-000000``... (as in ``sagas demo``)."""
    return [
        Event.create(
            "OrderCreated",
            {
                "orderId": f"{prefix}-{n:06d}",
                "items": [{"sku": f"sku-{n % 17}", "quantity": 1 + n % 3}],
                "amount": round(10 + (n * 7.31) % 190, 2),
                "address": f"{n} Demo Street",
            },
            at=at,
        )
        for n in range(count)
    ]


def decisions_since(store: SQLStore, position: int = 0) -> int:
    """How many log entries (decisions) were written after log ``position``."""
    log = schema.event_log
    query = select(func.count()).select_from(log).where(log.c.position > position)
    with store.engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def last_position(store: SQLStore) -> int:
    """The position of the newest log entry (0 when the log is empty)."""
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.max(schema.event_log.c.position))) or 0)


class OrderRun:
    """An engine on ``path`` running the shipped order saga with the demo's participants."""

    def __init__(
        self,
        path: Path,
        *,
        fail_rate: float,
        batch_size: int,
        definition: SagaDefinition | None = None,
        seed: int = 0,
    ) -> None:
        self.store = SQLStore(str(path))
        self.engine = Engine(self.store, clock=SystemClock(), batch_size=batch_size)
        participants = Participants(fail_rate=fail_rate, seed=seed)
        participants.subscribe(self.engine.bus)
        participants.register(self.engine.handlers)
        self.engine.register(definition or load_definition(ORDER_DEFINITION))
        self.finished: Counter[str] = Counter()
        self.engine.on_finish.append(lambda state: self.finished.update([state.status.value]))

    def close(self) -> None:
        self.engine.close()

    def concurrent(self, scenario: str, sagas: int, prefix: str) -> Figures:
        """Queue ``sagas`` orders at once, then time ``run_until_idle``."""
        before_finished = sum(self.finished.values())
        before = last_position(self.store)
        now = self.engine.clock.now()
        self.store.enqueue(order_events(sagas, prefix, now), received_at=now)
        started = time.perf_counter()
        self.engine.run_until_idle()
        seconds = time.perf_counter() - started
        done = sum(self.finished.values()) - before_finished
        if done != sagas:
            raise SystemExit(f"{scenario}: only {done} of {sagas} sagas finished")
        transitions = decisions_since(self.store, before)
        return Figures(scenario, sagas, transitions, seconds, Counter(self.finished))

    def sequential(self, scenario: str, sagas: int, prefix: str) -> Figures:
        """Publish one order, run until idle, then the next; time each saga and the whole."""
        before = last_position(self.store)
        events = order_events(sagas, prefix, self.engine.clock.now())
        latencies: list[float] = []
        started = time.perf_counter()
        for count, event in enumerate(events, 1):
            begun = time.perf_counter()
            self.engine.publish(event)
            self.engine.run_until_idle()
            latencies.append(time.perf_counter() - begun)
            if sum(self.finished.values()) != count:
                raise SystemExit(f"{scenario}: saga {event.data['orderId']} did not finish")
        seconds = time.perf_counter() - started
        transitions = decisions_since(self.store, before)
        return Figures(
            scenario, sagas, transitions, seconds, Counter(self.finished), tuple(latencies)
        )


# -- the raw limit --------------------------------------------------------------------------


def _log_like_row(n: int) -> tuple[str, int, str, str, str, str, str, int, str]:
    """Column values about as large as an event log row's (event ~370 B, effects ~550 B)."""
    event = Event.create(
        "InventoryReserved",
        {"reservationId": f"res-{n:08d}", "orderId": f"raw-{n:06d}"},
        at=SystemClock().now(),
        saga_id=str(uuid.uuid4()),
        correlation_id=f"raw-{n:06d}",
        causation_id=uuid.uuid4().hex,
    )
    effects = json.dumps(
        [
            {"kind": "invoke", "handler": "take_payment", "step": "take_payment", "attempt": 1},
            {"kind": "schedule", "timerId": f"{event.saga_id}/take_payment/1/timeout"},
            {"kind": "cancel", "timerId": f"{event.saga_id}/reserve_inventory/1/timeout"},
            {"kind": "note", "text": "x" * 240},
        ]
    )
    note = "reserve_inventory: succeeded; take_payment: handler take_payment (attempt 1)"
    return (
        event.saga_id or "",
        2,
        event.event_id,
        event.event_type,
        event.to_json(),
        note,
        effects,
        0,
        event.timestamp.isoformat(),
    )


@contextmanager
def _raw_connection(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        for pragma in SQLITE_PRAGMAS:
            conn.execute(f"PRAGMA {pragma}")
        conn.execute(
            "CREATE TABLE raw_log (position INTEGER PRIMARY KEY, saga_id VARCHAR(64) NOT NULL,"
            " seq INTEGER NOT NULL, event_id VARCHAR(200) NOT NULL,"
            " event_type VARCHAR(200) NOT NULL, event TEXT NOT NULL, note TEXT NOT NULL,"
            " effects TEXT NOT NULL, ignored BOOLEAN NOT NULL, recorded_at DATETIME NOT NULL,"
            " UNIQUE (saga_id, seq))"
        )
        yield conn
    finally:
        conn.close()


_RAW_INSERT = (
    "INSERT INTO raw_log (saga_id, seq, event_id, event_type, event, note, effects, ignored,"
    " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def raw_commits(path: Path, rows: int, per_commit: int = 1) -> float:
    """Rows/s of a loop of ``BEGIN IMMEDIATE``, ``per_commit`` single-row INSERTs, ``COMMIT``
    on a fresh file at ``path`` with the engine's pragmas."""
    values = [_log_like_row(n) for n in range(rows)]
    with _raw_connection(path) as conn:
        started = time.perf_counter()
        for start in range(0, rows, per_commit):
            conn.execute("BEGIN IMMEDIATE")
            for row in values[start : start + per_commit]:
                conn.execute(_RAW_INSERT, row)
            conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        stored = conn.execute("SELECT COUNT(*) FROM raw_log").fetchone()[0]
    if stored != rows:
        raise SystemExit(f"raw loop stored {stored} of {rows} rows")
    return rows / seconds


# -- the program ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sqlite_throughput",
        description="Order sagas/s and transitions/s on SQLite vs the raw commit limit.",
    )
    parser.add_argument("--sagas", type=int, default=5000, help="sagas per concurrent run")
    parser.add_argument(
        "--db-dir",
        type=Path,
        default=None,
        help="where the SQLite files go (default: a temporary directory, removed at the end)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="events decided per round (one transaction); default: the engine's",
    )
    parser.add_argument("--raw-rows", type=int, default=20_000, help="rows of each raw commit loop")
    parser.add_argument(
        "--sequential", type=int, default=1000, help="at most this many sequential sagas"
    )
    return parser


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def _percentile(values: Sequence[float], q: int) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run(args: argparse.Namespace, directory: Path) -> list[Figures]:
    """All the measurements; prints as it goes and returns the engine figures."""
    sagas, batch = args.sagas, args.batch_size
    sequential = min(sagas, args.sequential)
    definition = load_definition(ORDER_DEFINITION)
    print(f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}; {_load()}")
    print(f"pragmas: {', '.join(SQLITE_PRAGMAS)}; engine batch_size={batch}")
    print(f"files in {directory}")

    # Warm-up (imports, compiled statements, pydantic validators), not measured.
    warm = OrderRun(fresh_database(directory, "warmup"), fail_rate=0.2, batch_size=batch)
    warm.concurrent("warm-up", min(sagas, 200), "warm")
    warm.close()

    raw_before = raw_commits(fresh_database(directory, "raw-before"), args.raw_rows)
    print(f"raw single-row INSERT + COMMIT (before): {raw_before:,.0f} rows/s")

    figures: list[Figures] = []
    for fail_rate in (0.0, 0.2):
        name = f"concurrent-fail{int(fail_rate * 100)}"
        engine = OrderRun(
            fresh_database(directory, name),
            fail_rate=fail_rate,
            batch_size=batch,
            definition=definition,
        )
        try:
            label = f"concurrent, fail rate {fail_rate:.1f}"
            figures.append(engine.concurrent(label, sagas, "c"))
        finally:
            engine.close()
        print(f"  {figures[-1].scenario}: {figures[-1].sagas_per_second:,.0f} sagas/s")

    engine = OrderRun(
        fresh_database(directory, "sequential"),
        fail_rate=0.0,
        batch_size=batch,
        definition=definition,
    )
    try:
        figures.append(engine.sequential("sequential, fail rate 0.0", sequential, "s"))
    finally:
        engine.close()
    print(f"  {figures[-1].scenario}: {figures[-1].sagas_per_second:,.0f} sagas/s")

    raw_after = raw_commits(fresh_database(directory, "raw-after"), args.raw_rows)
    grouped = raw_commits(fresh_database(directory, "raw-grouped"), args.raw_rows, batch)
    print(f"raw single-row INSERT + COMMIT (after):  {raw_after:,.0f} rows/s")
    raw = (raw_before + raw_after) / 2

    print()
    print(HEADER)
    print("-" * len(HEADER))
    print(
        f"{'raw INSERT + COMMIT per row (mean)':<40} {'':>6} {args.raw_rows:>11} {'':>8} "
        f"{'':>9} {raw:>13,.0f} {1:>7.2f}"
    )
    print(
        f"{f'raw, {batch} INSERTs per COMMIT (reference)':<40} {'':>6} {args.raw_rows:>11} "
        f"{'':>8} {'':>9} {grouped:>13,.0f} {grouped / raw:>7.2f}"
    )
    for figure in figures:
        print(figure.row(raw))
    print()
    for figure in figures:
        outcome = ", ".join(f"{n} {status}" for status, n in sorted(figure.statuses.items()))
        print(
            f"{figure.scenario}: {figure.transitions / figure.sagas:.2f} transitions/saga, "
            f"{figure.micros_per_transition:,.0f} µs/transition; {outcome}"
        )
        if figure.latencies:
            p50, p99 = _percentile(figure.latencies, 50), _percentile(figure.latencies, 99)
            print(f"  per-saga latency: p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms")
    print(f"\nFor reference: {DBOS_REFERENCE}")
    print(f"after the run: {_load()}")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; ``argv`` as on the command line (without the program name)."""
    args = _parser().parse_args(argv)
    if args.sagas < 1 or args.raw_rows < 1 or args.batch_size < 1 or args.sequential < 1:
        raise SystemExit("--sagas, --raw-rows, --batch-size and --sequential must be >= 1")
    if args.db_dir is not None:
        run(args, args.db_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="sagas-bench-") as directory:
            run(args, Path(directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
