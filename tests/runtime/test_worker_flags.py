"""``sagas worker --batch-size N --poll-interval DURATION``: the flags override the
configuration file, and bad values are refused naming the flag, before the engine starts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from runtime_checks import ROOT

import sagas.cli.runtime
from sagas.cli import cli
from sagas.config import ConfigError, EngineConfig, load_config
from sagas.runtime.engine import Engine
from sagas.runtime.setup import build_engine

DEFINITION = str(ROOT / "definitions" / "order_fulfillment.yaml")


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[tuple[EngineConfig, Engine]]:
    """The configuration and engine of every worker the test starts (the real build_engine,
    watched)."""
    seen: list[tuple[EngineConfig, Engine]] = []

    def watched(config: EngineConfig, **kwargs: Any) -> Engine:
        engine = build_engine(config, **kwargs)
        seen.append((config, engine))
        return engine

    monkeypatch.setattr(sagas.cli.runtime, "build_engine", watched)
    return seen


def worker(tmp_path: Path, *args: str) -> Result:
    db = str(tmp_path / "worker.db")
    command = ["worker", "--definitions", DEFINITION, "--handlers", "sagas.demo.services"]
    command += ["--until-idle", "--db", db, *args]
    return CliRunner().invoke(cli, command)


def configuration(tmp_path: Path, body: str) -> str:
    path = tmp_path / "sagas.toml"
    path.write_text(f"[engine]\n{body}\n", encoding="utf-8")
    return str(path)


def test_the_flags_set_the_batch_size_and_poll_interval(
    tmp_path: Path, built: list[tuple[EngineConfig, Engine]]
) -> None:
    result = worker(tmp_path, "--batch-size", "3", "--poll-interval", "250ms")
    assert result.exit_code == 0, result.output
    ((config, engine),) = built
    assert engine.batch_size == 3
    assert config.poll_interval == timedelta(milliseconds=250)


def test_the_flags_override_the_configuration_file(
    tmp_path: Path, built: list[tuple[EngineConfig, Engine]]
) -> None:
    file = configuration(tmp_path, 'batch_size = 7\npoll_interval = "2s"')
    result = worker(tmp_path, "--config", file, "--batch-size", "11", "--poll-interval", "0.5")
    assert result.exit_code == 0, result.output
    ((config, engine),) = built
    assert (engine.batch_size, config.poll_interval) == (11, timedelta(milliseconds=500))


def test_without_the_flags_the_file_decides(
    tmp_path: Path, built: list[tuple[EngineConfig, Engine]]
) -> None:
    file = configuration(tmp_path, 'batch_size = 7\npoll_interval = "2s"')
    result = worker(tmp_path, "--config", file)
    assert result.exit_code == 0, result.output
    ((config, engine),) = built
    assert (engine.batch_size, config.poll_interval) == (7, timedelta(seconds=2))


@pytest.mark.parametrize(
    ("flag", "value", "why"),
    [
        ("--batch-size", "0", "0 is not in the range 1<=x<=10000"),
        ("--batch-size", "-5", "is not in the range"),
        ("--batch-size", "10001", "10001 is not in the range 1<=x<=10000"),
        ("--batch-size", "lots", "'lots' is not a valid integer"),
        ("--batch-size", "9" * 40, "is not in the range"),
        ("--poll-interval", "0", "must be more than 0 and at most 1h (got 0s)"),
        ("--poll-interval", "0ms", "must be more than 0"),
        ("--poll-interval", "2h", "at most 1h (got 2h)"),
        ("--poll-interval", "-1s", "is not a duration"),
        ("--poll-interval", "soon", "'soon' is not a duration"),
        ("--poll-interval", "nan", "duration"),
        ("--poll-interval", "1e400", "duration"),
        ("--poll-interval", "9" * 400 + "d", "too long a duration"),
    ],
)
def test_a_bad_value_is_refused_naming_the_flag_before_the_engine_starts(
    tmp_path: Path, built: list[tuple[EngineConfig, Engine]], flag: str, value: str, why: str
) -> None:
    result = worker(tmp_path, flag, value)
    assert result.exit_code == 2, result.output
    assert "Invalid value for" in result.output
    assert flag in result.output
    assert why in result.output
    assert "Traceback" not in result.output
    assert built == []
    assert not (tmp_path / "worker.db").exists()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ('poll_interval = "0s"', "engine.poll_interval: Value error, the poll interval must be"),
        ("poll_interval = 7200", "at most 1h (got 2h)"),
        ("batch_size = 0", "engine.batch_size: Input should be greater than or equal to 1"),
    ],
)
def test_the_same_bounds_hold_in_the_configuration_file(
    tmp_path: Path, body: str, why: str
) -> None:
    with pytest.raises(ConfigError, match=r"sagas\.toml") as raised:
        load_config(configuration(tmp_path, body))
    assert why in str(raised.value)
