"""The Python builder makes the same models as YAML, and its problems name the builder's lines."""

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sagas import (
    Command,
    Compensation,
    DefinitionError,
    HandlerRegistry,
    RetryPolicy,
    SagaBuilder,
    StepContext,
    Wait,
    load_definition,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).read_text(encoding="utf-8").splitlines()


def marked(marker: str) -> int:
    """The line of this file that ends with the comment ``# line: <marker>``."""
    [line] = [n for n, text in enumerate(SOURCE, 1) if text.endswith(f"# line: {marker}")]
    return line


def refund(context: StepContext) -> None:
    """A compensation handler."""


@pytest.fixture
def order_saga_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(ROOT))
    for name in ("examples.order_saga", "examples"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield importlib.import_module("examples.order_saga")
    for name in ("examples.order_saga", "examples"):
        sys.modules.pop(name, None)


def test_python_order_saga_builds_the_same_model_as_the_yaml(
    order_saga_module: ModuleType,
) -> None:
    from_yaml = load_definition(ROOT / "definitions" / "order_fulfillment.yaml")
    assert order_saga_module.order_fulfillment == from_yaml


def test_python_order_saga_registers_its_step_and_compensation_handlers(
    order_saga_module: ModuleType,
) -> None:
    assert dict(order_saga_module.handlers) == {
        "take_payment": order_saga_module.take_payment,
        "refund_payment": order_saga_module.refund_payment,
    }
    assert order_saga_module.handlers is order_saga_module.saga.handlers


def test_builder_problems_name_the_line_of_each_offending_call() -> None:
    saga = SagaBuilder("2nd", trigger="Started", correlation="id")  # line: saga
    saga.command(  # line: reserve
        "reserve",
        Command(type="Reserve", success="Reserved"),
    )

    @saga.handler(  # line: pay
        pivot=True,
        compensation=saga.compensate(refund),
    )
    def pay(context: StepContext) -> None:
        return None

    saga.delay("nap", "5s", after=["nope"])  # line: nap
    with pytest.raises(DefinitionError) as raised:
        saga.build()
    assert [str(problem) for problem in raised.value.problems] == [
        f"{__file__}:{marked('saga')}: name: '2nd' is not a valid name: "
        "use only ASCII letters, digits, `_`, `.` or `-`, starting with an ASCII letter or `_`",
        f"{__file__}:{marked('reserve')}: steps[0]: step 'reserve' has no compensation, "
        "but a later failure would have to undo it; add a compensation, "
        "or mark it `pivot: true` if it is the point of no return",
        f"{__file__}:{marked('pay')}: steps[1].compensation: never runs: "
        "step 'pay' is a pivot, which is never compensated",
        f"{__file__}:{marked('pay')}: steps[1].pivot: the pivot must be on every path, "
        "but 'nap' can run in parallel with it",
        f"{__file__}:{marked('nap')}: steps[2].after[0]: unknown step 'nope'",
    ]


def test_a_bare_decorator_names_its_own_line_and_the_function_name() -> None:
    saga = SagaBuilder("bare", trigger="Started", correlation="id")

    @saga.handler  # line: bare
    def charge(context: StepContext) -> None:
        return None

    saga.wait("approve", Wait(event="Approved"))
    with pytest.raises(DefinitionError) as raised:
        saga.build()
    assert [str(problem) for problem in raised.value.problems] == [
        f"{__file__}:{marked('bare')}: steps[0]: step 'charge' has no compensation, "
        "but a later failure would have to undo it; add a compensation, "
        "or mark it `pivot: true` if it is the point of no return",
    ]
    assert saga.handlers["charge"] is charge


def test_an_unregistered_compensation_handler_names_the_step_call() -> None:
    saga = SagaBuilder("ghostly", trigger="Started", correlation="id")
    saga.command(  # line: ghost
        "reserve",
        Command(type="Reserve"),
        compensation=Compensation(handler="ghost"),
        pivot=False,
    )
    with pytest.raises(DefinitionError) as raised:
        saga.build()
    assert [str(problem) for problem in raised.value.problems] == [
        f"{__file__}:{marked('ghost')}: steps[0].compensation.handler: "
        "no handler is registered as 'ghost'"
    ]


def test_builder_refuses_a_zero_timeout_and_an_empty_condition_like_yaml_does() -> None:
    saga = SagaBuilder("strict", trigger="Started", correlation="id")
    saga.wait("approve", Wait(event="Approved"), timeout=0)  # line: zero
    saga.wait("confirm", Wait(event="Confirmed"), when="")  # line: empty
    with pytest.raises(DefinitionError) as raised:
        saga.build()
    assert [str(problem) for problem in raised.value.problems] == [
        f"{__file__}:{marked('zero')}: steps[0]: timeout must be longer than 0s",
        f"{__file__}:{marked('empty')}: steps[1].when: an expression cannot be empty",
    ]


def test_handlers_of_steps_and_compensations_are_registered_in_the_builder() -> None:
    saga = SagaBuilder("registered", trigger="Started", correlation="id")

    def undo_charge(context: StepContext) -> None:
        return None

    @saga.handler(compensation=saga.compensate(undo_charge, name="refund_charge"))
    def charge(context: StepContext) -> dict[str, Any]:
        return {"charged": True}

    @saga.handler("ship_it", pivot=True)
    def ship(context: StepContext) -> None:
        return None

    assert dict(saga.handlers) == {"refund_charge": undo_charge, "charge": charge, "ship_it": ship}
    definition = saga.build()
    assert definition.step("charge").compensation == Compensation(handler="refund_charge")
    assert definition.step("ship_it").handler == "ship_it"


def test_a_builder_registers_into_a_registry_it_is_given() -> None:
    registry = HandlerRegistry({"refund": refund})
    saga = SagaBuilder("shared", trigger="Started", correlation="id", handlers=registry)

    @saga.handler(compensation=Compensation(handler="refund"))
    def charge(context: StepContext) -> None:
        return None

    assert saga.handlers is registry
    assert dict(registry) == {"refund": refund, "charge": charge}
    assert saga.build().step("charge").handler == "charge"


def test_python_travel_booking_builds_the_same_model_as_the_yaml() -> None:
    saga = SagaBuilder(
        "travel_booking",
        description="Book flight, hotel and car together, or none of them.",
        trigger="TripRequested",
        correlation="tripId",
        deadline="3d",
    )
    cancel_retry = RetryPolicy(attempts=10, initial_delay="5s", max_delay="10m")
    saga.command(
        "book_flight",
        Command(
            type="BookFlight",
            data={"tripId": "tripId", "flight": "flight"},
            success="FlightBooked",
            failure="FlightUnavailable",
        ),
        after=[],
        timeout="1m",
        retry=RetryPolicy(attempts=3, initial_delay="2s"),
        compensation=Compensation(
            command=Command(
                type="CancelFlight", data={"tripId": "tripId"}, success="FlightCancelled"
            ),
            retry=cancel_retry,
        ),
    )
    saga.command(
        "book_hotel",
        Command(
            type="BookHotel",
            data={"tripId": "tripId", "hotel": "hotel", "nights": "nights"},
            success="HotelBooked",
            failure=["HotelUnavailable", "HotelRejected"],
        ),
        after=[],
        timeout="1m",
        compensation=Compensation(
            command=Command(
                type="CancelHotel", data={"tripId": "tripId"}, success="HotelCancelled"
            ),
            retry=cancel_retry,
        ),
    )

    def cancel_car(context: StepContext) -> None:
        return None

    @saga.handler(
        after=[],
        when="car != null",
        timeout=30,
        compensation=saga.compensate(cancel_car, retry=RetryPolicy(attempts=5)),
    )
    def book_car(context: StepContext) -> None:
        return None

    saga.wait(
        "manager_approval",
        Wait(event="TripApproved", failure="TripRejected", correlation="tripId"),
        after=["book_flight", "book_hotel", "book_car"],
        when="total > `2000`",
        timeout="P2D",
    )

    @saga.handler(pivot=True, timeout="30s", retry=RetryPolicy(attempts=3))
    def charge_customer(context: StepContext) -> None:
        return None

    saga.command(
        "send_itinerary",
        Command(
            type="SendItinerary",
            data={"tripId": "tripId", "email": "email"},
            success="ItinerarySent",
        ),
        retry=RetryPolicy(attempts=20, initial_delay="10s", factor=2, max_delay="1h"),
    )
    assert saga.build() == load_definition(ROOT / "definitions" / "travel_booking.yaml")
