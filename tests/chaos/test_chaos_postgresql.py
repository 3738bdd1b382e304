"""Chaos on PostgreSQL: several worker processes, killed with SIGKILL at random moments.

Four ``sagas worker`` processes (``--concurrency 4 --lease 2s``) run 2,000 order sagas on a
PostgreSQL database of this test's own; 10% of the payments are declined. While the orders come
in and are worked on, a chaos loop kills a random worker with SIGKILL (8 to 15 times; never
more than two workers down at once, and each kill once what the last one left behind was
carried out) and starts it again. At the end:

* every saga is terminal: the orders whose payment is declined are compensated, the others
  completed, none failed;
* every compensation ran exactly once per compensated step, in reverse order of completion;
* no step was applied twice: the participants (``chaos_participants``) record every delivery
  and call, and apply each effect once per idempotency key; repeats are counted, effects must
  be exactly those of the steps that completed and of their compensations;
* every instance's log replays to its stored state;
* nothing is left over: no queued event, no outbox row, no timer, no dead letter.

The seed is printed; ``SAGAS_CHAOS_SEED=<seed>`` replays the same kill schedule (the moments
the workers reach are the operating system's to decide, so the same seed is a similar run, not
an identical one). The server is ``postgresql://postgres@127.0.0.1:5432/test`` (the maintenance
connection; ``SAGAS_TEST_POSTGRES_URL`` points elsewhere); the test creates a database of its
own there and drops it at the end (``SAGAS_CHAOS_KEEP_DB=1`` keeps it for a look).

The two tests at the end reproduce, each on its own, the engine bugs this test ran into.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from sagas import Engine, load_definition
from sagas.clock import SystemClock
from sagas.definitions.model import SagaDefinition
from sagas.engine.decide import decide, saga_id_for
from sagas.engine.state import InstanceStatus, SagaState, StepStatus
from sagas.store.records import LogEntry
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

# The runtime tests' checks (replay, compensation order) are reused, not copied: pytest puts
# only the folder of the tests it collects on sys.path, so that one is added here.
_RUNTIME_TESTS = str(Path(__file__).resolve().parents[1] / "runtime")
if _RUNTIME_TESTS not in sys.path:
    sys.path.insert(0, _RUNTIME_TESTS)

import chaos_participants  # noqa: E402
from chaos_participants import CREATE_TABLES, DATABASE_ENV, payment_fails  # noqa: E402
from runtime_checks import (  # noqa: E402
    ORDER_DEFINITION,
    assert_compensated_in_reverse,
    assert_replays,
    order_created,
)

ORDERS = 2000
WORKERS = 4
PUBLISH_BATCH = 100
PUBLISH_EVERY = 1.2
"""Seconds between two batches of ``OrderCreated``: orders keep coming for about 24 s, a
steady load during which the workers are killed."""
KILLS = (8, 15)
"""How many SIGKILLs a run does (a seeded draw in this range)."""
KILL_GAP = (0.4, 1.2)
"""Seconds between two kills, at least, and after the crew is complete again and what the last
kill left in the outbox was carried out (seeded draws in this range)."""
BUSY_VICTIMS = 0.75
"""How often the victim is picked among the workers busy carrying out effects, if any."""
MIN_UP = 2
"""Workers left working after a kill, at least. These limits keep every saga's waits well
below its steps' timeouts (10 s for the payment): a timed-out step is retried under a new
idempotency key, a second payment that no idempotency absorbs, and that is what timeouts are
for, not what this test is about."""
DECISIONS = 4 * ORDERS
"""Log entries of a run without repeats: every order saga takes four events to end."""
DEADLINE = 180.0
"""Seconds the whole run (kills included) may take before the test gives up."""

SAGA = "order_fulfillment"
STEPS = ("reserve_inventory", "take_payment", "ship")
HERE = Path(__file__).resolve().parent
NOISE = ("card declined", "Waker.wake", "sagas-next-timer")
"""Routine lines of the workers' output, left out of failure messages."""
POSTGRES_URL_ENV = "SAGAS_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
KEEP_ENV = "SAGAS_CHAOS_KEEP_DB"
"""Set it to keep the test's database for a look after the run (its URL is printed)."""


