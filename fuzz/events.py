"""Fuzzing events through every way in: ``Event.from_json``, the in-process bus
(``Engine.publish`` / ``EventBus.publish``), ``sagas publish`` (an argument, ``--type/--data``,
a JSON Lines file, standard input; in process, and a few in a real process) and the HTTP API's
request bodies (the operator action endpoints, through the ASGI test client).

Measured: no crash (an exception other than :class:`~sagas.EventError`, a 5xx, an exit status
other than 0-2), no traceback printed, every refusal of an event whose id could be read names
that id, and nothing stored from a refused input (the queue, the events seen, dead letters and
the instance logs are compared before and after).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from fastapi.testclient import TestClient

from fuzz.event_inputs import EventInput, hostile_value, make_input, valid_event
from fuzz.outcomes import Tally
from sagas import Engine, Event, EventError, SQLStore, load_definition
from sagas.cli import cli
from sagas.server import create_app
from sagas.testing import ManualClock

__all__ = ["fuzz_events", "fuzz_http_bodies"]

ROOT = Path(__file__).resolve().parent.parent
ORDER_SAGA = ROOT / "definitions" / "order_fulfillment.yaml"
SAGAS = Path(sys.executable).parent / "sagas"
TOKEN = "fuzz-operator-token-0123456789abcdef"
ACTIONS = ("retry", "compensate", "cancel", "resume", "skip")


def strict_json(text: bytes) -> bool:
    """Whether ``text`` is JSON a strict reader takes (then a refusal can name the event id)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({key for key, _ in pairs}) != len(pairs):
            raise ValueError("duplicate key")
        return dict(pairs)

    def no_constant(name: str) -> Any:
        raise ValueError(name)

    try:
        decoded = text.decode("utf-8")
        if len(text) > 1024 * 1024 or text.count(b"[") + text.count(b"{") > 60:
            return False
        value = json.loads(decoded, object_pairs_hook=no_duplicates, parse_constant=no_constant)
        json.dumps(value, allow_nan=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeError):
        return False
    return (
        isinstance(value, dict)
        and all(
            not isinstance(number, float) or abs(number) != float("inf")
            for number in _numbers(value)
        )
        and "\\ud" not in decoded.lower()
    )


def _numbers(value: Any) -> list[Any]:
    found, pending = [], [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending += item.values()
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, int | float):
            found.append(item)
    return found


def _shown(value: Any) -> bytes:
    """A Python value as bytes to show (``repr`` refuses integers of thousands of digits)."""
    try:
        return repr(value).encode("utf-8", "surrogatepass")[:5000]
    except (ValueError, RecursionError) as exc:
        return f"<a value repr() refuses: {exc}>".encode()


def _handlers() -> dict[str, Any]:
    return {"take_payment": lambda context: {"paid": True}, "refund_payment": lambda context: None}


