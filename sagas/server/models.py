"""The HTTP API's request and response documents (camelCase on the wire, like events)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from sagas.engine.state import InstanceStatus
from sagas.events import data_problem
from sagas.operations import ActionResult, Outcome
from sagas.operations.documents import InstanceSummary
from sagas.store.filters import InstanceFilter

__all__ = [
    "ActionBody",
    "ActionReport",
    "BulkActionBody",
    "BulkReport",
    "DefinitionSummary",
    "InstancePage",
    "InstanceSummary",
]


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class InstancePage(_Wire):
    """A page of instances, most recently updated first, and how many match in all."""

    total: int
    limit: int
    offset: int
    items: list[InstanceSummary]


class ActionBody(_Wire):
    """An operator action on one instance."""

    reason: str | None = Field(None, max_length=2000, description="Why (recorded in the log).")
    step: str | None = Field(
        None, min_length=1, max_length=200, description="retry: only this step; skip: required."
    )
    data: dict[str, Any] = Field(
        default_factory=dict, description="skip: merged into the saga's data."
    )
    actor: str | None = Field(
        None, min_length=1, max_length=200, description="Who acts (default: api)."
    )
    dry_run: bool = Field(False, description="Decide and report, but change nothing.")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        """No NUL character in any string (PostgreSQL cannot hold one), no NaN or infinity
        (not JSON: they would be stored as null), and no deeper nesting than the store reads
        back (the instance could no longer be read)."""
        problem = _unstorable(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class BulkActionBody(ActionBody):
    """An operator action on every instance a filter selects (at least one condition)."""

    where: InstanceFilter

    @model_validator(mode="after")
    def _selects_something(self) -> BulkActionBody:
        if self.where == InstanceFilter():
            raise ValueError('where: give at least one condition (e.g. {"status": ["failed"]})')
        return self


def _unstorable(body: Any) -> str | None:
    """Where in a request body a value is that cannot be stored, and why: what
    :func:`sagas.events.data_problem` refuses, and NUL characters (kept out of the database)."""
    problem = data_problem(body, "body")
    if problem is not None:
        return problem
    pending: list[tuple[str, Any]] = [("body", body)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str) and "\x00" in value:
            return f"{where}: must not contain NUL characters (\\u0000)"
        if isinstance(value, dict):
            for key, item in value.items():
                pending.append((f"{where}.{key}", item))
                if isinstance(key, str) and "\x00" in key:
                    return f"{where}: a key must not contain NUL characters (\\u0000)"
        elif isinstance(value, list):
            pending.extend((f"{where}.{n}", item) for n, item in enumerate(value))
    return None


class ActionReport(_Wire):
    """What an action did to one instance."""

    saga_id: str
    outcome: Outcome
    note: str
    status_before: InstanceStatus | None
    status_after: InstanceStatus | None
    event_id: str | None

    @classmethod
    def of(cls, result: ActionResult) -> ActionReport:
        return cls(
            saga_id=result.saga_id,
            outcome=result.outcome,
            note=result.note,
            status_before=result.status_before,
            status_after=result.status_after,
            event_id=result.event_id,
        )


class BulkReport(_Wire):
    """Per instance, what a bulk action really did; ``summary`` counts outcomes."""

    action: str
    dry_run: bool
    summary: dict[str, int]
    results: list[ActionReport]


class DefinitionSummary(_Wire):
    """One registered version of a saga definition."""

    name: str
    version: int
    description: str | None
    trigger: str
    steps: list[str]
    mermaid: str
