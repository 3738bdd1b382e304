"""Which instances a listing, a count or a bulk operator action is about.

One model for every way in: ``sagas list --status failed --saga order_fulfillment``, the
bulk actions' ``--where status=failed --where 'updated>=2h'``, and the HTTP API's query
parameters (``?status=failed&saga=order_fulfillment``), so all three select the same instances.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

from sagas.definitions.durations import parse_duration
from sagas.engine.state import InstanceStatus
from sagas.errors import SagaError

__all__ = ["MAX_VERSION", "WHERE_FIELDS", "InstanceFilter", "WhereError", "parse_where"]

MAX_VERSION = 2**31 - 1
"""The largest definition version there can be (the column is a 32-bit integer)."""


class InstanceFilter(BaseModel):
    """Conditions on instances, all of which must hold (an empty filter selects every one).

    ``status`` admits any of its statuses; ``failed_step`` the instances whose failure
    started at that step (:attr:`SagaState.failed_step`); ``waiting_timer`` those sleeping on a
    retry's back-off or a delay step; the time bounds are ``after <= t < before``.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    status: tuple[InstanceStatus, ...] = ()
    saga: str | None = Field(None, min_length=1, max_length=200)
    version: int | None = Field(None, ge=1, le=MAX_VERSION)
    key: str | None = Field(None, min_length=1, max_length=500, description="Correlation key.")
    failed_step: str | None = Field(None, min_length=1, max_length=200)
    waiting_timer: bool = False
    started_after: AwareDatetime | None = None
    started_before: AwareDatetime | None = None
    updated_after: AwareDatetime | None = None
    updated_before: AwareDatetime | None = None

    @field_validator("started_after", "started_before", "updated_after", "updated_before")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """A bound must exist in UTC, as the store compares (0001-01-01T00:00+14:00 does not)."""
        if value is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                raise ValueError("out of range: no such time in UTC") from None
        return value

    def describe(self) -> str:
        """The conditions as ``field=value`` words (``every instance`` when there are none)."""
        words = []
        for name, value in self.model_dump(exclude_defaults=True).items():
            shown = ",".join(value) if name == "status" else value
            words.append(f"{name}={shown.isoformat() if isinstance(shown, datetime) else shown}")
        return " ".join(words) or "every instance"


class WhereError(SagaError, ValueError):
    """A ``--where`` clause that cannot be understood; the message quotes it."""


_CLAUSE = re.compile(r"^\s*([a-z_-]+)\s*(>=|<=|=|<|>)\s*(.*?)\s*$")
_TIME_FIELDS = ("started", "updated")
WHERE_FIELDS = ("status", "saga", "version", "key", "failed_step", "waiting_timer", *_TIME_FIELDS)
"""What ``--where`` clauses name: ``field=value``; the times take ``>=`` and ``<``."""


def parse_where(clauses: Sequence[str], now: datetime) -> InstanceFilter:
    """An :class:`InstanceFilter` from ``--where`` clauses such as ``status=failed,cancelled``,
    ``saga=order_fulfillment``, ``failed_step=take_payment``, ``updated>=2h`` (two hours
    before ``now``) or ``started<2026-11-26T12:00:00+00:00``.

    :raises WhereError: naming the clause that is wrong and why.
    """
    fields: dict[str, Any] = {}
    given: dict[str, str] = {}  # the clause that set each field
    for clause in clauses:
        match = _CLAUSE.match(clause)
        if match is None:
            raise WhereError(f"--where {clause!r}: expected FIELD=VALUE (fields: {_fields()})")
        name, operator, value = match.groups()
        name = name.replace("-", "_")
        if name not in WHERE_FIELDS:
            raise WhereError(f"--where {clause!r}: unknown field {name!r} (fields: {_fields()})")
        parsed: Any
        if name in _TIME_FIELDS:
            if operator not in (">=", "<"):
                raise WhereError(f"--where {clause!r}: times take >= or < (e.g. {name}>=1h)")
            bound = "after" if operator == ">=" else "before"
            field, parsed = f"{name}_{bound}", _time(clause, value, now)
        elif operator != "=":
            raise WhereError(f"--where {clause!r}: {name} takes = only")
        elif name == "status":
            field = name
            parsed = tuple(part.strip() for part in value.split(",") if part.strip())
        else:
            field, parsed = name, value
        # All clauses must hold: a second, different condition on the same field must not
        # silently replace the first (a bulk action would then act on what the first excluded).
        if field in fields and _differ(fields[field], parsed):
            raise WhereError(
                f"--where {clause!r}: {field} is given twice ({given[field]!r} too); give it once"
            )
        fields[field], given[field] = parsed, clause
    try:
        return InstanceFilter.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'][:1]))}: {error['msg']}" for error in exc.errors()
        )
        raise WhereError(f"--where {' '.join(clauses)!r}: {problems}") from None


def _differ(first: Any, second: Any) -> bool:
    """Whether two values of one field are different conditions (statuses in any order)."""
    if isinstance(first, tuple) and isinstance(second, tuple):
        return set(first) != set(second)
    return bool(first != second)


def _time(clause: str, value: str, now: datetime) -> datetime:
    """An aware time: ISO 8601 (UTC when no offset is given) or a duration before ``now``."""
    try:
        ago: timedelta = parse_duration(value)
    except ValueError:
        pass
    else:
        return now - ago
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise WhereError(
            f"--where {clause!r}: {value!r} is neither a time (2026-11-26T12:00) "
            "nor a duration before now (2h, 30m)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)


def _fields() -> str:
    return ", ".join(WHERE_FIELDS)
