"""The shipped definitions load and the package imports cleanly."""

from pathlib import Path

from sagas import load_definitions

ROOT = Path(__file__).resolve().parent.parent


def test_every_shipped_definition_is_valid() -> None:
    names = {definition.name for definition in load_definitions([ROOT / "definitions"])}
    assert {"order_fulfillment", "travel_booking"} <= names
