"""The order fulfilment saga written in Python; it builds the same model as
``definitions/order_fulfillment.yaml`` (a test proves it).

Run it to print the step graph: ``python -m examples.order_saga``.
"""

from __future__ import annotations

from typing import Any

from sagas import Command, Compensation, RetryPolicy, SagaBuilder, StepContext, to_mermaid

saga = SagaBuilder(
    "order_fulfillment",
    version=1,
    description="Reserve stock, take the payment, ship the order.",
    trigger="OrderCreated",
    correlation="orderId",
    deadline="1h",
    events={
        "OrderCreated": "A customer placed an order.",
        "ReserveInventory": "Command to the inventory service.",
        "InventoryReserved": "",
        "InventoryReservationFailed": "",
        "ReleaseInventory": "Command that undoes a reservation.",
        "InventoryReleased": "",
        "ShipOrder": "Command to the shipping service.",
        "OrderShipped": "",
        "ShipmentFailed": "",
    },
)
handlers = saga.handlers

saga.command(
    "reserve_inventory",
    Command(
        type="ReserveInventory",
        data={"orderId": "orderId", "items": "items"},
        success="InventoryReserved",
        failure="InventoryReservationFailed",
    ),
    timeout="30s",
    retry=RetryPolicy(attempts=3, initial_delay="1s", factor=2, max_delay="10s"),
    compensation=Compensation(
        command=Command(
            type="ReleaseInventory",
            data={"orderId": "orderId", "items": "items"},
            success="InventoryReleased",
        ),
        retry=RetryPolicy(attempts=5),
    ),
)


def refund_payment(context: StepContext) -> dict[str, Any]:
    """Give the money back (the compensation of take_payment)."""
    return {"refunded": context.data.get("amount", 0)}


@saga.handler(
    timeout="10s",
    retry=RetryPolicy(attempts=2),
    compensation=saga.compensate(refund_payment, retry=RetryPolicy(attempts=5)),
)
def take_payment(context: StepContext) -> dict[str, Any]:
    """Charge the customer; raising here fails the step (and compensates the reservation)."""
    return {"paymentId": f"pay-{context.data['orderId']}"}


saga.command(
    "ship",
    Command(
        type="ShipOrder",
        data={"orderId": "orderId", "address": "address"},
        success="OrderShipped",
        failure="ShipmentFailed",
    ),
    timeout="5m",
    pivot=True,
)

order_fulfillment = saga.build()

if __name__ == "__main__":
    print(to_mermaid(order_fulfillment), end="")
