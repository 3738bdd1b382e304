"""A bounded slice of the fuzzing campaign (``make fuzz`` runs the whole of it): definitions
generated from the JSON Schema and mutated from the shipped files, events through every way in
(``Event.from_json``, the bus, ``sagas publish``), and the HTTP API's request bodies. Nothing
may crash, print a traceback or store anything from a refused input."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the fuzz package, at the root

from fuzz.definitions import fuzz_generated, fuzz_mutants
from fuzz.events import fuzz_events, fuzz_http_bodies
from fuzz.outcomes import Tally

PARTS: dict[str, Callable[[Path], Tally]] = {
    "definitions from the schema": lambda tmp: fuzz_generated(60, seed=1, workdir=tmp),
    "mutated definitions": lambda tmp: fuzz_mutants(60, seed=1, workdir=tmp, processes=0),
    "events": lambda tmp: fuzz_events(400, seed=1, workdir=tmp, processes=1),
    "API request bodies": lambda tmp: fuzz_http_bodies(60, seed=1, workdir=tmp),
}


@pytest.mark.parametrize("part", list(PARTS))
def test_a_slice_of_the_campaign_crashes_nothing(part: str, tmp_path: Path) -> None:
    tally = PARTS[part](tmp_path)

    assert tally.inputs > 0
    assert tally.crash_count == 0, tally.report()
