"""The state of a saga instance and of its steps: plain frozen data that ``decide`` folds over."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["InstanceStatus", "SagaState", "StepState", "StepStatus"]


class InstanceStatus(StrEnum):
    """Where a saga instance stands. ``completed``, ``compensated``, ``failed`` and
    ``cancelled`` are final for the engine; ``failed`` means a compensation (or a step after the
    pivot) gave up, ``cancelled`` that an operator stopped it: only an operator moves either on
    (retry, skip, resume)."""

    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the instance has ended."""
        return self not in (InstanceStatus.RUNNING, InstanceStatus.COMPENSATING)


class StepStatus(StrEnum):
    """Where one step stands."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    SKIPPED = "skipped"
    """Not run because its ``when:`` was false."""
    INTERRUPTED = "interrupted"
    """In flight when compensation began: stopped, its late replies ignored; when it may have
    done its work (a handler or command), its compensation runs too."""
    NOT_RUN = "not_run"
    """Never started: compensation cut the saga short before its turn."""

    @property
    def ended(self) -> bool:
        """Whether a step that started is over (a skipped one never started)."""
        return self in (
            StepStatus.SUCCEEDED,
            StepStatus.FAILED,
            StepStatus.COMPENSATED,
            StepStatus.INTERRUPTED,
        )


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepState(_Frozen):
    """One step of an instance.

    ``attempt`` counts tries of the step's action, ``undo_attempt`` tries of its compensation;
    ``retry_due`` is set while a retry (of whichever is running) waits for its back-off timer.
    ``outcome_unknown``: an attempt of its action timed out or was interrupted, so the
    participant may have done the work without the engine knowing; unless the step then
    succeeded, it is compensated when the saga compensates. ``undo_again``: a success reply came
    while its compensation was already under way (the participant may have seen the undo before
    the action): once that compensation ends, it runs once more.
    """

    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    undo_attempt: int = 0
    retry_due: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    outcome_unknown: bool = False
    undo_again: bool = False


class SagaState(_Frozen):
    """One saga instance: its data, its steps, and the order in which steps completed.

    ``completed`` also holds, at the moment they were given up, steps whose outcome is unknown
    (``StepState.outcome_unknown``): compensation undoes the steps in ``completed`` that may have
    done their work, in reverse order. ``interrupted`` is the status a cancelled instance had, to
    which ``resume`` returns it. ``deadline_armed`` counts how often an operator re-armed the
    saga deadline by reviving an ended instance (it numbers the deadline timer)."""

    saga_id: str
    saga_name: str
    definition_version: int
    correlation_key: str
    status: InstanceStatus
    data: dict[str, Any]
    steps: dict[str, StepState]
    completed: tuple[str, ...] = ()
    reason: str | None = None
    interrupted: InstanceStatus | None = None
    deadline_armed: int = 0
    started_at: datetime
    updated_at: datetime

    def step(self, name: str) -> StepState:
        """The state of step ``name``."""
        return self.steps[name]

    @property
    def failed_step(self) -> str | None:
        """The step whose failure stopped the instance: a compensation that gave up first, else
        the step that failed (``None`` when no step failed)."""
        failed = [name for name, s in self.steps.items() if s.status == StepStatus.FAILED]
        undone = [name for name in failed if self.steps[name].undo_attempt > 0]
        return next(iter(undone or failed), None)
