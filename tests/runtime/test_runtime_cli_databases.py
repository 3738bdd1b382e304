"""A database that is not there, or cannot be opened, gets a clear error and is not created."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from sagas.cli import cli


@pytest.mark.parametrize("command", [["list"], ["show", "some-saga-id"]])
def test_reading_a_missing_sqlite_file_is_an_error_and_creates_nothing(
    command: list[str], tmp_path: Path
) -> None:
    missing = tmp_path / "typo" / "sagas.db"
    result = CliRunner().invoke(cli, [*command, "--db", str(missing)])
    assert result.exit_code == 1
    assert f"Error: no database at {missing}" in result.output
    assert not missing.parent.exists()


def test_an_unknown_database_kind_is_named_in_the_error() -> None:
    result = CliRunner().invoke(cli, ["list", "--db", "nosuchdb://host/name"])
    assert result.exit_code == 1
    assert "nosuchdb://host/name: cannot open" in result.output
