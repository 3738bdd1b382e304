"""Timers survive a worker killed (SIGKILL) while they are pending, and each fires once.

A real ``sagas worker`` process runs sagas that sleep (a delay step) and then send a command
with a short timeout and retries. Participants answer the even-numbered sagas only, so the odd
ones go through every retry and fail for an operator (the command is the pivot: its outcome is
unknown, and nothing undoes it). The worker is killed twice: while the delays
are pending, and while retries are; a new worker then finishes everything.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from timer_checks import (
    WorkerProcess,
    assert_replays,
    assert_timers_fired_once,
    fired_timers,
)

from sagas.clock import SystemClock
from sagas.engine.decide import saga_id_for
from sagas.engine.effects import TimerKind
from sagas.engine.internal import TIMER_FIRED
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.events import Event
from sagas.store.sql import SQLStore

SAGAS = 100
ATTEMPTS = 4

DEFINITION = f"""
name: patient
trigger: Begin
correlation: id
steps:
  - name: book
    handler: book
    compensation: {{handler: unbook}}
  - name: hold
    delay: 1500ms
  - name: ask
    command: {{type: Ask, success: Answered}}
    timeout: 400ms
    retry: {{attempts: {ATTEMPTS}, initial_delay: 300ms, factor: 1.5, max_delay: 1s, jitter: 0.1}}
    pivot: true
"""

PARTICIPANTS = """
handlers = {"book": lambda context: None, "unbook": lambda context: None}


def subscribe(bus):
    def answer(command):
        if int(command.data["id"]) % 2 == 0:
            bus.reply(command, "Answered", {"answeredBy": "participant"})

    bus.subscribe("Ask", answer)
"""


@pytest.fixture
def worker(tmp_path: Path, database: str) -> Iterator[WorkerProcess]:
    definitions = tmp_path / "patient.yaml"
    definitions.write_text(DEFINITION)
    args = ["--definitions", str(definitions), "--handlers", "timer_participants"]
    worker = WorkerProcess(tmp_path, [*args, "--db", database])
    (tmp_path / "timer_participants.py").write_text(PARTICIPANTS)
    yield worker
    worker.stop(signal.SIGKILL)  # never leave a process behind, whatever failed


@pytest.fixture
def store(database: str) -> Iterator[SQLStore]:
    """The test's own view of the database, as a bystander."""
    store = SQLStore(database)
    yield store
    store.close()


def pending(store: SQLStore, kind: TimerKind) -> int:
    return sum(record.timer.kind == kind for record in store.timers())


def kill_when(
    worker: WorkerProcess, condition: Callable[[], bool], eventually: Callable[..., None]
) -> None:
    """SIGKILL the worker as soon as ``condition`` holds (or it died, which fails)."""
    eventually(lambda: condition() or not worker.running(), timeout=20, interval=0.01)
    assert worker.running(), f"worker died:\n{worker.tail()}"
    worker.stop(signal.SIGKILL)


def test_timers_pending_when_the_worker_is_killed_fire_once_after_a_restart(
    worker: WorkerProcess, store: SQLStore, eventually: Callable[..., None]
) -> None:
    now = SystemClock().now()
    store.enqueue(
        [Event.create("Begin", {"id": str(n)}, at=now) for n in range(SAGAS)], received_at=now
    )

    worker.start()
    kill_when(worker, lambda: pending(store, TimerKind.DELAY) >= SAGAS // 2, eventually)
    delays = pending(store, TimerKind.DELAY)
    assert delays >= SAGAS // 2, "killed while the delays were pending"

    worker.start()
    kill_when(worker, lambda: pending(store, TimerKind.RETRY) > 0, eventually)
    left = Counter(record.timer.kind.value for record in store.timers())
    print(f"killed with {delays} delays pending, then with {dict(left)} pending")
    assert left, "killed while timers were pending"

    worker.start()

    def all_ended() -> bool:
        assert worker.running(), f"worker died:\n{worker.tail()}"
        counts = store.count_instances()
        return sum(n for (_, status), n in counts.items() if status.terminal) == SAGAS

    eventually(all_ended, timeout=30, interval=0.05)
    worker.stop(signal.SIGTERM)

    records = store.list_instances(limit=10 * SAGAS)
    assert sorted(int(r.state.correlation_key) for r in records) == list(range(SAGAS))
    for record in records:
        state, saga_id = record.state, record.saga_id
        answered = int(state.correlation_key) % 2 == 0
        if answered:
            assert state.status == InstanceStatus.COMPLETED, saga_id
            assert state.data["answeredBy"] == "participant"
        else:
            assert state.status == InstanceStatus.FAILED, saga_id
            ask = state.steps["ask"]
            assert (ask.status, ask.attempt) == (StepStatus.FAILED, ATTEMPTS), saga_id
            assert ask.outcome_unknown, saga_id
            assert state.steps["book"].status == StepStatus.SUCCEEDED, saga_id  # not undone
        assert_timers_fired_once(store, saga_id)
        assert_replays(store, saga_id)

    # Across the whole log: no timer fired twice, and every delay fired once.
    fired = [
        e.event.data["timerId"]
        for e in store.log_from(0, 100_000)
        if e.event.event_type == TIMER_FIRED
    ]
    assert [t for t, n in Counter(fired).items() if n > 1] == []
    delay_ids = {f"{saga_id_for('patient', str(n))}/hold/1/delay" for n in range(SAGAS)}
    assert delay_ids <= set(fired)
    odd = saga_id_for("patient", "1")
    assert sum(t.endswith("/retry") for t in fired_timers(store.log(odd))) == ATTEMPTS - 1
    assert store.timers() == []
    assert store.queue_depth() == 0
    assert store.pending_outbox(10) == []
    assert store.dead_letters() == []
