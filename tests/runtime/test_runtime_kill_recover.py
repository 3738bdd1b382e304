"""A real worker process killed (SIGKILL) at random moments loses and doubles nothing.

Set SAGAS_KILL_SEED to replay a run; the seed is printed (pytest shows it when the test fails).
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtime_checks import (
    ORDER_DEFINITION,
    WorkerProcess,
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


@pytest.fixture
def worker(tmp_path: Path, database: str) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(tmp_path, ["--config", str(tmp_path / "worker.toml"), "--db", database])
    yield worker
    worker.stop(signal.SIGKILL)  # never leave a process behind, whatever failed


def until(watch: Watch, worker: WorkerProcess, decisions: int | None) -> Callable[[], bool]:
    """``decisions`` are committed (``None``: all work is done), or the worker died (which
    the test then reports)."""

    def reached() -> bool:
        if not worker.running() or not watch.unfinished():
            return True
        return decisions is not None and watch.progress() >= decisions

    return reached


def test_orders_survive_a_worker_killed_at_random_moments(
    worker: WorkerProcess, database: str, eventually: Callable[..., None]
) -> None:
    seed = int(os.environ.get("SAGAS_KILL_SEED") or random.randrange(2**32))
    print(f"kill-and-recover seed: {seed} (rerun with SAGAS_KILL_SEED={seed})")
    rng = random.Random(seed)
    (worker.folder / "kill_participants.py").write_text(
        PARTICIPANTS.format(fail_rate=FAIL_RATE, seed=seed % 1000)
    )
    (worker.folder / "worker.toml").write_text(CONFIG.format(definition=ORDER_DEFINITION))
    watch = Watch(database)
    store = watch.store
    try:
        now = SystemClock().now()
        store.enqueue(
            [order_created(f"order-{n:03d}", now) for n in range(ORDERS)], received_at=now
        )

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
