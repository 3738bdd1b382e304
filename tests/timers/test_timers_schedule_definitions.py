"""Invalid schedules are refused with problems that name the field; valid ones read back."""

from __future__ import annotations

import pytest

from sagas import DefinitionError, parse_definition
from sagas.definitions.schedule import MissedRuns

DEFINITION = """\
name: report
trigger: ReportDue
correlation: {correlation}
schedule:
{schedule}
steps:
  - name: work
    handler: work
    pivot: true
"""


def problems(schedule: str, correlation: str = "scheduledAt") -> list[str]:
    """The problems of the report saga with ``schedule`` (indented YAML lines), as printed."""
    text = DEFINITION.format(correlation=correlation, schedule=schedule)
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text, "report.yaml")
    assert str(caught.value).startswith("invalid saga definition")
    return [str(problem) for problem in caught.value.problems]


def test_a_valid_schedule_is_accepted_with_its_defaults() -> None:
    text = DEFINITION.format(correlation="scheduledAt", schedule="  cron: '*/15 * * * *'")
    schedule = parse_definition(text).schedule
    assert schedule is not None
    assert (schedule.cron, schedule.interval, schedule.missed) == (
        "*/15 * * * *",
        None,
        MissedRuns.ONCE,
    )


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        pytest.param(
            "  cron: '61 * * * *'",
            "report.yaml:5: schedule.cron: Error validating expression '61': the last value "
            "(61) is higher than the maximum value (59)",
            id="minute-out-of-range",
        ),
        pytest.param(
            "  cron: '*/15 * * *'",
            "report.yaml:5: schedule.cron: Wrong number of fields; got 4, expected 5",
            id="four-fields",
        ),
        pytest.param(
            "  cron: '*/15 * * * *'\n  interval: 15m",
            "report.yaml:4: schedule: needs exactly one of cron, interval",
            id="cron-and-interval",
        ),
        pytest.param(
            "  missed: skip",
            "report.yaml:4: schedule: needs exactly one of cron, interval",
            id="neither",
        ),
        pytest.param(
            "  interval: 0s",
            "report.yaml:4: schedule: interval must be longer than 0s",
            id="interval-zero",
        ),
        pytest.param(
            "  interval: 15m\n  missed: sometimes",
            "report.yaml:6: schedule.missed: must be 'once' or 'skip'",
            id="unknown-missed-policy",
        ),
        pytest.param(
            "  intervall: 15m",
            "report.yaml:5: schedule.intervall: unknown field (did you mean 'interval'?)",
            id="misspelt-field",
        ),
    ],
)
def test_an_invalid_schedule_is_refused_naming_the_field(schedule: str, expected: str) -> None:
    assert problems(schedule) == [expected]


@pytest.mark.parametrize(
    ("correlation", "finds"),
    [
        pytest.param("orderId", "'orderId' finds None", id="no-such-key"),
        pytest.param(
            "'@'",
            "'@' finds {'region': 'eu', 'scheduledAt': '2030-01-01T00:00:00+00:00'}",
            id="an-object",
        ),
    ],
)
def test_a_correlation_that_finds_no_key_in_the_scheduled_data_is_refused_at_the_schedule(
    correlation: str, finds: str
) -> None:
    [problem] = problems("  interval: 15m\n  data: {region: eu}", correlation=correlation)
    assert problem == (
        "report.yaml:4: schedule: a scheduled saga's correlation must find a key in the "
        f"schedule's data (e.g. `correlation: scheduledAt`); {finds}"
    )


def test_a_correlation_on_the_schedules_own_data_is_accepted() -> None:
    schedule = "  interval: 15m\n  data: {region: eu}"
    text = DEFINITION.format(correlation="region", schedule=schedule)
    assert parse_definition(text).correlation == "region"
