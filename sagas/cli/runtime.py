"""``sagas worker`` and ``sagas publish``: running the engine and feeding it events."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from sagas.cli.common import db_option, max_event_bytes_option, open_store, reports_errors
from sagas.clock import SystemClock
from sagas.config import MAX_BATCH_SIZE, EngineConfig, check_poll_interval, load_config
from sagas.definitions.durations import parse_duration
from sagas.events import Event
from sagas.intake import Intake, RefusedEventsError, parse_data
from sagas.observability.logs import LogFormat, configure_logging
from sagas.runtime.setup import build_engine
from sagas.secrets import mask_url
from sagas.store.sql import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    from sagas.observability.metrics import MetricsServer
    from sagas.runtime.engine import Engine

__all__ = ["publish", "worker"]


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A TOML configuration (see engine/sagas.toml).",
)
@click.option(
    "--definitions",
    multiple=True,
    type=click.Path(exists=True),
    help="Definition files or folders (repeatable; adds to the configuration's).",
)
@click.option(
    "--handlers",
    "handler_modules",
    multiple=True,
    metavar="MODULE",
    help="Handler module (repeatable; adds to the configuration's).",
)
@click.option("--concurrency", type=click.IntRange(1, 1024), help="Handlers run at once.")
@click.option(
    "--lease",
    metavar="DURATION",
    help="How long a worker owns the effects it committed (default 10s).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_SIZE),
    metavar="N",
    help="Events decided per transaction (default 200; overrides the configuration's).",
)
@click.option(
    "--poll-interval",
    metavar="DURATION",
    help="How long an idle worker waits before looking for work again: 50ms, 2s, or a number "
    "of seconds (default 50ms; overrides the configuration's).",
)
@click.option("--until-idle", is_flag=True, help="Exit once nothing is queued, pending or due.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text or as JSON objects (with saga_id, step, event_id).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="The least severe lines logged (debug: one line per decision).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=0,
    metavar="PORT",
    help="Serve Prometheus metrics on http://0.0.0.0:PORT/metrics (0: no metrics).",
)
@db_option(default=None)
@reports_errors
def worker(
    config_file: str | None,
    definitions: tuple[str, ...],
    handler_modules: tuple[str, ...],
    concurrency: int | None,
    lease: str | None,
    batch_size: int | None,
    poll_interval: str | None,
    until_idle: bool,
    log_format: LogFormat,
    log_level: str,
    metrics_port: int,
    db: str | None,
) -> None:
    """Run the engine: decide queued events, relay the outbox, fire timers. Stops on SIGTERM
    or Ctrl-C after the current round (a SIGKILL loses nothing either)."""
    configure_logging(log_format, log_level)
    config = load_config(config_file) if config_file else EngineConfig()
    config = config.model_copy(
        update={
            "definitions": (*config.definitions, *map(Path, definitions)),
            "handler_modules": (*config.handler_modules, *handler_modules),
            "concurrency": concurrency or config.concurrency,
        }
    )
    if lease is not None:
        try:
            config = config.model_copy(update={"lease": parse_duration(lease)})
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--lease") from None
    if batch_size is not None:
        config = config.model_copy(update={"batch_size": batch_size})
    if poll_interval is not None:
        try:
            seconds = re.fullmatch(r"\d{1,9}(\.\d{1,9})?", poll_interval)  # "0.5": seconds
            wait = parse_duration(float(poll_interval) if seconds else poll_interval)
            wait = check_poll_interval(wait)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--poll-interval") from None
        config = config.model_copy(update={"poll_interval": wait})
    if not config.definitions:
        raise click.UsageError("no definitions: pass --definitions or a --config that has some")
    url = db or config.database_url or DEFAULT_DATABASE_URL
    engine = build_engine(config, database_url=url, clock=SystemClock())
    try:
        metrics = _serve_metrics(engine, metrics_port) if metrics_port else None
    except BaseException:
        engine.close()
        raise
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("sagas.worker").info("signal %d: stopping after this round", signum)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    logging.getLogger("sagas.worker").info(
        "worker on %s: %d saga definition(s), %d handler(s)",
        mask_url(url),
        len(engine.store.definitions()),
        len(engine.handlers),
    )
    try:
        if until_idle:
            engine.run_until_idle()
        else:
            engine.run(stop, poll_interval=config.poll_interval.total_seconds())
    finally:
        engine.close()
        if metrics is not None:
            metrics.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_metrics(engine: Engine, port: int) -> MetricsServer:
    """Keep the engine's metrics and serve them, with the process's own, on ``port``."""
    from sagas.observability.metrics import MetricsServer, SagaMetrics  # prometheus_client

    metrics = SagaMetrics(process=True)
    try:
        server = MetricsServer(metrics.registry, port)
    except OSError as exc:
        raise click.ClickException(f"cannot serve metrics on port {port}: {exc}") from None
    engine.observers.append(metrics)
    logging.getLogger("sagas.worker").info("metrics on http://0.0.0.0:%d/metrics", server.port)
    return server


@click.command()
@click.argument("event_json", required=False, metavar="[JSON | -]")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A file of events: one JSON event, or JSON Lines (one per line). Repeatable.",
)
@click.option("--type", "event_type", metavar="TYPE", help="Event type (instead of JSON).")
@click.option("--data", metavar="JSON", help="Event data as a JSON object (with --type).")
@click.option("--saga-id", help="Address the event to one saga instance (with --type).")
@max_event_bytes_option("The largest event taken, in bytes of its JSON text.")
@db_option()
@reports_errors
def publish(
    event_json: str | None,
    files: tuple[str, ...],
    event_type: str | None,
    data: str | None,
    saga_id: str | None,
    max_event_bytes: int,
    db: str,
) -> None:
    """Publish events: one as JSON (the argument), from standard input (-) or files (--file):
    one JSON event or JSON Lines, one event per line; or one built from --type and --data.

    Every event is checked first (size, nesting, strict JSON, the event's fields; the
    engine's own sagas.* types are refused): when one is refused, none is queued. Queued
    events are kept durably; a worker decides them. An eventId seen before is ignored.
    """
    given = (event_json is not None) + bool(files) + (event_type is not None)
    if given != 1:
        raise click.UsageError(
            "give one of: an event as JSON (or - for standard input), --file, or --type"
        )
    if event_type is None and (data is not None or saga_id is not None):
        raise click.UsageError("--data and --saga-id go with --type")
    intake = Intake(max_event_bytes)
    if event_type is not None:
        try:
            payload = (
                {} if data is None else parse_data(os.fsencode(data), max_bytes=max_event_bytes)
            )
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--data'") from None
        events = [intake.create(event_type, payload, at=SystemClock().now(), saga_id=saga_id)]
    elif files:
        events = _read_files(intake, files)
    elif event_json == "-":
        events = intake.read(sys.stdin.buffer, "<stdin>")
    else:  # as bytes: a byte that is not UTF-8 is named as such
        events = [intake.from_json(os.fsencode(str(event_json)))]
    store = open_store(db)
    try:
        new = store.enqueue(events, received_at=SystemClock().now())
    finally:
        store.close()
    if len(events) == 1:
        state = "queued" if new else "already known, ignored"
        click.echo(f"{events[0].event_type} {events[0].event_id}: {state}")
    else:
        click.echo(f"{len(events)} events: {new} queued, {len(events) - new} already known")


def _read_files(intake: Intake, files: tuple[str, ...]) -> list[Event]:
    """The events of every file; refused events of any file are reported all together."""
    events: list[Event] = []
    refused: list[str] = []
    for name in files:
        try:
            with open(name, "rb") as stream:
                events += intake.read(stream, name)
        except RefusedEventsError as exc:
            refused.append(str(exc))
        except OSError as exc:
            refused.append(f"{name}: cannot read: {exc.strerror or exc}")
    if refused:
        raise click.ClickException("\n".join(refused) + "\nnothing was queued")
    return events
