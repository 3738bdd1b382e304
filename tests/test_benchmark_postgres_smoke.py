"""``benchmarks.postgres_vs_dbos`` runs end to end with tiny sizes and prints positive figures.

Only that it works is checked here: timing is never asserted (benchmarks/README.md). It needs
the PostgreSQL server of this machine, as the ``postgresql`` cases of the suite do (tests/
conftest.py: ``SAGAS_TEST_POSTGRES_URL``, else ``postgresql://postgres@127.0.0.1:5432``); the
engine part always runs, the DBOS part is skipped when ``dbos`` (the ``bench`` extra) is not
installed.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"[0-9][0-9,]*(?:\.[0-9]+)?"
SERVER = os.environ.get("SAGAS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
TINY = [
    "--server",
    SERVER,
    "--sagas",
    "6",
    "--sequential",
    "3",
    "--concurrency",
    "2",
    "--raw-rows",
    "30",
    "--warm-up",
    "2",
]
ENGINE_ROWS = (
    ("engine", "sequential"),
    ("engine, driver", "concurrency 2"),
    ("engine, threads", "concurrency 2"),
    ("engine, driver", "concurrency 2, fail 0.1"),
)
DBOS_ROWS = (
    ("DBOS, main thread", "sequential"),
    ("DBOS, threads", "concurrency 2"),
    ("DBOS, threads", "concurrency 2, fail 0.1"),
)


@pytest.fixture
def benchmark(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The repository's ``benchmarks.postgres_vs_dbos`` (the package is not installed)."""
    monkeypatch.syspath_prepend(str(ROOT))
    for name in [name for name in sys.modules if name.split(".")[0] == "benchmarks"]:
        monkeypatch.delitem(sys.modules, name)
    yield importlib.import_module("benchmarks.postgres_vs_dbos")
    for name in [name for name in sys.modules if name.split(".")[0] == "benchmarks"]:
        sys.modules.pop(name, None)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _table_row(out: str, side: str, scenario: str) -> list[float]:
    """The figures of the table row of ``side`` and ``scenario``."""
    rows = [line for line in out.splitlines() if line.startswith(f"{side:<18} {scenario:<26} ")]
    assert len(rows) == 1, f"no single table row for {side!r}, {scenario!r} in:\n{out}"
    figures = re.findall(NUMBER, rows[0][len(side) + 1 :].replace(scenario, "", 1))
    return [_number(value) for value in figures]


def _check_common(out: str) -> None:
    raw = re.search(rf"raw single-row INSERT \+ COMMIT \(before\): ({NUMBER}) rows/s", out)
    assert raw is not None
    assert _number(raw[1]) > 0
    assert re.search(r"load average [0-9.]+ \(1 min\)", out)
    persisted = re.search(rf"saga_event_log: ({NUMBER}) rows", out)
    assert persisted is not None
    assert _number(persisted[1]) > 0


def test_engine_part_prints_positive_figures(
    benchmark: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert benchmark.main([*TINY, "--skip-dbos"]) == 0
    out = capsys.readouterr().out
    _check_common(out)
    for side, scenario in ENGINE_ROWS:
        # sagas, seconds, sagas/s, steps/s, p50, p99, transitions/s, ÷ raw
        figures = _table_row(out, side, scenario)
        assert len(figures) == 8, figures
        assert figures[0] in (3, 6)
        assert min(figures) > 0
        assert figures[3] >= figures[2]  # at least one step per saga
    assert "DBOS, threads" not in out


def test_with_dbos_prints_positive_figures_and_ratios(
    benchmark: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        import dbos  # noqa: F401
    except ImportError:
        pytest.skip("dbos is not importable (pip install 'sagas-engine[bench]'): DBOS part skipped")
    assert benchmark.main(TINY) == 0
    out = capsys.readouterr().out
    _check_common(out)
    assert re.search(r"DBOS Transact [0-9]+\.[0-9]+", out)
    for side, scenario in ENGINE_ROWS:
        # sagas, seconds, sagas/s, steps/s, p50, p99, ÷ DBOS, transitions/s, ÷ raw
        figures = _table_row(out, side, scenario)
        assert len(figures) == 9, figures
        assert min(figures) > 0
    for side, scenario in DBOS_ROWS:
        figures = _table_row(out, side, scenario)  # sagas, seconds, sagas/s, steps/s, p50, p99
        assert len(figures) == 6, figures
        assert min(figures) > 0
    workflows = re.search(rf"dbos\.workflow_status: ({NUMBER}) SUCCESS", out)
    assert workflows is not None
    assert _number(workflows[1]) == 2 + 3 + 6 + 6  # warm-up, sequential, C=2, fail 0.1
    outputs = re.search(rf"dbos\.operation_outputs: ({NUMBER}) rows", out)
    assert outputs is not None
    assert _number(outputs[1]) > 0
