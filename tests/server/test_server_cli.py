"""``sagas serve`` as the real command: the token rules at start-up, then a read-only server in
a process of its own on a seeded database, asked over HTTP and stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest
from server_checks import TOKEN, Seeded, seeded_engine

from sagas.testing import ManualClock

SAGAS = Path(sys.executable).with_name("sagas")
"""The console script of the environment running the tests (.venv/bin/sagas)."""
START_TIMEOUT = 30.0


def sagas_serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``sagas serve ARGS`` to completion (for the cases that must not start), without the
    token variables of the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("SAGAS_API_TOKEN",)}
    return subprocess.run(
        [str(SAGAS), "serve", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def db_file(tmp_path: Path) -> tuple[Path, Seeded]:
    path = tmp_path / "served.db"
    with seeded_engine(f"sqlite:///{path}", ManualClock()) as (_, _, seeded):
        pass
    return path, seeded


def test_serve_without_a_token_needs_read_only(
    tmp_path: Path, db_file: tuple[Path, Seeded]
) -> None:
    result = sagas_serve("--db", str(db_file[0]), "--port", "0", cwd=tmp_path)
    assert result.returncode == 2, result
    assert "no token" in result.stderr
    assert "--read-only" in result.stderr
    assert "Usage: sagas serve" in result.stderr


@pytest.mark.parametrize("token", ["short", "x" * 15])
def test_a_short_token_is_refused(tmp_path: Path, db_file: tuple[Path, Seeded], token: str) -> None:
    result = sagas_serve("--db", str(db_file[0]), "--token", token, cwd=tmp_path)
    assert result.returncode == 2, result
    assert "--token" in result.stderr
    assert "at least 16 characters" in result.stderr
    env_token = subprocess.run(
        [str(SAGAS), "serve", "--db", str(db_file[0])],
        cwd=tmp_path,
        env=os.environ | {"SAGAS_API_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert env_token.returncode == 2, env_token
    assert "at least 16 characters" in env_token.stderr


@pytest.mark.parametrize("content", ["", "\n", "   \nsecond-line-token-0123456789\n"])
def test_a_token_file_without_a_token_is_refused(
    tmp_path: Path, db_file: tuple[Path, Seeded], content: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content, encoding="utf-8")
    result = sagas_serve("--db", str(db_file[0]), "--token-file", str(token_file), cwd=tmp_path)
    assert result.returncode == 2, result
    assert "--token-file" in result.stderr
    assert "holds no token" in result.stderr


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_read_only_server_answers_then_stops(
    tmp_path: Path, db_file: tuple[Path, Seeded], eventually: Callable[..., None]
) -> None:
    path, seeded = db_file
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "SAGAS_API_TOKEN"}
    command = [str(SAGAS), "serve", "--read-only", "--port", str(port), "--db", str(path)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        with httpx.Client(base_url=base, timeout=5.0) as client:

            def healthy() -> bool:
                assert process.poll() is None, f"sagas serve exited: {log.read_text()}"
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False  # not listening yet

            eventually(healthy, timeout=START_TIMEOUT, interval=0.05)
            health = client.get("/healthz")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})

            page = client.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            for saga_id in seeded.all:
                assert f'data-saga-id="{saga_id}"' in page.text

            listing = client.get("/api/instances", params={"status": "failed"})
            assert listing.status_code == 200
            assert sorted(item["sagaId"] for item in listing.json()["items"]) == sorted(
                seeded.failed
            )
            assert client.get("/api/instances").json()["total"] == len(seeded.all)

            refused = client.post(
                f"/api/instances/{seeded.order_failed}/retry",
                json={},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert refused.status_code == 403
            assert refused.headers["content-type"] == "application/problem+json"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            pytest.fail(f"sagas serve did not stop on SIGTERM: {log.read_text()}")
    # uvicorn shuts down cleanly on SIGTERM, then re-raises it: the status says how it ended.
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()
    output = log.read_text()
    assert "(read-only)" in output
    assert "Application shutdown complete" in output


@contextmanager
def running_serve(
    args: list[str], cwd: Path, eventually: Callable[..., None]
) -> Iterator[httpx.Client]:
    """``sagas serve ARGS`` in a process of its own until the block ends; yields a client on
    it once it answers."""
    port = free_port()
    log = cwd / "serve.log"
    command = [str(SAGAS), "serve", "--port", str(port), *args]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:

            def healthy() -> bool:
                assert process.poll() is None, f"sagas serve exited: {log.read_text()}"
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            eventually(healthy, timeout=START_TIMEOUT, interval=0.05)
            yield client
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_serve_under_a_root_path_with_a_body_limit(
    tmp_path: Path, db_file: tuple[Path, Seeded], eventually: Callable[..., None]
) -> None:
    path, seeded = db_file
    args = ["--db", str(path), "--token", TOKEN, "--root-path", "/sagas/"]
    args += ["--max-body-bytes", "2048"]
    with running_serve(args, tmp_path, eventually) as client:
        page = client.get("/", headers={"Host": "evil.example"})
        assert page.status_code == 200
        assert 'href="/sagas/static/dashboard.css"' in page.text
        assert 'href="/sagas/docs"' in page.text
        assert "evil.example" not in page.text
        docs = client.get("/docs")
        assert "/sagas/docs/assets/swagger-ui-bundle.js" in docs.text
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
        retry = f"/api/instances/{seeded.order_failed}/retry"
        body = {"reason": "r" * 3000, "dryRun": True}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post(retry, json=body, headers=auth).status_code == 413
        assert client.post(retry, json=body).status_code == 401
        small = client.post(retry, json={"dryRun": True}, headers=auth)
        assert small.status_code == 200, small.text


@pytest.mark.parametrize("root", ["sagas", "//evil.example", "/a\\b"])
def test_a_root_path_must_be_a_path(
    tmp_path: Path, db_file: tuple[Path, Seeded], root: str
) -> None:
    result = sagas_serve("--db", str(db_file[0]), "--read-only", "--root-path", root, cwd=tmp_path)
    assert result.returncode == 2, result
    assert "--root-path" in result.stderr
