"""Sagas started on a clock: a cron expression or an interval, and what to do about missed runs.

Fire times are a pure function of the schedule, so every worker computes the same ones and the
trigger event of a run has the same id everywhere (``schedule/<saga>/<time>``): a run started
by two workers at once is one run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sagas.definitions.durations import Duration

__all__ = ["EPOCH", "MissedRuns", "Schedule", "cron_trigger"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)  # the resolution of fire times


class MissedRuns(StrEnum):
    """What happens to runs whose time passed while no engine was running."""

    ONCE = "once"  # one run stands in for all the missed ones
    SKIP = "skip"  # missed runs are dropped; the next one on time runs


def cron_trigger(expression: str) -> CronTrigger:
    """APScheduler's trigger for a five-field crontab expression, in UTC.

    :raises ValueError: naming the field that is wrong.
    """
    return CronTrigger.from_crontab(expression, timezone=UTC)


class Schedule(BaseModel):
    """Start an instance at every fire time of ``cron`` (``"0 * * * *"``) or every ``interval``
    (counted from 1970-01-01T00:00Z, so ``1h`` fires on the hour). The trigger event carries
    ``data`` and ``scheduledAt`` (the run's time, ISO-8601), a natural correlation key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cron: str | None = Field(None, description="Crontab expression, five fields, UTC.")
    interval: Duration | None = Field(None, description="Fixed interval, e.g. 15m.")
    missed: MissedRuns = Field(
        MissedRuns.ONCE, description="once: one run for all missed ones; skip: drop them."
    )
    grace: Duration = Field(
        timedelta(minutes=1), description="How late a run may start and still count as on time."
    )
    data: dict[str, Any] = Field(default_factory=dict, description="Data of the trigger event.")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            cron_trigger(value)
        return value

    @model_validator(mode="after")
    def _one_clock(self) -> Schedule:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("needs exactly one of cron, interval")
        if self.interval is not None and self.interval <= timedelta():
            raise ValueError("interval must be longer than 0s")
        return self

    def next_fire(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after``."""
        if self.interval is not None:
            periods = (after - EPOCH) // self.interval + 1
            return EPOCH + periods * self.interval
        assert self.cron is not None
        trigger = cron_trigger(self.cron)
        fire: datetime | None = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
        assert fire is not None, "a crontab expression always fires again"
        return fire.astimezone(UTC)

    def due_runs(self, after: datetime, now: datetime, limit: int = 1000) -> list[datetime]:
        """The fire times in ``(after, now]`` that start a run, by the missed-runs policy:
        on time (within ``grace`` of ``now``) they run; missed ones run once or not at all.

        Only the latest missed fire time can matter, so it is found without walking through
        the others: after a long outage this costs what it costs after a short one."""
        cutoff = now - self.grace  # a fire time before it is missed; from it on, on time
        on_time: list[datetime] = []
        fire = self.next_fire(max(after, cutoff - _TICK))
        while fire <= now and len(on_time) < limit:
            on_time.append(fire)
            fire = self.next_fire(fire)
        if on_time or self.missed == MissedRuns.SKIP:
            return on_time
        latest = self._latest_fire_before(cutoff, after)
        return [] if latest is None else [latest]

    def _latest_fire_before(self, cutoff: datetime, after: datetime) -> datetime | None:
        """The last fire time in ``(after, cutoff)``, by bisection on the time: ``low`` keeps
        a fire time before ``cutoff`` after it, ``high`` none."""
        if self.next_fire(after) >= cutoff:
            return None
        low, high = after, cutoff
        while high - low > _TICK:
            middle = low + (high - low) / 2
            if self.next_fire(middle) < cutoff:
                low = middle
            else:
                high = middle
        return self.next_fire(low)

    def trigger_data(self, fire: datetime) -> dict[str, Any]:
        """The data of the trigger event of the run at ``fire``."""
        return {**self.data, "scheduledAt": fire.isoformat()}
