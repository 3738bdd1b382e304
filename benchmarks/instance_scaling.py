"""Per-event cost with few vs many saga instances already stored: the ratio must stay near 1.

Two SQLite files are preloaded with ``--small`` and ``--large`` finished order sagas, then the
same workload (``--sagas`` new order sagas, all queued at once, fail rate 0.2, run until idle)
runs on each, ``--rounds`` times alternately (small, large, small, large, ...). The figure is
the cost per decision (µs per log entry written) and the ratio large ÷ small of the best round
of each.

Preloading does not run sagas through the engine: one real order saga is run to completion on
a scratch file, its stored rows become templates, and copies with fresh saga ids (computed with
``saga_id_for``, as the engine does), order ids and event ids are bulk-inserted with
``sqlite3.executemany`` in large transactions. Each preloaded instance gets one instance row,
one event log row and one inbox row (unique ``event_id``), so every index the engine reads or
writes on its way has the size it would have (a finished saga leaves nothing in the outbox).

Run from the repository root::

    .venv/bin/python -m benchmarks.instance_scaling --small 1000 --large 1000000 --sagas 2000

The preloaded files are removed at the end unless ``--reuse`` is given; with ``--reuse`` they
are kept and used again by the next run with ``--reuse`` (a marker file beside each database
records what was preloaded).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.sqlite_throughput import (
    DEFAULT_BATCH_SIZE,
    ORDER_DEFINITION,
    Figures,
    OrderRun,
    fresh_database,
)
from sagas import SagaDefinition, load_definition
from sagas.engine.decide import saga_id_for
from sagas.store.sql import SQLITE_PRAGMAS, SQLStore

__all__ = ["Template", "main", "preload", "template"]

TEMPLATE_PREFIX = "tplorder"
"""Order ids of the template saga: ``tplorder-000000`` (unique enough to replace as text)."""
CHUNK = 50_000
"""Instances per preload transaction."""
PROGRESS_EVERY = 200_000
"""Print the preload's progress about this often (instances)."""
PRELOAD_FORMAT = 1
"""Bumped when the preloaded content changes, so ``--reuse`` does not use stale files."""
TABLES = ("saga_instances", "saga_event_log", "saga_inbox")
Row = tuple[object, ...]
AUTOINCREMENT = {"saga_event_log": "position", "saga_inbox": "position"}


