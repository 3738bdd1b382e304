"""Scheduled sagas on a manual clock: one instance per fire time, keyed by ``scheduledAt``;
missed runs once or skipped; no run before registration; one run however many engines."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from sagas import SagaDefinition, parse_definition
from sagas.definitions.schedule import MissedRuns, Schedule
from sagas.engine.decide import saga_id_for
from sagas.handlers import StepContext
from sagas.runtime.engine import Engine
from sagas.store.filters import InstanceFilter
from sagas.testing import ManualClock, saga_engine

MIDNIGHT = datetime(2030, 1, 1, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def report(schedule: str) -> SagaDefinition:
    """The ``report`` saga, started by ``schedule`` (YAML flow mapping)."""
    return parse_definition(
        f"""
name: report
trigger: ReportDue
correlation: scheduledAt
schedule: {schedule}
steps:
  - name: work
    handler: work
    pivot: true
"""
    )


class Reports:
    """The ``work`` handler: records the data of every run it does."""

    def __init__(self) -> None:
        self.runs: list[dict[str, object]] = []

    def work(self, context: StepContext) -> None:
        self.runs.append(dict(context.data))

    def scheduled(self) -> list[datetime]:
        return [datetime.fromisoformat(str(run["scheduledAt"])) for run in self.runs]


def run_keys(engine: Engine) -> list[datetime]:
    """The ``scheduledAt`` keys of the report instances, in time order."""
    records = engine.store.list_instances(InstanceFilter(saga="report"), limit=10_000)
    return sorted(datetime.fromisoformat(r.state.correlation_key) for r in records)


def at(hours: int, minutes: int = 0, seconds: int = 0) -> datetime:
    return MIDNIGHT + timedelta(hours=hours, minutes=minutes, seconds=seconds)


@pytest.fixture
def reports() -> Reports:
    return Reports()


@pytest.fixture
def engine(database: str, clock: ManualClock, reports: Reports) -> Iterator[Engine]:
    with saga_engine(database, clock=clock, handlers={"work": reports.work}) as engine:
        yield engine


def test_an_interval_schedule_starts_one_instance_per_period_keyed_by_scheduled_at(
    engine: Engine, clock: ManualClock, reports: Reports
) -> None:
    engine.register(report("{interval: 15m, data: {region: eu}}"))
    engine.run_until_idle()
    assert run_keys(engine) == [], "registered at 00:00: the first run is at 00:15"

    for period in range(1, 4):
        clock.advance(timedelta(minutes=15) - timedelta(microseconds=1))
        assert engine.run_until_idle() == 0
        clock.advance(timedelta(microseconds=1))
        engine.run_until_idle()
        engine.run_until_idle()  # nothing more at the same time
        assert len(run_keys(engine)) == period

    fires = [at(0, 15), at(0, 30), at(0, 45)]
    assert run_keys(engine) == fires
    assert reports.scheduled() == fires
    assert all(run["region"] == "eu" for run in reports.runs)
    first = engine.store.log(saga_id_for("report", fires[0].isoformat()))[0]
    assert first.event.event_id == f"schedule/report/{fires[0].isoformat()}"
    assert first.event.data == {"region": "eu", "scheduledAt": fires[0].isoformat()}


def test_a_cron_schedule_fires_at_the_right_minutes(database: str, reports: Reports) -> None:
    clock = ManualClock(at(0, 7))
    with saga_engine(database, clock=clock, handlers={"work": reports.work}) as engine:
        engine.register(report("{cron: '*/15 * * * *'}"))
        started_at: list[datetime] = []
        for _ in range(60):
            clock.advance("1m")
            before = len(run_keys(engine))
            engine.run_until_idle()
            if len(run_keys(engine)) > before:
                started_at.append(clock.now())

        fires = [at(0, 15), at(0, 30), at(0, 45), at(1, 0)]
        assert started_at == fires
        assert run_keys(engine) == fires
        assert reports.scheduled() == fires


@pytest.mark.parametrize(
    ("missed", "down_until", "runs_on_restart"),
    [
        pytest.param("once", at(5, 30), [at(5)], id="once-one-run-for-all-missed"),
        pytest.param("skip", at(5, 30), [], id="skip-none-of-the-missed"),
        pytest.param("skip", at(5, 0, 30), [at(5)], id="skip-but-one-on-time-within-grace"),
        pytest.param("once", at(5, 0, 30), [at(5)], id="once-on-time-stands-for-missed"),
    ],
)
def test_runs_missed_while_no_engine_ran_follow_the_missed_policy(
    database: str,
    clock: ManualClock,
    reports: Reports,
    missed: str,
    down_until: datetime,
    runs_on_restart: list[datetime],
) -> None:
    definition = report(f"{{interval: 1h, missed: {missed}, grace: 1m}}")
    handlers = {"work": reports.work}
    with saga_engine(database, clock=clock, handlers=handlers) as engine:
        engine.register(definition)
        clock.advance("1h")
        engine.run_until_idle()
        assert run_keys(engine) == [at(1)]

    clock.advance(down_until - clock.now())  # down: 02:00, 03:00, 04:00 (and 05:00) pass
    with saga_engine(database, clock=clock, handlers=handlers) as engine:
        engine.register(definition)
        engine.run_until_idle()
        assert run_keys(engine) == [at(1), *runs_on_restart]

        clock.advance(at(6) - clock.now())  # back on time
        engine.run_until_idle()
        assert run_keys(engine) == [at(1), *runs_on_restart, at(6)]
        assert reports.scheduled() == run_keys(engine)


def test_there_is_no_run_before_the_first_registration(engine: Engine, clock: ManualClock) -> None:
    clock.advance("2h10m")  # 00:15 ... 02:00 passed before anyone registered the saga
    engine.register(report("{interval: 15m, missed: once}"))
    engine.run_until_idle()
    assert run_keys(engine) == []

    clock.advance("5m")
    engine.run_until_idle()
    assert run_keys(engine) == [at(2, 15)]


def test_registering_again_does_not_restart_the_schedule(
    engine: Engine, clock: ManualClock
) -> None:
    definition = report("{interval: 15m, missed: skip}")
    engine.register(definition)
    clock.advance("15m")
    engine.run_until_idle()
    engine.register(definition)
    engine.run_until_idle()
    assert run_keys(engine) == [at(0, 15)]


@pytest.fixture
def two_engines(
    database: str, clock: ManualClock, reports: Reports
) -> Iterator[tuple[Engine, Engine]]:
    handlers = {"work": reports.work}
    with (
        saga_engine(database, clock=clock, handlers=handlers) as first,
        saga_engine(database, clock=clock, handlers=handlers) as second,
    ):
        definition = report("{interval: 15m}")
        first.register(definition)
        second.register(definition)
        yield first, second


def test_two_engines_on_one_database_start_one_instance_per_run(
    two_engines: tuple[Engine, Engine], clock: ManualClock, reports: Reports
) -> None:
    first, second = two_engines
    for period in range(4):
        clock.advance("15m")
        engines = (first, second) if period % 2 else (second, first)
        for engine in engines:
            engine.run_until_idle()

    fires = [at(0, 15), at(0, 30), at(0, 45), at(1)]
    assert run_keys(first) == fires
    assert reports.scheduled() == fires, "each run did its work once"


def test_two_engines_running_at_the_same_time_start_one_instance_per_run(
    two_engines: tuple[Engine, Engine], clock: ManualClock, reports: Reports
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(8):
            clock.advance("15m")
            rounds = [pool.submit(engine.run_until_idle) for engine in two_engines]
            for done in rounds:
                done.result(timeout=30)
        for engine in two_engines:  # whatever a conflict left to the next round
            engine.run_until_idle()

    fires = [at(0, 15) + n * timedelta(minutes=15) for n in range(8)]
    assert run_keys(two_engines[0]) == fires
    assert reports.scheduled() == fires, "each run did its work once"
    for fire in fires:
        log = two_engines[0].store.log(saga_id_for("report", fire.isoformat()))
        assert [e.event.event_type for e in log].count("ReportDue") == 1


@pytest.mark.parametrize(
    ("missed", "late"),
    [
        pytest.param("skip", timedelta(0), id="skip-keeps-the-on-time-run"),
        pytest.param("once", timedelta(seconds=30), id="once-runs-the-latest-missed"),
    ],
)
def test_after_a_long_outage_the_run_is_the_latest_fire_time(
    engine: Engine, clock: ManualClock, missed: str, late: timedelta
) -> None:
    # Every minute, and the engine is down for two days: 2,880 fire times pass.
    engine.register(report(f"{{interval: 1m, missed: {missed}, grace: 10s}}"))
    clock.advance(timedelta(days=2) + late)
    engine.run_until_idle()
    assert run_keys(engine) == [MIDNIGHT + timedelta(days=2)]


def walk_all_fires(schedule: Schedule, after: datetime, now: datetime) -> list[datetime]:
    """``due_runs`` the slow, obvious way: every fire time in ``(after, now]``, then the policy."""
    fires: list[datetime] = []
    fire = schedule.next_fire(after)
    while fire <= now:
        fires.append(fire)
        fire = schedule.next_fire(fire)
    on_time = [f for f in fires if now - f <= schedule.grace]
    missed = [f for f in fires if now - f > schedule.grace]
    if missed and schedule.missed == MissedRuns.ONCE and not on_time:
        return [missed[-1]]
    return on_time


@pytest.mark.parametrize(
    "clock_spec",
    [
        {"interval": "7m"},
        {"cron": "*/15 * * * *"},
        {"cron": "0 9-17 * * 1-5"},
        {"cron": "30 2 1 * *"},
    ],
)
def test_due_runs_agrees_with_walking_every_fire_time(clock_spec: dict[str, str]) -> None:
    rng = random.Random(20300101)
    for _ in range(80):
        schedule = Schedule(
            **clock_spec,
            missed=rng.choice(["once", "skip"]),
            grace=timedelta(seconds=rng.choice([0, 1, 60, 3600, 86_400])),
        )
        # Around a fire time's edge of grace (a tick early, on it, a tick late), or anywhere.
        fire = schedule.next_fire(MIDNIGHT + timedelta(seconds=rng.randrange(40 * 86_400)))
        now = fire + schedule.grace + rng.choice([-TICK, timedelta(0), TICK])
        if rng.random() < 0.3:
            now += timedelta(seconds=rng.randrange(86_400), microseconds=rng.randrange(10**6))
        window = [0, 1, 59, 600, 3600, 86_400, 10 * 86_400]
        after = now - timedelta(seconds=rng.choice(window)) - rng.choice([timedelta(0), TICK])
        expected = walk_all_fires(schedule, after, now)
        assert schedule.due_runs(after, now) == expected, (schedule, after, now)
