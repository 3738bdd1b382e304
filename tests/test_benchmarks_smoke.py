"""The benchmark programs run end to end with tiny sizes and print positive figures.

Only that they work is checked here: timing is never asserted (benchmarks/README.md).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
NUMBER = r"[0-9][0-9,]*(?:\.[0-9]+)?"


@pytest.fixture
def benchmarks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the repository's ``benchmarks`` package importable (it is not installed)."""
    monkeypatch.syspath_prepend(str(ROOT))
    names = [name for name in sys.modules if name.split(".")[0] == "benchmarks"]
    for name in names:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [name for name in sys.modules if name.split(".")[0] == "benchmarks"]:
        sys.modules.pop(name, None)


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.{name}")


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _figures(line: str) -> list[float]:
    return [_number(value) for value in re.findall(NUMBER, line)]


@pytest.mark.usefixtures("benchmarks")
def test_sqlite_throughput_prints_positive_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    throughput = _module("sqlite_throughput")
    argv = ["--sagas", "20", "--raw-rows", "200", "--sequential", "10", "--db-dir", str(tmp_path)]
    assert throughput.main(argv) == 0
    out = capsys.readouterr().out
    for scenario in (
        "concurrent, fail rate 0.0",
        "concurrent, fail rate 0.2",
        "sequential, fail rate 0.0",
    ):
        [row] = [line for line in out.splitlines() if line.startswith(f"{scenario} ")]
        sagas, transitions, seconds, per_saga, per_transition, ratio = _figures(
            row[len(scenario) :]
        )
        assert sagas in (20, 10)
        assert transitions >= sagas
        assert min(seconds, per_saga, per_transition, ratio) > 0
    raw = re.search(rf"raw single-row INSERT \+ COMMIT \(before\): ({NUMBER}) rows/s", out)
    assert raw is not None
    assert _number(raw[1]) > 0
    latency = re.search(rf"p50 ({NUMBER}) ms, p99 ({NUMBER}) ms", out)
    assert latency is not None
    assert _number(latency[1]) > 0
    assert _number(latency[2]) > 0
    assert "DBOS Transact 3.4 on SQLite here: ~72 sagas/s" in out


@pytest.mark.usefixtures("benchmarks")
def test_instance_scaling_prints_positive_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scaling = _module("instance_scaling")
    argv = ["--small", "200", "--large", "2000", "--sagas", "20", "--rounds", "1"]
    assert scaling.main([*argv, "--db-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "preloaded 2,000 of 2,000 instances" in out
    for size in ("200", "2,000"):
        row = re.search(rf"^ +{size} +[0-9]+ +[0-9]+ +{NUMBER}$", out, re.MULTILINE)
        assert row is not None
        instances, sagas, events, micros = _figures(row[0])
        assert (instances, sagas) == (_number(size), 20)
        assert events >= sagas
        assert micros > 0
    ratio = re.search(rf"per-event cost ratio large/small: ({NUMBER})", out)
    assert ratio is not None
    assert _number(ratio[1]) > 0
    assert not list(tmp_path.glob("scaling-*.db"))  # removed without --reuse


@pytest.mark.usefixtures("benchmarks")
def test_instance_scaling_reuses_preloaded_files_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scaling = _module("instance_scaling")
    argv = ["--small", "50", "--large", "100", "--sagas", "5", "--rounds", "1"]
    argv += ["--db-dir", str(tmp_path), "--reuse"]
    assert scaling.main(argv) == 0
    assert "preloading 100 instances" in capsys.readouterr().out
    assert scaling.main(argv) == 0
    assert "reusing" in capsys.readouterr().out
    assert (tmp_path / "scaling-100.db").exists()