@dataclass(frozen=True)
class Template:
    """The stored rows of one finished order saga, and the strings that make them its own."""

    saga_name: str
    saga_id: str
    order_id: str
    event_id: str
    columns: dict[str, tuple[str, ...]]
    rows: dict[str, list[Row]]
    revision: str | None

    def fingerprint(self) -> str:
        """What preloaded files made from this template depend on: the schema revision, the
        columns, and the shape (not the values) of the stored state."""
        state = json.loads(
            str(self.rows["saga_instances"][0][self.columns["saga_instances"].index("state")])
        )
        body = json.dumps([self.revision, self.columns, _shape(state)], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def _shape(value: object) -> object:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__


def template(directory: Path, definition: SagaDefinition) -> Template:
    """Run one order saga (no failures) to completion and read back what it stored."""
    path = fresh_database(directory, "scaling-template")
    run = OrderRun(path, fail_rate=0.0, batch_size=DEFAULT_BATCH_SIZE, definition=definition)
    try:
        run.concurrent("template", 1, TEMPLATE_PREFIX)
        revision = run.store.current_revision()
    finally:
        run.close()
    order_id = f"{TEMPLATE_PREFIX}-000000"
    saga_id = saga_id_for(definition.name, order_id)
    columns: dict[str, tuple[str, ...]] = {}
    rows: dict[str, list[Row]] = {}
    conn = sqlite3.connect(path)
    try:
        for table in TABLES:
            names = tuple(
                row[1]
                for row in conn.execute(f"PRAGMA table_info({table})")
                if row[1] != AUTOINCREMENT.get(table)
            )
            columns[table] = names
            quoted = ", ".join(f'"{name}"' for name in names)
            rows[table] = list(conn.execute(f"SELECT {quoted} FROM {table}"))
        (event_id,) = conn.execute(
            "SELECT event_id FROM saga_inbox WHERE event_type = 'OrderCreated'"
        ).fetchone()
    finally:
        conn.close()
    for table in TABLES:
        if not rows[table]:
            raise SystemExit(f"template saga wrote nothing to {table}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Template(definition.name, saga_id, order_id, event_id, columns, rows, revision)


Ids = tuple[int, str, str, str]
"""A preloaded instance's number, saga id, order id and OrderCreated event id."""


def _ids(saga_name: str, start: int, stop: int) -> list[Ids]:
    ids = []
    for n in range(start, stop):
        order_id = f"preload-{n:08d}"
        ids.append((n, saga_id_for(saga_name, order_id), order_id, os.urandom(16).hex()))
    return ids


def _copy_statements(template: Template) -> list[tuple[str, Row]]:
    """``INSERT ... SELECT`` statements (with their parameters) that copy each template row
    once for every id in ``preload_ids`` whose number picks that row, its ids replaced."""
    statements: list[tuple[str, Row]] = []
    tokens = (template.saga_id, template.order_id, template.event_id)
    replaced = "replace(replace(replace(?, ?, saga_id), ?, order_id), ?, event_id)"
    for table in TABLES:
        variants = template.rows[table]
        names = ", ".join(f'"{column}"' for column in template.columns[table])
        for which, row in enumerate(variants):
            expressions: list[str] = []
            params: list[object] = []
            for value in row:
                if isinstance(value, str) and any(token in value for token in tokens):
                    expressions.append(replaced)
                    params += [value, template.saga_id, template.order_id, template.event_id]
                else:
                    expressions.append("?")
                    params.append(value)
            sql = (
                f"INSERT INTO {table} ({names}) SELECT {', '.join(expressions)} FROM preload_ids"
                f" WHERE n % {len(variants)} = {which} ORDER BY n"
            )
            statements.append((sql, tuple(params)))
    return statements


def preload(path: Path, template: Template, instances: int, *, quiet: bool = False) -> float:
    """Create the schema at ``path`` and bulk-insert ``instances`` finished instances (and as
    many log and inbox rows); returns the seconds it took."""
    started = time.perf_counter()
    SQLStore(str(path)).close()  # the schema, by the engine's own migrations
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # Fast and unsafe while loading (a crash here only loses the benchmark's file).
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        conn.execute(
            "CREATE TEMP TABLE preload_ids"
            " (n INTEGER PRIMARY KEY, saga_id TEXT, order_id TEXT, event_id TEXT)"
        )
        statements = _copy_statements(template)
        for start in range(0, instances, CHUNK):
            stop = min(start + CHUNK, instances)
            conn.execute("BEGIN")
            conn.execute("DELETE FROM preload_ids")
            conn.executemany(
                "INSERT INTO preload_ids VALUES (?, ?, ?, ?)",
                _ids(template.saga_name, start, stop),
            )
            for sql, params in statements:
                conn.execute(sql, params)
            conn.execute("COMMIT")
            if not quiet and (stop % PROGRESS_EVERY < CHUNK or stop == instances):
                rate = stop / (time.perf_counter() - started)
                print(f"  preloaded {stop:,} of {instances:,} instances ({rate:,.0f}/s)")
        conn.execute("DROP TABLE preload_ids")
        for pragma in SQLITE_PRAGMAS:  # back to the engine's settings (WAL is kept in the file)
            conn.execute(f"PRAGMA {pragma}")
    finally:
        conn.close()
    return time.perf_counter() - started


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".preloaded.json")


def _preloaded(path: Path, template: Template, instances: int, reuse: bool) -> None:
    """Make sure ``path`` holds ``instances`` preloaded instances (reusing it if allowed)."""
    marker = _marker(path)
    expected = {
        "format": PRELOAD_FORMAT,
        "instances": instances,
        "template": template.fingerprint(),
    }
    if reuse and path.exists() and marker.exists():
        if json.loads(marker.read_text()) == expected:
            print(f"reusing {path} ({instances:,} preloaded instances)")
            return
        print(f"not reusing {path}: made by another schema, state format or preload version")
    marker.unlink(missing_ok=True)
    fresh_database(path.parent, path.stem)
    print(f"preloading {instances:,} instances into {path}")
    seconds = preload(path, template, instances)
    size = path.stat().st_size / 2**20
    print(f"  done in {seconds:.1f} s ({instances / seconds:,.0f} instances/s), {size:,.0f} MiB")
    marker.write_text(json.dumps(expected))


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", ".preloaded.json"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instance_scaling",
        description="Per-event cost with few vs many saga instances already stored.",
    )
    parser.add_argument("--small", type=int, default=1000, help="instances in the small file")
    parser.add_argument("--large", type=int, default=1_000_000, help="instances in the large file")
    parser.add_argument("--sagas", type=int, default=2000, help="new sagas per workload")
    parser.add_argument("--rounds", type=int, default=3, help="workloads per file, alternated")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="events decided per round (one transaction); default: the engine's",
    )
    parser.add_argument(
        "--db-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "sagas-bench",
        help="where the SQLite files go (default: %(default)s)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use preloaded files left by an earlier --reuse run, and keep them afterwards",
    )
    return parser