# -- the database -------------------------------------------------------------------------------


@pytest.fixture
def chaos_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test only (its ``postgresql://`` URL), with the
    participants' tables; dropped at the end, whatever is still connected to it."""
    maintenance = make_url(os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL)
    maintenance = maintenance.set(drivername="postgresql")
    name = f"sagas_chaos_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(
            maintenance.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        )
    except psycopg.Error as exc:
        where = maintenance.render_as_string(hide_password=True)
        pytest.fail(f"PostgreSQL at {where} cannot be used: {exc}", pytrace=False)
    url = maintenance.set(database=name).render_as_string(hide_password=False)
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                for statement in CREATE_TABLES:
                    conn.execute(statement)
            yield url
        finally:
            if os.environ.get(KEEP_ENV):
                print(f"kept the database: {url} ({KEEP_ENV} is set)")
            else:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                admin.execute(drop.format(sql.Identifier(name)))
    finally:
        admin.close()


# -- the workers --------------------------------------------------------------------------------


class Worker:
    """``sagas worker`` in a process of its own, with the chaos participants."""

    def __init__(self, number: int, folder: Path, database: str) -> None:
        self.number = number
        self.folder = folder
        self.database = database
        self.output = folder / f"worker-{number}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.started_at = 0  # where the output of the latest start begins
        self.ready_at = 0  # the latest start that got ready

    def start(self) -> None:
        command = [sys.executable, "-c", "from sagas.cli import main; main()", "worker"]
        command += ["--definitions", str(ORDER_DEFINITION), "--handlers", "chaos_participants"]
        command += ["--db", self.database, "--concurrency", "4", "--lease", "2s"]
        path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        env = os.environ | {"PYTHONPATH": path, DATABASE_ENV: self.database}
        with self.output.open("ab") as log:
            log.write(f"---- start {self.starts + 1}\n".encode())
            self.started_at = log.tell()
            self.process = subprocess.Popen(
                command, cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        """Whether the process got past its start-up (imports, migration, registration) and
        works: killing it then hits rounds and relays rather than imports."""
        if not self.running():
            return False
        if self.ready_at < self.starts:
            with self.output.open("rb") as log:
                log.seek(self.started_at)  # the output of this start only
                if b" worker on " in log.read():
                    self.ready_at = self.starts
        return self.ready_at == self.starts

    def stop(self, how: signal.Signals, timeout: float = 30) -> int | None:
        """Send ``how`` and wait for the process; returns its exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(how)
        return process.wait(timeout=timeout)

    def tail(self, lines: int = 25) -> str:
        """The end of the worker's output, without the routine lines (declined cards, timer
        wake-ups), for a failure message."""
        text = self.output.read_text(errors="replace") if self.output.exists() else ""
        kept = [line for line in text.splitlines() if not any(n in line for n in NOISE)]
        return f"== worker {self.number} ({self.output}):\n" + "\n".join(kept[-lines:])


@pytest.fixture
def workers(tmp_path: Path, chaos_database: str) -> Iterator[list[Worker]]:
    crew = [Worker(n, tmp_path, chaos_database) for n in range(1, WORKERS + 1)]
    try:
        yield crew
    finally:
        for worker in crew:  # never leave a process behind, whatever failed
            worker.stop(signal.SIGKILL)


# -- watching -----------------------------------------------------------------------------------


@dataclass
class Chaos:
    """The seeded kill schedule and what happened."""

    seed: int
    rng: random.Random = field(init=False)
    kills: list[str] = field(default_factory=list)
    during_work: int = 0
    """Kills that came while sagas were unfinished or effects pending."""
    restarts: dict[int, float] = field(default_factory=dict)  # worker number -> when
    targets: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        count = self.rng.randint(*KILLS)
        # Kill moments spread over the run by progress (log entries committed), so the kills
        # land in every phase: publishing, steps, compensations, the last stragglers.
        self.targets = sorted(int(self.rng.uniform(0.02, 0.85) * DECISIONS) for _ in range(count))


STALLS = """
    SELECT max(gap), count(*) FILTER (WHERE gap > 1.5)
    FROM (
        SELECT extract(epoch FROM recorded_at - lag(recorded_at) OVER (
            PARTITION BY saga_id ORDER BY seq)) AS gap
        FROM saga_event_log
    ) AS gaps
