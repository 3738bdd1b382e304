"""Which saga instances an incoming event concerns (pure: keys and ids, no database)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

from sagas.definitions.model import Command, SagaDefinition, Wait
from sagas.engine.decide import CorrelationError, correlation_key, saga_id_for
from sagas.events import Event

__all__ = ["Route", "Router"]


class Route(NamedTuple):
    """The event goes to instance ``saga_id``; ``starts`` is the definition it may start."""

    saga_id: str
    starts: SagaDefinition | None = None


class Router:
    """Routes events by saga id (replies, internal events), trigger type (new instances) and
    awaited event type (``wait`` steps, correlated by their expression)."""

    def __init__(self, definitions: Iterable[SagaDefinition] = ()) -> None:
        self._triggers: defaultdict[str, list[SagaDefinition]] = defaultdict(list)
        self._waits: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
        self._replies: dict[str, frozenset[str]] = {}  # by saga name: its latest version's
        self._reply_types: frozenset[str] = frozenset()
        for definition in definitions:
            self.add(definition)

    def add(self, definition: SagaDefinition) -> None:
        """Route to ``definition`` (the latest version of its name) from now on."""
        for routes in self._triggers.values():
            routes[:] = [d for d in routes if d.name != definition.name]
        for waits in self._waits.values():
            waits[:] = [w for w in waits if w[0] != definition.name]
        self._triggers[definition.trigger].append(definition)
        replies: set[str] = set()
        for step in definition.steps:
            for spec in (step, step.compensation):
                if spec is not None and isinstance(spec.action, Wait):
                    expression = spec.action.correlation or definition.correlation
                    for event_type in (*spec.action.event, *spec.action.failure):
                        self._waits[event_type].append((definition.name, expression))
                elif spec is not None and isinstance(spec.action, Command):
                    replies.update(spec.action.success, spec.action.failure)
        self._replies[definition.name] = frozenset(replies)
        self._reply_types = frozenset().union(*self._replies.values())

    def knows(self, event_type: str) -> bool:
        """Whether a saga is triggered by, waits for, or expects a reply of ``event_type``."""
        return (
            bool(self._triggers.get(event_type))
            or bool(self._waits.get(event_type))
            or event_type in self._reply_types
        )

    def unknown(self, event: Event) -> list[str]:
        """Why ``event``, which went nowhere, is a dead letter: an event without a ``sagaId``
        whose type no saga knows (:meth:`knows`). Empty when it is not one: an event of a known
        type that concerns no instance (no instance waits for it now) is absorbed."""
        if event.saga_id is not None or self.knows(event.event_type):
            return []
        return [
            f"no registered saga is triggered by, waits for or expects a reply of type "
            f"{event.event_type!r}, and nothing subscribes to it"
        ]

    def routes(self, event: Event) -> tuple[list[Route], list[str]]:
        """The instances ``event`` goes to, and the problems met on the way (for dead letters).

        An event with a ``sagaId`` goes to that instance only.
        """
        if event.saga_id is not None:
            return [Route(event.saga_id)], []
        routes: list[Route] = []
        problems: list[str] = []
        for definition in self._triggers.get(event.event_type, ()):
            try:
                key = correlation_key(definition.correlation, event.data)
            except CorrelationError as exc:
                problems.append(f"saga {definition.name!r}: {exc}")
                continue
            routes.append(Route(saga_id_for(definition.name, key), starts=definition))
        for name, expression in self._waits.get(event.event_type, ()):
            try:
                key = correlation_key(expression, event.data)
            except CorrelationError:
                continue  # not every event of an awaited type belongs to a saga
            routes.append(Route(saga_id_for(name, key)))
        return routes, problems