def run(args: argparse.Namespace) -> tuple[Figures, Figures]:
    """Preload, measure, print; returns the best figures of the small and the large file."""
    directory: Path = args.db_dir
    definition = load_definition(ORDER_DEFINITION)
    one, five, _ = os.getloadavg()
    print(f"SQLite {sqlite3.sqlite_version}; load average {one:.2f} (1 min), {five:.2f} (5 min)")
    sample = template(directory, definition)
    paths = {
        size: directory / f"scaling-{size}.db" for size in dict.fromkeys((args.small, args.large))
    }
    for size, path in paths.items():
        _preloaded(path, sample, size, args.reuse)

    # Warm-up (imports, compiled statements, validators) on a scratch file, not measured.
    warm = OrderRun(
        fresh_database(directory, "scaling-warmup"),
        fail_rate=0.2,
        batch_size=args.batch_size,
        definition=definition,
    )
    warm.concurrent("warm-up", min(args.sagas, 200), "warm")
    warm.close()
    _remove(directory / "scaling-warmup.db")

    results: dict[int, list[Figures]] = {size: [] for size in (args.small, args.large)}
    # Order ids are per round, not per file: both files get exactly the same workload.
    run_id = uuid.uuid4().hex[:6]
    for round_ in range(args.rounds):
        for size in (args.small, args.large):
            engine = OrderRun(
                paths[size], fail_rate=0.2, batch_size=args.batch_size, definition=definition
            )
            try:
                label = f"{size:,} stored, round {round_ + 1}"
                figure = engine.concurrent(label, args.sagas, f"{run_id}-r{round_}")
            finally:
                engine.close()
            results[size].append(figure)
            print(
                f"  {label}: {figure.sagas_per_second:,.0f} sagas/s, "
                f"{figure.micros_per_transition:,.1f} µs per event"
            )

    best = {size: min(f.micros_per_transition for f in runs) for size, runs in results.items()}
    small, large = best[args.small], best[args.large]
    print()
    print(f"{'instances stored':>16} {'sagas':>6} {'events':>7} {'µs/event (best)':>16}")
    for size in (args.small, args.large):
        figure = min(results[size], key=lambda f: f.micros_per_transition)
        print(f"{size:>16,} {figure.sagas:>6} {figure.transitions:>7} {best[size]:>16,.1f}")
    print(f"per-event cost ratio large/small: {large / small:.2f} (should stay near 1)")
    if not args.reuse:
        for path in paths.values():
            _remove(path)
    else:
        print(f"kept for --reuse: {', '.join(str(p) for p in paths.values())}")
    return (
        min(results[args.small], key=lambda f: f.micros_per_transition),
        min(results[args.large], key=lambda f: f.micros_per_transition),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; ``argv`` as on the command line (without the program name)."""
    args = _parser().parse_args(argv)
    if min(args.small, args.large, args.sagas, args.rounds, args.batch_size) < 1:
        raise SystemExit("--small, --large, --sagas, --rounds and --batch-size must be >= 1")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
