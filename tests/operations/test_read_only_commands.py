"""Commands that only read (``list``, ``show``, ``stats``, ``serve --read-only``) never write:
no tables in an empty database, nothing changed in a read-only file, and a clear error for a
database that is not the engine's or whose schema is older than the code. ``publish`` to a
folder that does not exist is an error, not a new database.

The SQLite cases run as root too: the store opens a reader ``mode=ro``, so SQLite itself
refuses to write whatever the file's permissions; a subprocess run as ``nobody`` checks the
permission case for real.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect

from sagas import SagaDefinition
from sagas.cli import cli
from sagas.engine.decide import saga_id_for
from sagas.events import Event
from sagas.store import SQLStore, StoreError
from sagas.store.opening import NotAnEngineDatabaseError, SchemaVersionError, head_revision
from sagas.testing import ManualClock, saga_engine

READERS = [["list"], ["show", saga_id_for("order_fulfillment", "o-1")], ["stats"]]
READER_IDS = ["list", "show", "stats"]
CLI = [sys.executable, "-c", "from sagas.cli import main; main()"]
SEEN = {"list": "o-1", "show": "o-1", "stats": "2 timers"}
"""What each reader prints about the seeded instance (stats: its deadline and step timeout)."""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tables_of(url: str) -> set[str]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def seeded(url: str, definition: SagaDefinition) -> None:
    """One order instance, run until it waits for its inventory reply."""
    clock = ManualClock()
    with saga_engine(url, clock=clock) as engine:
        engine.register(definition)
        engine.publish(Event.create("OrderCreated", {"orderId": "o-1"}, at=clock.now()))
        engine.run_until_idle()


# -- not an engine database ------------------------------------------------------------------


@pytest.mark.parametrize("command", READERS, ids=READER_IDS)
def test_a_reader_on_an_empty_sqlite_file_says_so_and_creates_no_tables(
    command: list[str], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    result = invoke(*command, "--db", str(empty))
    assert result.exit_code == 1, result.output
    assert "not a sagas database: it has no tables" in result.output
    assert "sagas db upgrade" in result.output
    assert empty.stat().st_size == 0
    assert tables_of(f"sqlite:///{empty}") == set()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
@pytest.mark.parametrize("command", READERS, ids=READER_IDS)
def test_a_reader_on_an_empty_postgresql_schema_says_so_and_creates_no_tables(
    command: list[str], database: str
) -> None:
    result = invoke(*command, "--db", database)
    assert result.exit_code == 1, result.output
    assert "not a sagas database: it has no tables" in result.output
    assert "Traceback" not in result.output
    assert tables_of(database) == set()


def test_a_reader_on_another_applications_database_names_its_tables(
    database: str,
) -> None:
    engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE customers (id integer)")
    engine.dispose()
    result = invoke("list", "--db", database)
    assert result.exit_code == 1, result.output
    assert "not a sagas database: its tables (customers) are not the engine's" in result.output
    assert tables_of(database) == {"customers"}


@pytest.mark.parametrize("command", READERS, ids=READER_IDS)
def test_a_reader_on_another_applications_sqlite_file_names_its_tables_and_changes_nothing(
    command: list[str], tmp_path: Path
) -> None:
    other = tmp_path / "shop.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
        conn.execute("CREATE TABLE orders (id INTEGER)")
    before = digest(other)
    result = invoke(*command, "--db", str(other))
    assert result.exit_code == 1, result.output
    assert "not a sagas database: its tables (customers, orders) are not the engine's" in (
        result.output
    )
    assert digest(other) == before


@pytest.mark.parametrize(
    "content",
    [b"just some text\n", b"SQLite format 3\x00" + b"\xff" * 200, os.urandom(4096)],
    ids=["text", "bad-header", "random"],
)
def test_a_reader_on_a_file_that_is_not_a_database_says_so(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    result = invoke("list", "--db", str(path))
    assert result.exit_code == 1, result.output
    assert f"sqlite:///{path}: not a sagas database" in result.output
    assert "Traceback" not in result.output
    assert path.read_bytes() == content


def test_a_reader_on_an_older_schema_says_to_migrate_and_migrates_nothing(
    database: str,
) -> None:
    old = SQLStore(database, migrate=False)
    old.upgrade("0001")
    old.close()
    for command in READERS:
        result = invoke(*command, "--db", database)
        assert result.exit_code == 1, result.output
        assert (
            f"the schema is at revision 0001, older than this version of sagas "
            f"(revision {head_revision()})"
        ) in result.output
        assert "sagas db upgrade --db" in result.output
    store = SQLStore(database, migrate=False)
    try:
        assert store.current_revision() == "0001"
    finally:
        store.close()


def test_a_schema_newer_than_the_code_says_to_upgrade_sagas(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SQLStore(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE saga_alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaVersionError, match="revision 9999, which this version of sagas"):
        SQLStore(str(path), read_only=True)


def test_opening_read_only_raises_typed_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(NotAnEngineDatabaseError):
        SQLStore(str(empty), read_only=True)
    with pytest.raises(StoreError, match="no database at"):
        SQLStore(str(tmp_path / "missing.db"), read_only=True)
    assert not (tmp_path / "missing.db").exists()


# -- a reader cannot write ---------------------------------------------------------------------


def test_a_store_opened_read_only_refuses_to_write_on_both_backends(
    database: str, order_definition: SagaDefinition
) -> None:
    seeded(database, order_definition)
    store = SQLStore(database, read_only=True)
    try:
        assert len(store.list_instances()) == 1
        changed = order_definition.model_copy(update={"description": "changed"})
        with pytest.raises(StoreError, match=r"read-only|readonly"):
            store.register_definition(changed, ManualClock().now())
        assert [d.version for d in store.definitions()] == [1]
    finally:
        store.close()


@pytest.fixture
def read_only_folder(tmp_path: Path, order_definition: SagaDefinition) -> Iterator[Path]:
    """An engine database with one instance, in a folder that everyone may read and nobody
    may write (the file ``444``, the folder ``555``); permissions restored at the end."""
    folder = Path(tempfile.mkdtemp(prefix="sagas-ro-"))
    try:
        path = folder / "sagas.db"
        seeded(str(path), order_definition)
        assert not (folder / "sagas.db-wal").exists()  # the worker's close checkpointed it
        path.chmod(0o444)
        folder.chmod(0o555)
        yield path
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


@pytest.mark.parametrize("command", READERS, ids=READER_IDS)
def test_readers_work_on_a_read_only_file_and_change_nothing(
    command: list[str], read_only_folder: Path
) -> None:
    before = digest(read_only_folder)
    result = invoke(*command, "--db", str(read_only_folder))
    assert result.exit_code == 0, result.output
    assert SEEN[command[0]] in result.output
    assert digest(read_only_folder) == before
    assert stat.S_IMODE(read_only_folder.stat().st_mode) == 0o444


def _as_nobody() -> list[str]:
    if os.geteuid() != 0:
        return []  # permissions already apply to this user
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root without setpriv: cannot check read-only permissions")
    return [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.mark.parametrize("command", READERS, ids=READER_IDS)
def test_readers_work_for_a_user_who_cannot_write_the_file_nor_its_folder(
    command: list[str], read_only_folder: Path
) -> None:
    """SQLite cannot create the WAL index beside the file here: the reader falls back to
    reading the file as immutable (it holds every commit: there is no -wal file)."""
    before = digest(read_only_folder)
    run = [sys.executable, "-c", "from sagas.cli import main; main()"]
    result = subprocess.run(
        [*_as_nobody(), *run, *command, "--db", str(read_only_folder)],
        cwd=read_only_folder.parent,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert SEEN[command[0]] in result.stdout
    assert digest(read_only_folder) == before
    assert sorted(p.name for p in read_only_folder.parent.iterdir()) == ["sagas.db"]


def test_serve_read_only_on_a_database_that_is_not_the_engines_exits_before_serving(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    result = invoke("serve", "--read-only", "--db", str(empty), "--port", "0")
    assert result.exit_code == 1, result.output
    assert "not a sagas database" in result.output
    assert "dashboard" not in result.output
    assert empty.stat().st_size == 0


# -- writers ---------------------------------------------------------------------------------


def test_publish_to_a_folder_that_does_not_exist_is_an_error_and_creates_nothing(
    tmp_path: Path,
) -> None:
    target = tmp_path / "typo" / "sagas.db"
    result = invoke("publish", "--db", str(target), "--type", "OrderCreated", "--data", "{}")
    assert result.exit_code == 1, result.output
    assert f"cannot open: there is no folder {target.parent}" in result.output
    assert not target.parent.exists()


def test_publish_still_creates_a_new_database_in_a_folder_that_exists(tmp_path: Path) -> None:
    target = tmp_path / "new.db"
    result = invoke("publish", "--db", str(target), "--type", "OrderCreated", "--data", "{}")
    assert result.exit_code == 0, result.output
    assert "queued" in result.output
    store = SQLStore(str(target), read_only=True)
    try:
        assert store.queue_depth() == 1
    finally:
        store.close()


def test_a_read_only_folder_with_commits_still_in_the_wal_is_a_clear_error_not_a_stale_read(
    order_definition: SagaDefinition,
) -> None:
    """Commits still in ``sagas.db-wal`` cannot be read without the WAL index, which SQLite
    cannot create in a read-only folder; reading the main file alone (immutable) would miss
    them and show the deleted instance."""
    folder = Path(tempfile.mkdtemp(prefix="sagas-ro-"))
    try:
        path = folder / "sagas.db"
        seeded(str(path), order_definition)
        writer = sqlite3.connect(path)
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("DELETE FROM saga_instances")
        writer.commit()
        shutil.copy(path.with_name("sagas.db-wal"), folder / "copied-wal")
        writer.close()  # checkpoints and removes the -wal: put the copy back
        shutil.move(folder / "copied-wal", path.with_name("sagas.db-wal"))
        (folder / "sagas.db-shm").unlink(missing_ok=True)
        for file in folder.iterdir():
            file.chmod(0o444)
        folder.chmod(0o555)
        result = subprocess.run(
            [*_as_nobody(), *CLI, "list", "--db", str(path)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, result.stdout
        assert "cannot open to read" in result.stderr
        assert f"{folder} is read-only" in result.stderr
        assert "o-1" not in result.stdout
        assert "Traceback" not in result.stderr
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_the_read_only_server_answers_every_page_from_a_read_only_file(
    read_only_folder: Path,
) -> None:
    """What ``sagas serve --read-only`` serves, on the store it opens: no request writes."""
    from fastapi.testclient import TestClient

    from sagas.server import create_app

    before = digest(read_only_folder)
    saga_id = saga_id_for("order_fulfillment", "o-1")
    store = SQLStore(str(read_only_folder), read_only=True)
    try:
        app = create_app(store, token=None, read_only=True, database=str(read_only_folder))
        with TestClient(app) as client:
            for path in (
                "/",
                f"/instances/{saga_id}",
                "/definitions",
                "/api/instances",
                f"/api/instances/{saga_id}",
                "/api/definitions",
                "/api/stats",
                "/metrics",
                "/healthz",
            ):
                response = client.get(path)
                assert response.status_code == 200, (path, response.text[:300])
    finally:
        store.close()
    assert digest(read_only_folder) == before
