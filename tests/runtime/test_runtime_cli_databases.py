"""A database that is not there, or cannot be opened, gets a clear error and is not created.

A missing file is the SQLite form of "no database" (checked on files of the test's own, not
through the ``database`` fixture); on PostgreSQL the server says so, and the error names it.
"""

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

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


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
@pytest.mark.parametrize("command", [["list"], ["show", "some-saga-id"]])
def test_reading_a_postgresql_database_that_does_not_exist_is_an_error_naming_it(
    command: list[str], database: str
) -> None:
    missing = make_url(database).set(database="sagas_no_such_database", query={})
    url = missing.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, [*command, "--db", url])
    assert result.exit_code == 1
    assert 'database "sagas_no_such_database" does not exist' in result.output
    assert "Traceback" not in result.output