class _Watch:
    """What a store holds that an input could change: compared around each refusal."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    def snapshot(self) -> tuple[int, int, int]:
        entries = self.store.log_from(0, 1_000_000)
        return self.store.queue_depth(), len(self.store.dead_letters(1_000_000)), len(entries)


def _names(message: str, event_id: str) -> bool:
    return event_id in message or repr(event_id) in message


def _refused(tally: Tally, path: str, message: str, item: EventInput, text: bytes | None) -> None:
    tally.count(path, "refused")
    if "Traceback" in message:
        tally.crash(path, f"a traceback in the message: {message[-300:]}", text or b"")
    named = item.event_id is not None and _names(message, item.event_id)
    if item.event_id is not None and text is not None and strict_json(text) and not named:
        tally.finding(
            path, f"refusal not naming the event id {item.event_id!r}: {message[:300]}", text
        )


def _from_json(tally: Tally, item: EventInput) -> Event | None:
    if item.text is None:
        return None
    try:
        event = Event.from_json(item.text)
    except EventError as exc:
        _refused(tally, "Event.from_json", str(exc), item, item.text)
        return None
    except Exception as exc:
        tally.crash("Event.from_json", exc, item.text)
        return None
    tally.count("Event.from_json", "accepted")
    return event


def _bus(
    tally: Tally,
    engine: Engine,
    item: EventInput,
    event: Event | None,
    accepted: set[str],
    refused: set[str],
) -> None:
    store = engine.store
    before = store.queue_depth()
    reproducer = item.text or _shown(item.value)
    if event is not None:
        path, call = "Engine.publish (bus)", lambda: engine.publish(event)
    elif isinstance(item.value, dict):
        value = item.value
        meta = {
            name: value[key]
            for key, name in (
                ("eventId", "event_id"),
                ("sagaId", "saga_id"),
                ("correlationId", "correlation_id"),
            )
            if key in value
        }
        path = "EventBus.publish (bus)"

        def call() -> Any:
            return engine.bus.publish(value.get("eventType"), value.get("data"), **meta)  # type: ignore[arg-type]
    else:
        return
    try:
        call()
    except EventError as exc:
        _refused(tally, path, str(exc), item, item.text)
        if store.queue_depth() != before:
            tally.crash(path, "a refused event was queued", reproducer)
        if item.event_id is not None:
            refused.add(item.event_id)
        return
    except Exception as exc:
        tally.crash(path, exc, reproducer)
        return
    tally.count(path, "accepted")
    if event is not None:
        accepted.add(event.event_id)


def _cli(runner: CliRunner, args: list[str], data: bytes | None = None) -> Any:
    return runner.invoke(cli, args, input=data)


def _check_cli(
    tally: Tally,
    path: str,
    result: Any,
    item: EventInput | None,
    text: bytes,
    before: int,
    store: SQLStore,
) -> bool:
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        tally.crash(path, result.exception, text)
        return False
    if "Traceback" in output:
        tally.crash(path, "a traceback printed", text)
        return False
    if result.exit_code == 0:
        tally.count(path, "accepted")
        return True
    if result.exit_code not in (1, 2):
        tally.crash(path, f"exit status {result.exit_code}", text)
        return False
    if store.queue_depth() != before:
        tally.crash(path, "something was queued from a refused input", text)
    if item is not None:
        _refused(tally, path, output, item, text)
    else:
        tally.count(path, "refused")
    return False


def fuzz_events(
    count: int,
    *,
    seed: int = 0,
    batch: int = 250,
    argument_every: int = 10,
    processes: int = 10,
    workdir: Path | None = None,
) -> Tally:
    """``count`` random and mutated events through ``Event.from_json``, the bus (an Engine on
    a SQLite file, run until idle after each batch) and ``sagas publish`` (each batch as a
    JSON Lines file; every ``argument_every``-th event as an argument and as ``--type/--data``;
    every fifth batch on standard input; ``processes`` events through a real process)."""
    tally = Tally("events through every intake path", unit="events")
    rng = random.Random(seed)
    runner = CliRunner()
    real = set(rng.sample(range(count), min(processes, count)))
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        engine = Engine(
            SQLStore(str(Path(folder) / "bus.db")), clock=ManualClock(), handlers=_handlers()
        )
        cli_db = str(Path(folder) / "cli.db")
        cli_store = SQLStore(cli_db)
        engine.register(load_definition(ORDER_SAGA))
        accepted: set[str] = set()
        try:
            for start in range(0, count, batch):
                items = [
                    make_input(rng, number) for number in range(start, min(start + batch, count))
                ]
                dead_before = len(engine.store.dead_letters(1_000_000))
                refused: set[str] = set()
                for offset, item in enumerate(items):
                    tally.inputs += 1
                    tally.count("inputs made", item.kind[:40])
                    event = _from_json(tally, item)
                    _bus(tally, engine, item, event, accepted, refused)
                    number = start + offset
                    if number % argument_every == 0:
                        _argument(tally, runner, cli_db, cli_store, item)
                        _type_and_data(tally, runner, cli_db, cli_store, item)
                    if number in real:
                        _in_a_process(tally, cli_db, cli_store, item)
                with (
                    engine.store.round() as transaction
                ):  # ids of refused events: none in the inbox
                    recorded = transaction.seen(refused - accepted)
                if recorded:
                    tally.crash("bus", f"refused events recorded: {sorted(recorded)[:5]}", b"")
                if len(engine.store.dead_letters(1_000_000)) != dead_before:
                    tally.crash("bus", "dead letters written by the intake", b"")
                _file_and_stdin(
                    tally, runner, Path(folder), cli_db, cli_store, items, start // batch
                )
                try:
                    engine.run_until_idle(max_rounds=10_000)
                    tally.count("worker (run_until_idle)", "ran")
                except Exception as exc:
                    tally.crash(
                        "worker (run_until_idle)",
                        exc,
                        b"".join((i.text or b"") + b"\n" for i in items),
                    )
        finally:
            engine.close()
            cli_store.close()
    tally.stop()
    return tally


def _argument(tally: Tally, runner: CliRunner, db: str, store: SQLStore, item: EventInput) -> None:
    if item.text is None or b"\x00" in item.text:  # no process can be given a NUL in an argument
        return
    before = store.queue_depth()
    argument = item.text.decode("utf-8", "surrogateescape")
    if argument == "-" or not argument:
        return
    result = _cli(runner, ["publish", argument, "--db", db])
    _check_cli(tally, "sagas publish JSON", result, item, item.text, before, store)


def _type_and_data(
    tally: Tally, runner: CliRunner, db: str, store: SQLStore, item: EventInput
) -> None:
    value = item.value if isinstance(item.value, dict) else {}
    event_type = value.get("eventType")
    if not isinstance(event_type, str) or "\x00" in event_type or not event_type:
        return
    try:
        data = json.dumps(value.get("data", {}), ensure_ascii=False, allow_nan=True)
    except (ValueError, RecursionError):
        return
    if "\x00" in data:
        return
    before = store.queue_depth()
    args = [
        "publish",
        "--type",
        event_type,
        "--data",
        data.encode("utf-8", "surrogatepass").decode("utf-8", "surrogateescape"),
        "--db",
        db,
    ]
    result = _cli(runner, args)
    shown = f"--type {event_type!r} --data {data[:2000]!r}".encode("utf-8", "surrogatepass")
    _check_cli(tally, "sagas publish --type --data", result, None, shown, before, store)


def _file_and_stdin(
    tally: Tally,
    runner: CliRunner,
    folder: Path,
    db: str,
    store: SQLStore,
    items: list[EventInput],
    number: int,
) -> None:
    lines = [item.text for item in items if item.text is not None]
    body = b"\n".join(text.replace(b"\n", b" ") for text in lines) + b"\n"
    file = folder / "events.jsonl"
    file.write_bytes(body)
    before = store.queue_depth()
    result = _cli(runner, ["publish", "--file", str(file), "--db", db])
    if (
        not _check_cli(tally, "sagas publish --file", result, None, body, before, store)
        and result.exit_code == 1
    ) and f"{file}:" not in result.output:
        tally.finding(
            "sagas publish --file",
            f"refusal naming no file:line: {result.output[:300]}",
            body[:2000],
        )
    if number % 5 == 0:
        before = store.queue_depth()
        result = _cli(runner, ["publish", "-", "--db", db], body)
        _check_cli(tally, "sagas publish - (stdin)", result, None, body, before, store)


def _in_a_process(tally: Tally, db: str, store: SQLStore, item: EventInput) -> None:
    if item.text is None or b"\x00" in item.text:
        return
    before = store.queue_depth()
    done = subprocess.run(
        [str(SAGAS), "publish", "-", "--db", db],
        input=item.text,
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    path = "sagas publish (process)"
    if "Traceback" in output or done.returncode not in (0, 1, 2):
        tally.crash(path, f"exit status {done.returncode}: {output[-500:]}", item.text)
    elif done.returncode == 0:
        tally.count(path, "accepted")
    else:
        if store.queue_depth() != before:
            tally.crash(path, "something was queued from a refused input", item.text)
        _refused(tally, path, output, item, item.text)


# -- HTTP request bodies ------------------------------------------------------------------------


def _body(rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {"reason": "fuzz", "dryRun": rng.random() < 0.8}
    if rng.randrange(2):
        body["where"] = {"status": [rng.choice(["failed", "running", "compensating", "waiting"])]}
    if rng.randrange(3) == 0:
        body["step"] = rng.choice(["reserve_inventory", "take_payment", "ship"])
    if rng.randrange(3) == 0:
        body["data"] = {"note": "x"}
    return body


def _mutated_body(rng: random.Random) -> tuple[bytes, str]:
    body = _body(rng)
    roll = rng.randrange(10)
    if roll == 0:
        return json.dumps(body).encode(), "valid"
    if roll <= 5:
        key = rng.choice(["reason", "step", "data", "actor", "dryRun", "where", "extra", "dry_run"])
        if key == "where" and rng.randrange(2):
            body["where"] = {
                rng.choice(
                    ["status", "saga", "version", "key", "startedAfter", "x"]
                ): hostile_value(rng)
            }
        elif key == "data" and rng.randrange(2):
            body["data"] = {"k": hostile_value(rng)}
        else:
            body[key] = hostile_value(rng)
        try:
            text = json.dumps(body, ensure_ascii=False, allow_nan=True).encode(
                "utf-8", "surrogatepass"
            )
        except (ValueError, RecursionError):
            text = b'{"reason": ' + b"9" * 5000 + b"}"
        return text, f"value: {key}"
    text = json.dumps(body).encode()
    what = rng.choice(
        [
            "duplicate key",
            "NaN",
            "invalid UTF-8",
            "lone surrogate",
            "deep",
            "truncated",
            "huge",
            "not an object",
        ]
    )
    if what == "duplicate key":
        text = text.replace(b"{", b'{"reason": "dup", ', 1)
    elif what == "NaN":
        text = text.replace(b"{", b'{"data": {"x": NaN}, ', 1)
    elif what == "invalid UTF-8":
        text = text.replace(b'"fuzz"', b'"fu\xffzz"', 1)
    elif what == "lone surrogate":
        text = text.replace(b'"fuzz"', b'"\\udc00"', 1)
    elif what == "deep":
        depth = rng.choice([70, 10_000, 300_000])
        text = text.replace(b"{", b'{"data": {"x": ' + b"[" * depth + b"]" * depth + b"}, ", 1)
    elif what == "truncated":
        text = text[: rng.randrange(len(text))]
    elif what == "huge":
        text = text.replace(b'"fuzz"', b'"' + b"x" * rng.choice([3000, 1_100_000]) + b'"', 1)
    else:
        text = rng.choice([b"[]", b"null", b"", b"1", b'"x"'])
    return text, "text: " + what


def fuzz_http_bodies(count: int, *, seed: int = 0, workdir: Path | None = None) -> Tally:
    """``count`` mutated request bodies to the operator action endpoints of ``sagas serve``
    (bulk ``/api/actions/{action}`` and single ``/api/instances/{id}/{action}``), on a
    database holding order sagas in several states."""
    tally = Tally("HTTP API request bodies (operator actions)", unit="requests")
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        database = str(Path(folder) / "api.db")
        clock = ManualClock()
        engine = Engine(SQLStore(database), clock=clock, handlers=_handlers())
        engine.register(load_definition(ORDER_SAGA))
        for number in range(20):
            event = valid_event(random.Random(number), number) | {"eventType": "OrderCreated"}
            event.pop("sagaId", None)
            engine.publish(Event.from_dict(event))
        engine.run_until_idle()
        clock.advance("2h")  # timeouts and the deadline: some instances fail or compensate
        engine.run_until_idle()
        store = SQLStore(database)
        watch = _Watch(store)
        app = create_app(store, token=TOKEN, clock=clock)
        client = TestClient(app, raise_server_exceptions=False)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        ids = [
            item["sagaId"]
            for item in client.get("/api/instances?limit=50", headers=headers).json()["items"]
        ]
        try:
            for _ in range(count):
                body, kind = _mutated_body(rng)
                tally.inputs += 1
                tally.count("bodies made", kind[:40])
                action = rng.choice(ACTIONS)
                single = rng.randrange(2) == 0
                url = (
                    f"/api/instances/{rng.choice(ids)}/{action}"
                    if single
                    else f"/api/actions/{action}"
                )
                path = (
                    "POST /api/instances/{id}/{action}" if single else "POST /api/actions/{action}"
                )
                before = watch.snapshot()
                response = client.post(url, content=body, headers=headers)
                if response.status_code >= 500:
                    tally.crash(path, f"{response.status_code}: {response.text[:300]}", body)
                    continue
                if "Traceback" in response.text:
                    tally.crash(path, "a traceback in the response", body)
                    continue
                if response.status_code >= 400:
                    problem = response.json()
                    if not isinstance(problem, dict) or not problem.get("detail"):
                        tally.finding(
                            path, f"a refusal without a detail: {response.text[:200]}", body
                        )
                    after = watch.snapshot()
                    if after != before and response.status_code != 409:
                        tally.crash(
                            path,
                            f"a refused request changed what is stored: {before} -> {after}",
                            body,
                        )
                    elif after != before:  # refused by the instance's state, not for its input
                        delta = "/".join(f"{a - b:+d}" for a, b in zip(after, before, strict=True))
                        tally.count(path, f"409, stored (queue/dead/log {delta})")
                tally.count(path, f"{response.status_code}")
        finally:
            client.close()
            store.close()
            engine.close()
    tally.stop()
    return tally
