"""The state of a saga instance and of its steps: plain frozen data that ``decide`` folds over."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["InstanceStatus", "SagaState", "StepState", "StepStatus"]


class InstanceStatus(StrEnum):
    """Where a saga instance stands. ``completed``, ``compensated`` and ``failed`` are final;
    ``failed`` means a compensation (or a step after the pivot) gave up: an operator must act."""

    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """Whether the instance has ended."""
        return self in (InstanceStatus.COMPLETED, InstanceStatus.COMPENSATED, InstanceStatus.FAILED)


class StepStatus(StrEnum):
    """Where one step stands."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    SKIPPED = "skipped"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepState(_Frozen):
    """One step of an instance.

    ``attempt`` counts tries of the step's action, ``undo_attempt`` tries of its compensation;
    ``retry_due`` is set while a retry (of whichever is running) waits for its back-off timer.
    """

    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    undo_attempt: int = 0
    retry_due: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


class SagaState(_Frozen):
    """One saga instance: its data, its steps, and the order in which steps completed."""

    saga_id: str
    saga_name: str
    definition_version: int
    correlation_key: str
    status: InstanceStatus
    data: dict[str, Any]
    steps: dict[str, StepState]
    completed: tuple[str, ...] = ()
    reason: str | None = None
    started_at: datetime
    updated_at: datetime

    def step(self, name: str) -> StepState:
        """The state of step ``name``."""
        return self.steps[name]
