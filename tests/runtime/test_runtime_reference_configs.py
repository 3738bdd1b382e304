"""The reference configurations in engine/ load, so they cannot rot."""

import subprocess
from pathlib import Path

from sagas import load_config

ENGINE = Path(__file__).resolve().parents[2] / "engine"


def test_the_postgresql_configuration_names_a_postgresql_database_and_loads() -> None:
    config = load_config(ENGINE / "postgres.toml")
    assert config.database_url is not None
    assert config.database_url.startswith("postgresql://")
    assert config.concurrency == 8
    assert all(path.exists() for path in config.definitions)


def test_the_worker_launcher_is_valid_bash() -> None:
    script = ENGINE / "run-workers.sh"
    assert script.stat().st_mode & 0o111, "run-workers.sh must be executable"
    subprocess.run(["bash", "-n", str(script)], check=True)
