"""Shared fixtures: a SQLite file, a manual clock, the order saga, a bounded polling helper."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sagas import SagaDefinition, load_definition
from sagas.testing import ManualClock

ROOT = Path(__file__).resolve().parent.parent
"""The repository root (where `definitions/` and `engine/` live)."""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file for this test only."""
    return tmp_path / "sagas.db"


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so."""
    return ManualClock()


@pytest.fixture
def order_definition() -> SagaDefinition:
    """The shipped order fulfilment saga."""
    return load_definition(ROOT / "definitions" / "order_fulfillment.yaml")


Eventually = Callable[..., None]
"""``eventually(predicate, timeout=10.0, interval=0.02)``: see :func:`poll_until`."""


def poll_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds.

    Only for work in another thread or process: an in-process engine is driven to idle instead.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate!r}")
        time.sleep(interval)


@pytest.fixture
def eventually() -> Eventually:
    """The bounded polling helper (a fixture, so no test imports a conftest module)."""
    return poll_until
