"""Waking the worker loop when a timer is due or a scheduled saga's time comes, with APScheduler.

The database stays the source of truth: the worker fires whatever timers are due when it wakes
(and on start, whatever became due while it was down). APScheduler only holds wake-ups: one job
for the earliest timer, re-armed whenever an earlier one appears, and one cron or interval job
per scheduled saga. Nothing lives only in APScheduler's memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sagas.clock import Clock
from sagas.definitions.model import SagaDefinition
from sagas.definitions.schedule import EPOCH, cron_trigger

__all__ = ["Waker"]

NEXT_TIMER_JOB = "sagas-next-timer"


class Waker:
    """An APScheduler background scheduler whose jobs wake one worker loop."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._wake = threading.Event()
        self._armed: datetime | None = None
        self._lock = threading.Lock()
        self._scheduler = BackgroundScheduler(
            timezone=UTC, job_defaults={"coalesce": True, "misfire_grace_time": None}
        )

    def start(self, definitions: Iterable[SagaDefinition] = ()) -> None:
        """Start the scheduler, with a job for each scheduled saga."""
        for definition in definitions:
            schedule = definition.schedule
            if schedule is None:
                continue
            if schedule.cron is not None:
                trigger = cron_trigger(schedule.cron)
            else:
                assert schedule.interval is not None
                trigger = IntervalTrigger(
                    seconds=schedule.interval.total_seconds(), start_date=EPOCH, timezone=UTC
                )
            self._scheduler.add_job(self.wake, trigger, id=f"schedule:{definition.name}")
        self._scheduler.start()

    def arm(self, due: datetime | None) -> None:
        """Make sure a wake-up is armed for ``due`` (the earliest pending timer) or earlier."""
        if due is None:
            return
        with self._lock:
            now = self._clock.now()
            if self._armed is not None and now < self._armed <= due:
                return  # an earlier wake-up is armed already
            run_at = datetime.now(UTC) + max(due - now, timedelta())
            self._scheduler.add_job(
                self.wake, DateTrigger(run_date=run_at), id=NEXT_TIMER_JOB, replace_existing=True
            )
            self._armed = due

    @property
    def armed(self) -> datetime | None:
        """The due time the next-timer job is armed for."""
        return self._armed

    def wake(self) -> None:
        """Wake the loop now."""
        self._wake.set()

    def wait(self, timeout: float) -> bool:
        """Sleep until woken or ``timeout`` seconds passed; returns whether it was woken."""
        woken = self._wake.wait(timeout)
        self._wake.clear()
        return woken

    def stop(self) -> None:
        """Shut the scheduler down."""
        if self._scheduler.running:
            # Its thread may be between running the next-timer job and removing it; once the
            # scheduler is stopped that removal fails in the thread. Removing the jobs first
            # (under the scheduler's lock) leaves it nothing to remove.
            self._scheduler.remove_all_jobs()
            self._scheduler.shutdown(wait=False)
