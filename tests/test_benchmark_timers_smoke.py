"""The timers benchmark runs end to end with tiny sizes and prints positive figures.

Only that it works is checked here: timing is never asserted (benchmarks/README.md), so the
aims' verdicts (met / MISSED) are not looked at.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"[0-9][0-9,]*(?:\.[0-9]+)?"


@pytest.fixture
def benchmarks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the repository's ``benchmarks`` package importable (it is not installed)."""
    monkeypatch.syspath_prepend(str(ROOT))
    for name in [name for name in sys.modules if name.split(".")[0] == "benchmarks"]:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [name for name in sys.modules if name.split(".")[0] == "benchmarks"]:
        sys.modules.pop(name, None)


def _figure(out: str, label: str) -> float:
    """The first number after ``label`` at the start of a line of the summary table."""
    found = re.search(rf"^{re.escape(label)} +({NUMBER})", out, re.MULTILINE)
    assert found is not None, f"no figure {label!r} in:\n{out}"
    return float(found[1].replace(",", ""))


@pytest.mark.usefixtures("benchmarks")
def test_timers_benchmark_prints_positive_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    timers = importlib.import_module("benchmarks.timers")
    argv = ["--timers", "300", "--overdue", "40", "--burst", "100", "--spread", "0.2"]
    argv += ["--slots", "20", "--batch-size", "100", "--db-dir", str(tmp_path)]
    assert timers.main(argv) == 0
    out = capsys.readouterr().out
    for label in (
        "timers armed/s (engine rounds)",
        "raw saga_timers rows/s (reference)",
        "worker arming: next due + Waker.arm",
        "lateness p50 (committed − due)",
        "lateness p99 (committed − due)",
        "lateness max (committed − due)",
        "burst drained (last commit − first due)",
        "recovery: worker loop running (first round)",
        "recovery: overdue timers fired",
        "recovery: ready and armed",
    ):
        assert _figure(out, label) > 0
    lateness = re.search(rf"committed − due: p50 ({NUMBER}) ms, p99 ({NUMBER}) ms", out)
    assert lateness is not None
    assert "all 40 overdue timers fired" in out
    assert "load average" in out
    assert not list(tmp_path.glob("*.db*"))  # removed without --keep
