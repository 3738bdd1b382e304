"""The demo's simulated participants: inventory and shipping services (bus subscribers) and the
payment handlers. Failures are drawn from a seeded hash of the order id, so a run is repeatable.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sagas.events import Event
from sagas.handlers import HandlerRegistry, StepContext, StepFailed
from sagas.runtime.bus import EventBus

__all__ = ["Participants"]


def _chance(*parts: object) -> float:
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


@dataclass
class Participants:
    """Inventory, payment and shipping. ``fail_rate`` splits evenly between out-of-stock,
    declined payments and undeliverable shipments; ``counts`` tallies what each service did."""

    fail_rate: float = 0.1
    seed: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def subscribe(self, bus: EventBus) -> None:
        """Subscribe the inventory and shipping services to their commands on ``bus``."""
        self._bus = bus
        bus.subscribe("ReserveInventory", self.reserve_inventory)
        bus.subscribe("ReleaseInventory", self.release_inventory)
        bus.subscribe("ShipOrder", self.ship_order)

    def register(self, handlers: HandlerRegistry) -> None:
        """Register the payment handlers."""
        handlers.register(self.take_payment, "take_payment")
        handlers.register(self.refund_payment, "refund_payment")

    def _count(self, what: str) -> None:
        with self._lock:  # subscribers and handlers may run in several threads
            self.counts[what] += 1

    def reserve_inventory(self, command: Event) -> None:
        """Reserve stock, or answer that there is none (a third of the failures)."""
        self._count("reserve")
        if _chance(self.seed, "stock", command.data.get("orderId")) < self.fail_rate / 3:
            self._bus.reply(command, "InventoryReservationFailed", {"reason": "out of stock"})
        else:
            self._bus.reply(command, "InventoryReserved", {"reservationId": command.event_id})

    def release_inventory(self, command: Event) -> None:
        """Put reserved stock back."""
        self._count("release")
        self._bus.reply(command, "InventoryReleased", {})

    def take_payment(self, context: StepContext) -> dict[str, Any]:
        """Charge the order, or decline the card (a third of the failures)."""
        self._count("payment")
        order = context.data.get("orderId")
        if _chance(self.seed, "card", order) < self.fail_rate / 3:
            raise StepFailed(f"card declined for order {order}")
        return {"paymentId": f"pay-{order}"}

    def refund_payment(self, context: StepContext) -> dict[str, Any]:
        """Give the money back."""
        self._count("refund")
        return {"refunded": context.data.get("paymentId")}

    def ship_order(self, command: Event) -> None:
        """Ship it, or find the address undeliverable (a third of the failures)."""
        self._count("ship")
        order = command.data.get("orderId")
        if _chance(self.seed, "address", order) < self.fail_rate / 3:
            self._bus.reply(command, "ShipmentFailed", {"reason": "address undeliverable"})
        else:
            self._bus.reply(command, "OrderShipped", {"trackingId": f"trk-{order}"})
