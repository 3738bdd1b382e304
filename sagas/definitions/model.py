"""The saga definition as data: frozen pydantic models, the single source of the YAML format.

The YAML format is exactly these models (``extra`` keys are refused), so a field path in a
validation error is the path a user sees in the file.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sagas.definitions.durations import Duration
from sagas.definitions.expressions import Expression, evaluate
from sagas.definitions.schedule import Schedule

__all__ = [
    "Action",
    "ActionSpec",
    "Command",
    "Compensation",
    "Delay",
    "EventSpec",
    "HandlerCall",
    "RetryPolicy",
    "SagaDefinition",
    "Step",
    "StepKind",
    "Wait",
]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
EVENT_TYPE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.:/-]*$"

NAME_RULE = "ASCII letters, digits, `_`, `.` or `-`, starting with an ASCII letter or `_`"
""":data:`NAME_PATTERN` in words (saga, step and handler names)."""
EVENT_TYPE_RULE = (
    "ASCII letters, digits, `_`, `.`, `:`, `/` or `-`, starting with an ASCII letter or `_`"
)
""":data:`EVENT_TYPE_PATTERN` in words."""

_RULES = {NAME_PATTERN: ("name", NAME_RULE), EVENT_TYPE_PATTERN: ("event type", EVENT_TYPE_RULE)}


def pattern_problem(value: object, pattern: str) -> str:
    """Why ``value`` does not fit ``pattern`` (:data:`NAME_PATTERN` or
    :data:`EVENT_TYPE_PATTERN`), in words: the value (shortened, escaped) and the rule."""
    what, rule = _RULES.get(pattern, ("value", f"the pattern {pattern}"))
    shown = repr(value)
    if isinstance(value, str) and len(value) > 60:
        shown = repr(value[:57]) + "…"
    return f"{shown} is not a valid {what}: use only {rule}"


MAX_NAME_LENGTH = 200
"""The longest name or event type (characters)."""

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)]
EventType = Annotated[str, Field(pattern=EVENT_TYPE_PATTERN, max_length=MAX_NAME_LENGTH)]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


EventTypes = Annotated[
    tuple[EventType, ...],
    BeforeValidator(_as_list),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": EVENT_TYPE_PATTERN},
                {"type": "array", "items": {"type": "string", "pattern": EVENT_TYPE_PATTERN}},
            ]
        }
    ),
]
"""One event type or a list of them (``failure: PaymentDeclined`` or ``failure: [A, B]``)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepKind(StrEnum):
    """What a step (or a compensation) does."""

    HANDLER = "handler"
    COMMAND = "command"
    WAIT = "wait"
    DELAY = "delay"


