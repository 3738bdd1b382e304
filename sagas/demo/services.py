"""The demo's participants as a handler module (``handler_modules = ["sagas.demo.services"]``):
``handlers`` for the payment steps and ``subscribe(bus)`` for the inventory and shipping
services. Its failure rate is the default 10%."""

from __future__ import annotations

from sagas.demo.participants import Participants
from sagas.handlers import HandlerRegistry
from sagas.runtime.bus import EventBus

__all__ = ["handlers", "participants", "subscribe"]

participants = Participants(fail_rate=0.1)
handlers = HandlerRegistry()
participants.register(handlers)


def subscribe(bus: EventBus) -> None:
    """Attach the inventory and shipping services to ``bus``."""
    participants.subscribe(bus)