"""
"""The longest time an instance waited between two decisions (the payment step times out after
10 s), and how many decisions waited over 1.5 s: mostly effects a dead worker left, carried out
by another once the 2 s lease ran out."""

WORKING = "SELECT DISTINCT pid FROM chaos_calls WHERE at > clock_timestamp() - interval '0.3 s'"
"""The processes that called a participant in the last 0.3 s."""

LEFT_BEHIND = "SELECT count(*) FROM saga_outbox WHERE id <="
"""Outbox rows up to an id: what was in flight at a kill (taken-over rows keep their id)."""


def scalar(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def unfinished(store: SQLStore, conn: psycopg.Connection[Any]) -> dict[str, int]:
    """What is not done yet: instances not terminal (or not started), queued events, effects
    in the outbox. Empty when the run is over."""
    counts = store.count_instances()
    ended = sum(n for (_, status), n in counts.items() if status.terminal)
    left = {
        "not ended": ORDERS - ended,
        "queued": store.queue_depth(),
        "outbox": scalar(conn, "SELECT count(*) FROM saga_outbox"),
    }
    return {key: value for key, value in left.items() if value}


def some(found: Mapping[str, Any], shown: int = 5) -> str:
    """The first few entries of ``found``, one a line, for a failure message."""
    lines = [f"\n  {key}: {value}" for key, value in sorted(found.items())[:shown]]
    more = f"\n  … and {len(found) - shown} more" if len(found) > shown else ""
    return "".join(lines) + more


def fail(message: str, chaos: Chaos, workers: list[Worker]) -> None:
    tails = "\n".join(worker.tail() for worker in workers)
    pytest.fail(
        f"{message}\nseed {chaos.seed} (rerun with SAGAS_CHAOS_SEED={chaos.seed}); "
        f"kills: {'; '.join(chaos.kills) or 'none'}\n{tails}",
        pytrace=False,
    )


# -- the test -----------------------------------------------------------------------------------


def test_order_sagas_survive_workers_killed_at_random(
    workers: list[Worker], chaos_database: str
) -> None:
    seed = int(os.environ.get("SAGAS_CHAOS_SEED") or random.randrange(2**32))
    chaos = Chaos(seed)
    print(f"chaos seed: {seed} (rerun with SAGAS_CHAOS_SEED={seed}); {len(chaos.targets)} kills")
    started = time.monotonic()
    for worker in workers:
        worker.start()
    # The workers and this store create the schema together on the new database.
    store = SQLStore(chaos_database)
    conn = psycopg.connect(chaos_database, autocommit=True)
    try:
        orders = [f"order-{n:04d}" for n in range(ORDERS)]
        declined = {order for order in orders if payment_fails(order)}
        now = SystemClock().now()
        batches = [
            [order_created(order, now) for order in orders[i : i + PUBLISH_BATCH]]
            for i in range(0, ORDERS, PUBLISH_BATCH)
        ]
        run_chaos(chaos, workers, store, conn, batches, started)
        ran = time.monotonic() - started
        for worker in workers:
            code = worker.stop(signal.SIGTERM)
            if code != 0:
                fail(f"worker {worker.number} exited with {code} on SIGTERM", chaos, workers)
        print(f"run: {ran:.1f}s, {len(chaos.kills)} kills ({chaos.during_work} during the work)")
        print("kills: " + "; ".join(chaos.kills))
        checked = time.monotonic()
        check_instances(store, orders, declined, chaos)
        print(f"instances checked in {time.monotonic() - checked:.1f}s")
        check_effects(conn, orders, declined, chaos)
        check_leftovers(store, conn, chaos)
        longest, waited = conn.execute(STALLS).fetchone() or (0, 0)
        print(f"longest wait of a saga between two decisions: {longest:.1f}s; ", end="")
        print(f"{waited} decisions waited over 1.5 s (taken over after a kill)")
        print(f"total with checks: {time.monotonic() - started:.1f}s")
    finally:
        conn.close()
        store.close()


def run_chaos(
    chaos: Chaos,
    workers: list[Worker],
    store: SQLStore,
    conn: psycopg.Connection[Any],
    batches: list[list[Any]],
    started: float,
) -> None:
    """Publish, kill and restart workers on the seeded schedule, until the work is done."""
    rng = chaos.rng
    targets = list(chaos.targets)
    published = 0
    next_publish = next_kill = time.monotonic()
    pause = 0.0  # after the last kill, how long the crew is left complete before the next
    fence = 0  # the outbox rows up to this id were there at the last kill
    last_check = 0.0
    while True:
        now = time.monotonic()
        if now - started > DEADLINE:
            left = unfinished(store, conn)
            fail(f"not done within {DEADLINE:.0f}s: {left}", chaos, workers)
        if published < len(batches) and now >= next_publish:
            store.enqueue(batches[published], received_at=datetime.now(UTC))
            published += 1
            next_publish = now + PUBLISH_EVERY
        for number, when in list(chaos.restarts.items()):
            if now >= when:
                workers[number - 1].start()
                del chaos.restarts[number]
        for worker in workers:
            if worker.number not in chaos.restarts and not worker.running():
                fail(f"worker {worker.number} died on its own", chaos, workers)
        # The log's latest position (an index look-up; rolled-back rounds leave gaps): the
        # test's watching must cost the workers next to nothing of the machine.
        progress = scalar(conn, "SELECT coalesce(max(position), 0) FROM saga_event_log")
        up = [w for w in workers if w.number not in chaos.restarts and w.ready()]
        if len(up) <= MIN_UP or scalar(conn, f"{LEFT_BEHIND} {fence}"):
            # The next kill waits for the crew, and for what the last kill left behind to be
            # carried out, and then a little more: else the worker that takes over might be
            # killed in turn, again and again, until the sagas' steps time out.
            next_kill = max(next_kill, now + pause)
        elif targets and progress >= targets[0] and now >= next_kill:
            targets.pop(0)
            time.sleep(rng.uniform(0, 0.15))  # a random moment, not right at the target
            # Mostly a worker in the middle of carrying out effects (it called a participant
            # just now), else any: a kill that finds a worker idle shows little.
            working = {row[0] for row in conn.execute(WORKING)}
            busy = [w for w in up if w.pid in working]
            victim = rng.choice(busy if busy and rng.random() < BUSY_VICTIMS else up)
            pid = victim.pid
            victim.stop(signal.SIGKILL)
            at = scalar(conn, "SELECT count(*) FROM saga_event_log")
            clock = datetime.now().strftime("%H:%M:%S.%f")[:-3]
            chaos.kills.append(f"w{victim.number}/pid {pid} at {at} decisions, {clock}")
            chaos.during_work += bool(unfinished(store, conn))
            fence = scalar(conn, "SELECT coalesce(max(id), 0) FROM saga_outbox")
            chaos.restarts[victim.number] = time.monotonic() + rng.uniform(0.0, 1.0)
            next_kill = time.monotonic() + rng.uniform(*KILL_GAP)
            pause = rng.uniform(*KILL_GAP)
            continue
        settled = not targets and not chaos.restarts and published == len(batches)
        # Every worker must have come back up: then SIGTERM stops it cleanly, after its round.
        settled = settled and all(worker.ready() for worker in workers)
        if settled and now - last_check >= 0.25:
            last_check = now
            if not unfinished(store, conn):
                return
        time.sleep(0.05)


# -- the checks ---------------------------------------------------------------------------------


def check_instances(store: SQLStore, orders: list[str], declined: set[str], chaos: Chaos) -> None:
    """Every order has one terminal instance, compensated exactly when its payment was
    declined, whose log replays to its state; compensations ran in reverse, once each."""
    records = store.list_instances(limit=10 * ORDERS)
    by_order = {record.state.correlation_key: record.state for record in records}
    assert len(records) == ORDERS, f"{len(records)} instances (seed {chaos.seed})"
    assert by_order.keys() == set(orders), f"seed {chaos.seed}"
    statuses = Counter(state.status for state in by_order.values())
    print(f"instances: {dict(statuses)}; declined payments: {len(declined)}")
    expected = {
        order: InstanceStatus.COMPENSATED if order in declined else InstanceStatus.COMPLETED
        for order in orders
    }
    wrong = {o: s.status.value for o, s in by_order.items() if s.status != expected[o]}
    assert not wrong, f"{len(wrong)} instances end wrongly (seed {chaos.seed}): {some(wrong)}"
    retried = {
        order: {name: (s.attempt, s.undo_attempt) for name, s in state.steps.items()}
        for order, state in by_order.items()
        if any(s.attempt > 1 or s.undo_attempt > 1 for s in state.steps.values())
    }
    assert not retried, (
        f"{len(retried)} instances ran a step more than once, (attempt, undo attempt) by step "
        f"(seed {chaos.seed}): {some(retried)}"
    )
    check_replays(store, list(by_order.values()), chaos)
    for order, state in by_order.items():
        if order in declined:
            assert state.steps["reserve_inventory"].status == StepStatus.COMPENSATED, order
            assert state.steps["take_payment"].status == StepStatus.FAILED, order
            assert state.steps["ship"].status == StepStatus.NOT_RUN, order
            assert_compensated_in_reverse(store, state.saga_id)
        else:
            steps = {name: state.steps[name].status for name in STEPS}
            assert set(steps.values()) == {StepStatus.SUCCEEDED}, (order, steps)


def check_replays(store: SQLStore, stored: list[SagaState], chaos: Chaos) -> None:
    """Every instance's log, folded through ``decide`` from nothing with each entry's
    ``recorded_at`` as the time, gives exactly its stored state: ``assert_replays`` for all
    instances at once, reading the whole log in one pass instead of four queries an instance
    (which then explains a difference)."""
    logs: defaultdict[str, list[LogEntry]] = defaultdict(list)
    position = 0
    while entries := store.log_from(position, 5000):
        for entry in entries:
            logs[entry.saga_id].append(entry)
        position = entries[-1].position
    definitions: dict[tuple[str, int], SagaDefinition] = {}
    for state in stored:
        key = (state.saga_name, state.definition_version)
        definition = definitions.get(key) or definitions.setdefault(key, store.definition(*key))
        log = sorted(logs.pop(state.saga_id, []), key=lambda entry: entry.seq)
        assert [entry.seq for entry in log] == list(range(1, len(log) + 1)), state.saga_id
        folded: SagaState | None = None
        for entry in log:
            folded = decide(definition, folded, entry.event, entry.recorded_at).state
        if folded != state:
            assert_replays(store, state.saga_id)  # says what differs
            raise AssertionError(f"saga {state.saga_id} does not replay (seed {chaos.seed})")
    assert not logs, f"log entries of no instance (seed {chaos.seed}): {list(logs)[:10]}"


def expected_effects(order: str, declined: bool) -> dict[str, str]:
    """The effects an order's participants must have applied, by kind, with the key each
    carries (the first attempt's: nothing here is retried)."""
    saga_id = saga_id_for(SAGA, order)
    if declined:
        return {
            "reserve": f"{saga_id}/reserve_inventory/1",
            "release": f"{saga_id}/reserve_inventory/undo/1",
        }
    return {
        "reserve": f"{saga_id}/reserve_inventory/1",
        "payment": f"{saga_id}/take_payment",  # a handler's key is the same for every attempt
        "ship": f"{saga_id}/ship/1",
    }


def check_effects(
    conn: psycopg.Connection[Any],
    orders: list[str],
    declined: set[str],
    chaos: Chaos,
) -> None:
    """Effects were applied exactly once for each completed step and each compensation, and
    for nothing else; deliveries may repeat (at least once), the idempotency keys absorb that."""
    applied: defaultdict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for key, kind, order in conn.execute("SELECT key, kind, order_id FROM chaos_effects"):
        applied[order][kind].append(key)
    wrong = {}
    for order in orders:
        want = {kind: [key] for kind, key in expected_effects(order, order in declined).items()}
        got = {kind: sorted(keys) for kind, keys in applied.pop(order, {}).items()}
        if got != want:
            wrong[order] = {"expected": want, "applied": got}
    assert not applied, f"effects for unknown orders (seed {chaos.seed}): {some(applied)}"
    assert not wrong, f"{len(wrong)} orders with wrong effects (seed {chaos.seed}): {some(wrong)}"

    calls = conn.execute(
        "SELECT kind, outcome, count(*), count(DISTINCT key) FROM chaos_calls GROUP BY 1, 2"
    ).fetchall()
    effects = dict(conn.execute("SELECT kind, count(*) FROM chaos_effects GROUP BY 1").fetchall())
    report = []
    for kind, outcome, deliveries, keys in sorted(calls):
        label = kind if outcome == "applied" else f"{kind} ({outcome})"
        if outcome == "applied":
            assert keys == effects.get(kind), f"{kind}: a delivered key without its effect"
        report.append(f"{label}: {deliveries} deliveries, {keys} keys, {deliveries - keys} repeats")
    total = sum(row[2] for row in calls)
    distinct = sum(row[3] for row in calls)
    print("participants: " + "; ".join(report))
    print(f"deliveries {total} vs effects {sum(effects.values())}: ", end="")
    print(f"{total - distinct} repeats absorbed by idempotency keys")
    declines = next((row for row in calls if row[1] == "declined"), None)
    assert declines is not None
    assert declines[3] == len(declined), "one declined payment attempt per declined order"


def check_leftovers(store: SQLStore, conn: psycopg.Connection[Any], chaos: Chaos) -> None:
    """Nothing queued, pending, scheduled or dead-lettered is left."""
    assert store.queue_depth() == 0, f"seed {chaos.seed}"
    assert store.pending_outbox(10) == [], f"seed {chaos.seed}"
    assert store.timers() == [], f"timers left (seed {chaos.seed}): {store.timers()[:10]}"
    letters = store.dead_letters(10)
    assert letters == [], f"dead letters (seed {chaos.seed}): {letters}"


# -- the bugs this test found, each on its own --------------------------------------------------

STARTER = """
import sys, time
from pathlib import Path
from sagas import SQLStore, load_definition
from sagas.clock import SystemClock

url, definition, folder = sys.argv[1], load_definition(sys.argv[2]), Path(sys.argv[3])
(folder / f"ready-{sys.argv[4]}").touch()
while not (folder / "go").exists():
    time.sleep(0.001)
store = SQLStore(url)
print(store.register_definition(definition, SystemClock().now()))
store.close()
"""
"""What a worker does when it starts, up to running: migrate the schema, register the order
saga. The processes wait for a ``go`` file to do it at the same moment."""


def test_workers_started_together_on_a_new_database_all_start(
    chaos_database: str, tmp_path: Path
) -> None:
    """Workers that start at the same moment on a new database: each migrates the schema and
    registers the definitions. They used to all but one fail (Alembic's version table created
    twice, version 1 of the definition inserted twice): now they take turns."""
    command = [sys.executable, "-c", STARTER, chaos_database, str(ORDER_DEFINITION)]
    starters = [
        subprocess.Popen(
            [*command, str(tmp_path), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("ready-*"))) < WORKERS:
            assert time.monotonic() < deadline, "the starters did not get ready"
            assert all(p.poll() is None for p in starters), [p.communicate() for p in starters]
            time.sleep(0.01)
        (tmp_path / "go").touch()
        results = [p.communicate(timeout=60) for p in starters]
    finally:
        for starter in starters:
            if starter.poll() is None:
                starter.kill()
                starter.wait()
    failed = [err for (_, err), p in zip(results, starters, strict=True) if p.returncode]
    assert not failed, "\n".join(failed)
    assert [out.strip() for out, _ in results] == ["1"] * WORKERS


class WorkerDied(BaseException):
    """Raised where a worker is killed after its round committed, before it carried out the
    effects (a BaseException, so nothing in the engine catches it)."""


def test_a_busy_worker_takes_over_a_dead_workers_effects(
    chaos_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker dies right after committing the round that asks for a payment. Another worker,
    busy with a steady stream of new orders, takes the payment over once the dead worker's
    lease (2 s) ran out. It used to do that only when it had nothing else to do: under load the
    payment waited until its 10 s timeout, the step was retried under a new idempotency key, and
    when the load stopped the first attempt ran too: the customer paid twice."""
    monkeypatch.setenv(DATABASE_ENV, chaos_database)
    clock = ManualClock()
    definition = load_definition(ORDER_DEFINITION)

    def worker() -> Engine:
        engine = Engine(
            SQLStore(chaos_database),
            handlers=chaos_participants.handlers,
            clock=clock,
            lease=timedelta(seconds=2),
        )
        chaos_participants.subscribe(engine.bus)  # replies go to the relaying engine either way
        engine.register(definition)
        return engine

    order = next(f"order-{n}" for n in range(100) if not payment_fails(f"order-{n}"))
    dead, busy = worker(), worker()
    try:
        dead.publish(order_created(order, clock.now()))
        dead.run_once()  # OrderCreated: ReserveInventory sent, the reply carried

        def killed(_outbox: object) -> object:
            raise WorkerDied

        monkeypatch.setattr(dead, "_relay", killed)
        with pytest.raises(WorkerDied):
            dead.run_once()  # InventoryReserved: take_payment committed, never run

        for n in range(30):  # 15 s of steady load on the other worker
            busy.publish(order_created(f"load-{n}", clock.now()))
            busy.run_once()
            clock.advance(0.5)
        busy.run_until_idle()
        saga_id = saga_id_for(SAGA, order)
        state = busy.store.instance(saga_id).state
        log = "\n".join(
            f"{e.recorded_at:%M:%S.%f} {e.event.event_type}: {e.note}"
            for e in busy.store.log(saga_id)
        )
        assert state.status == InstanceStatus.COMPLETED, log
        assert state.steps["take_payment"].attempt == 1, log
        with psycopg.connect(chaos_database) as conn:
            payments = conn.execute(
                "SELECT key FROM chaos_effects WHERE kind = 'payment' AND order_id = %s", (order,)
            ).fetchall()
        assert payments == [(f"{saga_id}/take_payment",)], log
        payment = state.steps["take_payment"]
        assert payment.started_at is not None
        assert payment.finished_at is not None
        assert payment.finished_at - payment.started_at <= timedelta(seconds=3), log
    finally:
        dead.close()
        busy.close()