class RetryPolicy(_Frozen):
    """How often an action is tried and how long to wait in between.

    The n-th retry waits ``min(initial_delay * factor**(n-1), max_delay)``, spread by
    ``±jitter`` (a fraction of that delay).
    """

    attempts: int = Field(1, ge=1, description="Tries in all, the first included.")
    initial_delay: Duration = timedelta(seconds=1)
    factor: float = Field(2.0, ge=1.0, le=100.0)
    max_delay: Duration = timedelta(minutes=5)
    jitter: float = Field(0.1, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _delays_ordered(self) -> RetryPolicy:
        if self.max_delay < self.initial_delay:
            raise ValueError("max_delay must not be shorter than initial_delay")
        return self

    def delay_before(self, attempt: int) -> timedelta:
        """The back-off before try number ``attempt`` (2 is the first retry), without jitter."""
        if attempt <= 1:
            return timedelta()
        return min(self.initial_delay * self.factor ** (attempt - 2), self.max_delay)


class Command(_Frozen):
    """Publish the command event ``type``, then wait for a ``success`` or ``failure`` reply."""

    type: EventType
    data: dict[str, Expression] | None = Field(
        None,
        description="Command data: output key -> expression over the saga data. "
        "Omitted: the whole saga data is sent.",
    )
    success: EventTypes = Field(
        (),
        description="Reply event type(s) that mean the command worked. Omitted: the step is "
        "done once the command is published (fire and forget).",
    )
    failure: EventTypes = Field((), description="Reply event type(s) that mean it failed.")

    @model_validator(mode="after")
    def _replies(self) -> Command:
        if self.failure and not self.success:
            raise ValueError("a command with failure replies needs success replies too")
        return self


class Wait(_Frozen):
    """Wait for an outside event (an approval, a payment callback) correlated to the saga."""

    event: EventTypes = Field(min_length=1, description="Event type(s) that complete the step.")
    failure: EventTypes = Field((), description="Event type(s) that fail the step.")
    correlation: Expression | None = Field(
        None,
        description="Expression over the awaited event's data giving the saga's correlation key. "
        "Omitted: the saga's own correlation expression.",
    )


class HandlerCall(_Frozen):
    """The ``handler`` action, as returned by :attr:`ActionSpec.action`."""

    name: Name


class Delay(_Frozen):
    """The ``delay`` action (a durable sleep), as returned by :attr:`ActionSpec.action`."""

    duration: Duration


Action = HandlerCall | Command | Wait | Delay


class ActionSpec(_Frozen):
    """Exactly one action (``handler``, ``command``, ``wait`` or ``delay``) with its timing."""

    handler: Name | None = Field(None, description="Name of a registered Python handler.")
    command: Command | None = None
    wait: Wait | None = None
    delay: Duration | None = Field(None, description="Sleep this long, durably.")
    timeout: Duration | None = Field(None, description="No outcome within this time is a failure.")
    retry: RetryPolicy = RetryPolicy()

    @model_validator(mode="after")
    def _one_action(self) -> ActionSpec:
        given = [kind.value for kind in StepKind if getattr(self, kind.value) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"needs exactly one of handler, command, wait, delay (found: {found})")
        # By value, not by the fields given: a stored definition's JSON spells out the defaults.
        if self.delay is not None and (self.timeout is not None or self.retry != RetryPolicy()):
            raise ValueError("a delay has no timeout or retry")
        if self.timeout is not None and self.timeout <= timedelta():
            raise ValueError("timeout must be longer than 0s")
        return self

    @property
    def kind(self) -> StepKind:
        """Which action this is."""
        for kind in StepKind:
            if getattr(self, kind.value) is not None:
                return kind
        raise AssertionError("validated to hold one action")

    @property
    def action(self) -> Action:
        """The action as one typed value, for ``match`` statements."""
        if self.handler is not None:
            return HandlerCall(name=self.handler)
        if self.delay is not None:
            return Delay(duration=self.delay)
        action = self.command or self.wait
        assert action is not None, "validated to hold one action"
        return action


class Compensation(ActionSpec):
    """The action that semantically undoes a completed step, with its own retry policy."""


class Step(ActionSpec):
    """One unit of work of a saga."""

    name: Name
    description: str = ""
    after: tuple[Name, ...] | None = Field(
        None,
        description="Steps that must be done before this one starts. Omitted: the step written "
        "before it (the first step starts with the saga); [] starts with the saga.",
    )
    when: Expression | None = Field(
        None, description="Expression over the saga data; when false the step is skipped."
    )
    pivot: bool = Field(
        False, description="The point of no return: steps after it are retried, never undone."
    )
    compensation: Compensation | None = None


class EventSpec(_Frozen):
    """An event type the saga exchanges (listed to catch misspelt event names)."""

    description: str = ""


class SagaDefinition(_Frozen):
    """A saga: the trigger that starts it, how instances are keyed, and its steps.

    Build one with :func:`sagas.load_definition` (YAML) or :class:`sagas.SagaBuilder` (Python);
    both validate the step graph too, which constructing the model directly does not.
    """

    name: Name
    version: int = Field(1, ge=1)
    description: str = ""
    trigger: EventType = Field(description="Event type that starts an instance.")
    correlation: Expression = Field(
        description="Expression over the trigger event's data giving the correlation key."
    )
    deadline: Duration | None = Field(None, description="The whole saga must end within this.")
    events: dict[EventType, EventSpec] | None = Field(
        None,
        description="Event types the saga exchanges. When given, every event type the saga "
        "names must be listed here.",
    )
    schedule: Schedule | None = Field(
        None, description="Also start instances on a clock (cron or interval)."
    )
    steps: tuple[Step, ...] = Field(min_length=1)

    @field_validator("schedule")
    @classmethod
    def _schedule_correlates(
        cls, schedule: Schedule | None, info: ValidationInfo
    ) -> Schedule | None:
        # Reported at `schedule` (`correlation` comes first, so it is known by now), and by the
        # rule the engine keys instances with: a non-empty string or a number.
        correlation = info.data.get("correlation")
        if schedule is None or correlation is None:
            return schedule
        key = evaluate(correlation, schedule.trigger_data(datetime(2030, 1, 1, tzinfo=UTC)))
        if isinstance(key, bool) or not isinstance(key, str | int | float) or key == "":
            raise ValueError(
                "a scheduled saga's correlation must find a key in the schedule's data "
                f"(e.g. `correlation: scheduledAt`); {correlation!r} finds {key!r}"
            )
        return schedule

    def step(self, name: str) -> Step:
        """The step called ``name``.

        :raises KeyError: when there is none.
        """
        try:
            return self.step_map[name]
        except KeyError:
            raise KeyError(f"saga {self.name!r} has no step {name!r}") from None

    @cached_property
    def step_map(self) -> dict[str, Step]:
        """Steps by name."""
        return {step.name: step for step in self.steps}

    def dependencies(self, step: Step) -> tuple[str, ...]:
        """Names of the steps ``step`` waits for (the written order when it has no ``after``)."""
        return self.dependency_map[step.name]

    @cached_property
    def dependency_map(self) -> dict[str, tuple[str, ...]]:
        """Step name -> names of the steps it waits for."""
        dependencies: dict[str, tuple[str, ...]] = {}
        previous: tuple[str, ...] = ()
        for step in self.steps:
            dependencies[step.name] = step.after if step.after is not None else previous
            previous = (step.name,)
        return dependencies
