"""A real worker process killed (SIGKILL) at random moments loses and doubles nothing.

Set SAGAS_KILL_SEED to replay a run; the seed is printed (pytest shows it when the test fails).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtime_checks import (
    ORDER_DEFINITION,
    assert_compensated_in_reverse,
    assert_replays,
    order_created,
)

from sagas.clock import SystemClock
from sagas.engine.state import InstanceStatus
from sagas.store.sql import SQLStore

ORDERS = 300
FAIL_RATE = 0.2

PARTICIPANTS = """\
from sagas.demo.participants import Participants
from sagas.handlers import HandlerRegistry

participants = Participants(fail_rate={fail_rate}, seed={seed})
handlers = HandlerRegistry()
participants.register(handlers)


def subscribe(bus):
    participants.subscribe(bus)
"""

CONFIG = """\
[engine]
definitions = ["{definition}"]
handler_modules = ["kill_participants"]
concurrency = 4
batch_size = 20
poll_interval = "10ms"
# A killed worker's leased effects wait this long (real time) before its successor redoes them.
lease = "1s"
"""


class Watch:
    """Reads the worker's progress through a store of its own, as a bystander."""

    def __init__(self, database: str) -> None:
        self.store = SQLStore(database)
        self.position = 0

    def progress(self) -> int:
        """The global position of the latest committed decision."""
        while entries := self.store.log_from(self.position, 1000):
            self.position = entries[-1].position
        return self.position

    def unfinished(self) -> int:
        """Instances not yet started or ended, plus events queued and effects pending."""
        counts = self.store.count_instances()
        ended = sum(n for (_, status), n in counts.items() if status.terminal)
        pending = len(self.store.pending_outbox(1))
        return ORDERS - ended + self.store.queue_depth() + pending


class Worker:
    """`sagas worker` in a process of its own, on the test's database (its URL goes to
    ``--db``)."""

    def __init__(self, folder: Path, database: str) -> None:
        self.folder, self.database = folder, database
        self.config = folder / "worker.toml"
        self.output = folder / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-c", "from sagas.cli import main; main()"]
        command += ["worker", "--config", str(self.config), "--db", self.database]
        with self.output.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, how: signal.Signals) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(how)
        self.process.wait(timeout=30)
        self.process = None

    def tail(self) -> str:
        return self.output.read_text(errors="replace")[-3000:]


@pytest.fixture
def worker(tmp_path: Path, database: str) -> Iterator[Worker]:
    worker = Worker(tmp_path, database)
    yield worker
    worker.stop(signal.SIGKILL)  # never leave a process behind, whatever failed


def until(watch: Watch, worker: Worker, decisions: int | None) -> Callable[[], bool]:
    """``decisions`` are committed (``None``: all work is done), or the worker died (which
    the test then reports)."""

    def reached() -> bool:
        if not worker.running() or not watch.unfinished():
            return True
        return decisions is not None and watch.progress() >= decisions

    return reached


def test_orders_survive_a_worker_killed_at_random_moments(
    worker: Worker, eventually: Callable[..., None]
) -> None:
    seed = int(os.environ.get("SAGAS_KILL_SEED") or random.randrange(2**32))
    print(f"kill-and-recover seed: {seed} (rerun with SAGAS_KILL_SEED={seed})")
    rng = random.Random(seed)
    (worker.folder / "kill_participants.py").write_text(
        PARTICIPANTS.format(fail_rate=FAIL_RATE, seed=seed % 1000)
    )
    worker.config.write_text(CONFIG.format(definition=ORDER_DEFINITION))
    watch = Watch(worker.database)
    store = watch.store
    try:
        now = SystemClock().now()
        store.enqueue([order_created(f"order-{n:03d}", now) for n in range(ORDERS)])

        kills = rng.randint(3, 5)
        for round_ in range(kills):
            target = watch.progress() + rng.randint(20, 250)
            worker.start()
            eventually(until(watch, worker, target), timeout=60)
            assert worker.running(), f"worker died (seed {seed}):\n{worker.tail()}"
            worker.stop(signal.SIGKILL)
            print(f"kill {round_ + 1}/{kills} at position {watch.progress()}")

        worker.start()
        eventually(until(watch, worker, None), timeout=120)
        assert worker.running(), f"worker died (seed {seed}):\n{worker.tail()}"
        worker.stop(signal.SIGTERM)

        records = store.list_instances(limit=10 * ORDERS)
        assert len(records) == ORDERS, f"seed {seed}"
        keys = {r.state.correlation_key for r in records}
        assert keys == {f"order-{n:03d}" for n in range(ORDERS)}, f"seed {seed}"
        assert all(r.state.status.terminal for r in records), f"seed {seed}"
        statuses = {r.state.status for r in records}
        assert {InstanceStatus.COMPLETED, InstanceStatus.COMPENSATED} <= statuses, f"seed {seed}"
        for record in records:
            assert_replays(store, record.saga_id)
            if record.state.status == InstanceStatus.COMPENSATED:
                assert_compensated_in_reverse(store, record.saga_id)
        assert store.queue_depth() == 0, f"seed {seed}"
        assert store.pending_outbox(10) == [], f"seed {seed}"
        assert store.timers() == [], f"seed {seed}"
        assert store.dead_letters() == [], f"seed {seed}"
    finally:
        store.close()
