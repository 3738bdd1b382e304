"""The Waker in real time (bounded waits, measured with a monotonic clock), and ``Engine.run``
woken by it for a delay step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from timer_checks import assert_replays

from sagas import parse_definition
from sagas.clock import SystemClock
from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus, SagaState
from sagas.events import Event
from sagas.runtime import engine as engine_module
from sagas.runtime.engine import Engine
from sagas.runtime.waker import Waker
from sagas.store.sql import SQLStore

SOON = 0.3
"""Seconds to a wake-up: long enough to tell an early wake-up from a timely one."""
EARLY = 0.05
"""How much before its time a wake-up may come (clock reads and scheduling)."""
LATE = 5.0
"""Generous: a loaded machine may be slow to run the scheduler's thread."""


@pytest.fixture
def waker() -> Iterator[Waker]:
    waker = Waker(SystemClock())
    waker.start()
    yield waker
    waker.stop()


def timed_wait(waker: Waker, timeout: float) -> tuple[bool, float]:
    """Wait on ``waker``; whether it was woken, and the seconds that took."""
    began = time.monotonic()
    woken = waker.wait(timeout)
    return woken, time.monotonic() - began


def test_arm_wakes_the_wait_at_the_due_time_not_before(waker: Waker) -> None:
    began = time.monotonic()
    waker.arm(SystemClock().now() + timedelta(seconds=SOON))
    woken, _ = timed_wait(waker, LATE)
    elapsed = time.monotonic() - began

    assert woken
    assert SOON - EARLY <= elapsed < LATE


def test_a_wait_nobody_wakes_times_out(waker: Waker) -> None:
    woken, elapsed = timed_wait(waker, 0.1)

    assert not woken
    assert elapsed >= 0.1 - EARLY


def test_arming_an_earlier_time_replaces_a_later_one(waker: Waker) -> None:
    now = SystemClock().now()
    later, earlier = now + timedelta(seconds=60), now + timedelta(seconds=SOON)
    began = time.monotonic()
    waker.arm(later)
    waker.arm(earlier)
    assert waker.armed == earlier

    woken, _ = timed_wait(waker, LATE)
    assert woken
    assert SOON - EARLY <= time.monotonic() - began < LATE


def test_arming_a_later_time_keeps_the_earlier_one(waker: Waker) -> None:
    now = SystemClock().now()
    earlier, later = now + timedelta(seconds=SOON), now + timedelta(seconds=60)
    began = time.monotonic()
    waker.arm(earlier)
    waker.arm(later)
    assert waker.armed == earlier

    woken, _ = timed_wait(waker, LATE)
    assert woken
    assert SOON - EARLY <= time.monotonic() - began < LATE


def test_arming_a_time_already_past_wakes_at_once(waker: Waker) -> None:
    waker.arm(SystemClock().now() - timedelta(seconds=10))

    woken, elapsed = timed_wait(waker, LATE)
    assert woken
    assert elapsed < LATE


NAP = """
name: nap
trigger: Tired
correlation: id
steps:
  - name: sleep
    delay: 300ms
  - name: wake
    handler: wake
    pivot: true
"""
POLL = 2.0
"""The engine's idle poll, longer than the delay: finishing sooner shows the Waker woke it."""


def test_engine_run_is_woken_for_a_delay_step_and_the_saga_completes(
    database: str, eventually: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The idle loop also looks at its stop flag now and then: not before POLL either.
    monkeypatch.setattr(engine_module, "STOP_CHECK_INTERVAL", POLL)
    finished: list[tuple[SagaState, float]] = []
    woke: list[float] = []
    engine = Engine(
        SQLStore(database),
        clock=SystemClock(),
        handlers={"wake": lambda context: woke.append(time.monotonic())},
    )
    engine.on_finish.append(lambda state: finished.append((state, time.monotonic())))
    stop = threading.Event()
    worker = threading.Thread(target=engine.run, args=(stop, POLL), daemon=True)
    try:
        engine.register(parse_definition(NAP))
        engine.publish(Event.create("Tired", {"id": "n1"}, at=SystemClock().now()))
        began = time.monotonic()
        worker.start()

        eventually(lambda: finished, timeout=10)

        [(state, ended)] = finished
        assert state.status == InstanceStatus.COMPLETED
        assert woke[0] - began >= SOON - EARLY
        assert ended - began < POLL, "woken by the Waker, not by the idle poll"
        assert state.steps["sleep"].finished_at is not None
        assert state.steps["sleep"].finished_at - state.started_at >= timedelta(seconds=SOON)
    finally:
        stop.set()
        worker.join(timeout=POLL + LATE)
        assert not worker.is_alive(), "run(stop) did not stop"
        engine.close()
    store = SQLStore(database)
    try:
        assert store.timers() == []
        assert_replays(store, saga_id_for("nap", "n1"))
    finally:
        store.close()


def test_stopping_right_after_a_wake_up_leaves_no_error_in_the_scheduler_thread() -> None:
    errors: list[BaseException | None] = []
    saved = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        for _ in range(20):
            waker = Waker(SystemClock())
            waker.start()
            waker.arm(SystemClock().now() + timedelta(milliseconds=5))
            assert waker.wait(LATE)
            waker.stop()  # joins the scheduler's thread
    finally:
        threading.excepthook = saved
    assert errors == []
