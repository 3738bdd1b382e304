"""Who uses which event type, and how: the facts of the saga definitions an AsyncAPI document
is built from (pure: definitions in, uses out).

Each use is one event type in one role of one saga definition version: the trigger it
consumes, a command a step (or a compensation) publishes, a success or failure reply it
consumes, an outside event a ``wait`` step consumes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sagas.definitions.model import ActionSpec, Command, SagaDefinition, Wait

__all__ = ["Role", "Use", "event_uses"]


class Role(StrEnum):
    """What an event type is to a saga."""

    TRIGGER = "trigger"
    COMMAND = "command"
    SUCCESS_REPLY = "success reply"
    FAILURE_REPLY = "failure reply"
    AWAITED = "awaited event"
    AWAITED_FAILURE = "awaited failure event"

    @property
    def sent(self) -> bool:
        """Whether the engine publishes events in this role (else it consumes them)."""
        return self is Role.COMMAND

    @property
    def reply(self) -> bool:
        """Whether events in this role answer a command."""
        return self in (Role.SUCCESS_REPLY, Role.FAILURE_REPLY)


@dataclass(frozen=True)
class Use:
    """``event_type`` in ``role`` for saga ``saga`` version ``version``.

    ``step`` is the step (``None`` for the trigger); ``undo`` marks a compensation's use.
    ``command`` is the command the event is (``Role.COMMAND``) or answers (replies).
    ``correlation`` is the expression that finds the correlation key in the event's data
    (triggers and awaited events); ``description`` comes from the ``events:`` catalogue.
    """

    event_type: str
    role: Role
    saga: str
    version: int
    step: str | None = None
    undo: bool = False
    command: Command | None = None
    correlation: str | None = None
    description: str = ""

    @property
    def where(self) -> str:
        """Where in the saga, in words: ``order_fulfillment v1, step reserve_inventory``."""
        place = f"{self.saga} v{self.version}"
        if self.step is not None:
            place += f", {'compensation of ' if self.undo else ''}step {self.step}"
        return place


def event_uses(definitions: Iterable[SagaDefinition]) -> dict[str, list[Use]]:
    """Every use of every event type by ``definitions``, by event type (sorted), each list in
    the order of the definitions and their steps. A definition given twice counts once (two
    different ones of the same name and version both count: neither is dropped unseen)."""
    uses: defaultdict[str, list[Use]] = defaultdict(list)
    seen: defaultdict[tuple[str, int], list[SagaDefinition]] = defaultdict(list)
    for definition in definitions:
        same = seen[(definition.name, definition.version)]
        if definition in same:
            continue
        same.append(definition)
        for use in _uses_of(definition):
            uses[use.event_type].append(use)
    return {event_type: uses[event_type] for event_type in sorted(uses)}


def _uses_of(definition: SagaDefinition) -> Iterable[Use]:
    catalogue = definition.events or {}

    def use(
        event_type: str,
        role: Role,
        *,
        step: str | None = None,
        undo: bool = False,
        command: Command | None = None,
        correlation: str | None = None,
    ) -> Use:
        spec = catalogue.get(event_type)
        description = spec.description if spec is not None else ""
        return Use(
            event_type,
            role,
            definition.name,
            definition.version,
            step=step,
            undo=undo,
            command=command,
            correlation=correlation,
            description=description,
        )

    yield use(definition.trigger, Role.TRIGGER, correlation=definition.correlation)
    for step in definition.steps:
        specs: list[tuple[ActionSpec, bool]] = [(step, False)]
        if step.compensation is not None:
            specs.append((step.compensation, True))
        for spec, undo in specs:
            action, name = spec.action, step.name
            if isinstance(action, Command):
                exchanged = [(action.type, Role.COMMAND)]
                exchanged += [(reply, Role.SUCCESS_REPLY) for reply in action.success]
                exchanged += [(reply, Role.FAILURE_REPLY) for reply in action.failure]
                for event_type, role in exchanged:
                    yield use(event_type, role, step=name, undo=undo, command=action)
            elif isinstance(action, Wait):
                correlation = action.correlation or definition.correlation
                awaited = [(event, Role.AWAITED) for event in action.event]
                awaited += [(event, Role.AWAITED_FAILURE) for event in action.failure]
                for event_type, role in awaited:
                    yield use(event_type, role, step=name, undo=undo, correlation=correlation)
