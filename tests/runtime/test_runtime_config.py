"""The worker's configuration: the reference file works, bad files name file and key."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from runtime_checks import ROOT, assert_replays, order_created

from sagas.config import ConfigError, load_config
from sagas.engine.state import InstanceStatus
from sagas.runtime.setup import build_engine
from sagas.store.sql import SQLStore
from sagas.testing import ManualClock

REFERENCE = ROOT / "engine" / "sagas.toml"


def test_the_reference_configuration_loads() -> None:
    config = load_config(REFERENCE)

    assert config.handler_modules == ("sagas.demo.services",)
    assert [path.resolve() for path in config.definitions] == [
        (ROOT / "definitions" / "order_fulfillment.yaml").resolve()
    ]
    assert all(path.exists() for path in config.definitions)
    assert config.concurrency >= 1
    assert config.batch_size >= 1
    assert config.poll_interval == timedelta(milliseconds=50)


def test_an_engine_built_from_the_reference_configuration_runs_orders(
    database: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the configuration's own sagas.db would appear
    config = load_config(REFERENCE)
    engine = build_engine(config, database_url=database, clock=clock)
    try:
        assert [d.name for d in engine.store.definitions()] == ["order_fulfillment"]
        for n in range(20):
            engine.publish(order_created(f"order-{n}", clock.now()))

        engine.run_until_idle()

        records = engine.store.list_instances()
        assert len(records) == 20
        statuses = Counter(record.state.status for record in records)
        assert set(statuses) <= {InstanceStatus.COMPLETED, InstanceStatus.COMPENSATED}
        assert statuses[InstanceStatus.COMPLETED] > 0
        for record in records:
            assert_replays(engine.store, record.saga_id)
    finally:
        engine.close()
    overridden = SQLStore(database)  # the orders went to the database given, not the file's
    try:
        assert len(overridden.list_instances()) == 20
    finally:
        overridden.close()
    assert not (tmp_path / "sagas.db").exists()


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "worker.toml"
    file.write_text(text, encoding="utf-8")
    return file


@pytest.mark.parametrize(
    ("text", "names"),
    [
        pytest.param("[engine]\nconcurency = 4\n", ["concurency"], id="unknown-key"),
        pytest.param("[engine]\nconcurrency = 0\n", ["engine.concurrency"], id="concurrency-0"),
        pytest.param("[engine]\nbatch_size = 'lots'\n", ["engine.batch_size"], id="wrong-type"),
        pytest.param("[engine]\npoll_interval = 'soon'\n", ["engine.poll_interval"], id="bad-dur"),
        pytest.param("[worker]\nconcurrency = 2\n", ["worker"], id="unknown-table"),
        pytest.param("[engine]\nconcurrency = \n", ["line 2"], id="bad-toml"),
    ],
)
def test_an_invalid_configuration_is_refused_naming_file_and_key(
    tmp_path: Path, text: str, names: list[str]
) -> None:
    file = write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_config(file)

    message = str(caught.value)
    assert str(file) in message
    for name in names:
        assert name in message


def test_a_missing_configuration_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.toml"):
        load_config(tmp_path / "nowhere.toml")


def test_every_problem_of_a_configuration_is_reported_at_once(tmp_path: Path) -> None:
    file = write(tmp_path, "[engine]\nconcurrency = 0\nbatch_size = 0\nbogus = 1\n")

    with pytest.raises(ConfigError) as caught:
        load_config(file)

    for key in ("engine.concurrency", "engine.batch_size", "engine.bogus"):
        assert key in str(caught.value)
