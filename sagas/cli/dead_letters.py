"""``sagas dead-letters list|show|replay|drop``: what the engine could not use, and what an
operator does with it.

``replay`` sends dead letters through the intake again (queued, a duplicate, or refused again
and kept); ``drop`` removes them. Both take dead-letter ids, or filters (``--reason``,
``--type``, ``--saga-id``, ``--source``, ``--since``, ``--until``; ``--all`` for every one),
``--dry-run`` to see first, and report per message (``--json`` too).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from sagas.cli.common import console, db_option, max_event_bytes_option, open_store, reports_errors
from sagas.cli.terminal import escape_controls, shown
from sagas.clock import SystemClock
from sagas.intake import Intake
from sagas.operations.dead_letters import (
    DeadLetters,
    Fate,
    LetterReport,
    letter_to_dict,
    parse_moment,
    summary,
)
from sagas.store.dead_letters import DeadLetterFilter

__all__ = ["dead_letters"]

F = TypeVar("F", bound=Callable[..., Any])
FATE_STYLE = {
    Fate.QUEUED: "green",
    Fate.DUPLICATE: "green",
    Fate.DROPPED: "green",
    Fate.WOULD_QUEUE: "cyan",
    Fate.WOULD_BE_DUPLICATE: "cyan",
    Fate.WOULD_DROP: "cyan",
    Fate.REFUSED: "yellow",
    Fate.NOT_FOUND: "red",
}
_FILTERS = ("reason", "event_type", "saga_id", "source", "since", "until")


def _filter_options(command: F) -> F:
    options = [
        click.option("--reason", metavar="TEXT", help="Only those whose reason contains TEXT."),
        click.option("--type", "event_type", metavar="TYPE", help="Only events of this type."),
        click.option("--saga-id", metavar="ID", help="Only those of this saga instance."),
        click.option(
            "--source", metavar="NAME", help="Only those from: runtime, cli, bus, http, a broker."
        ),
        click.option("--since", metavar="TIME", help="Kept at or after (a time, or 2h ago)."),
        click.option("--until", metavar="TIME", help="Kept before (a time, or 2h ago)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _build_filter(options: dict[str, Any]) -> DeadLetterFilter:
    fields = {name: options.pop(name, None) for name in _FILTERS}
    now = SystemClock().now()
    for name in ("since", "until"):
        if fields[name] is not None:
            try:
                fields[name] = parse_moment(fields[name], now)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint=f"'--{name}'") from None
    try:
        return DeadLetterFilter.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"--{str(error['loc'][0]).replace('_', '-')}: {error['msg']}" for error in exc.errors()
        )
        raise click.UsageError(escape_controls(problems)) from None


@click.group("dead-letters")
def dead_letters() -> None:
    """What the engine could not use: list, show, replay or drop it.

    Kept with the reason, the message as received, where it came from (runtime: the
    engine's rounds; or cli, bus, http, a broker) and when.
    """


@dead_letters.command("list")
@_filter_options
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0, 10_000_000), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@db_option()
@reports_errors
def list_letters(limit: int, offset: int, as_json: bool, db: str, **options: Any) -> None:
    """The dead letters the filters select, the most recent first."""
    where = _build_filter(options)
    store = open_store(db, read_only=True)
    try:
        letters = DeadLetters(store)
        found = letters.find(where, limit=limit, offset=offset)
        total = letters.count(where)
    finally:
        store.close()
    if as_json:
        items = [letter_to_dict(letter, payload=False) for letter in found]
        document = {"total": total, "limit": limit, "offset": offset, "items": items}
        click.echo(json.dumps(document, indent=2))
        return
    table = Table(title=f"{total} dead letter(s) ({where.describe()})")
    for column in ("id", "kept at", "source", "event type", "event id", "reason"):
        table.add_column(column, overflow="fold")
    for letter in found:
        kept = letter.created_at.isoformat(timespec="seconds") if letter.created_at else ""
        table.add_row(
            str(letter.id),
            kept,
            shown(letter.source),
            shown(letter.event_type or "?"),
            shown(letter.event_id or "?"),
            shown(letter.reason),
        )
    console().print(table)


@dead_letters.command("show")
@click.argument("letter_id", type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option()
@reports_errors
def show_letter(letter_id: int, as_json: bool, db: str) -> None:
    """One dead letter with the message as received (base64 when it was not UTF-8 text)."""
    store = open_store(db, read_only=True)
    try:
        letter = DeadLetters(store).show(letter_id)
    finally:
        store.close()
    document = letter_to_dict(letter)
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    out = console()
    for name, value in document.items():
        if name != "payload":
            out.print(Text(f"{name}: ", style="bold"), shown(value), sep="")
    out.print(Text("payload:", style="bold"))
    out.print(shown(letter.payload, keep_newlines=True))


def _bulk_options(command: F) -> F:
    command = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")(
        command
    )
    command = click.option("--dry-run", is_flag=True, help="Report, but change nothing.")(command)
    command = click.option(
        "--all", "every", is_flag=True, help="Every dead letter (when no id or filter is given)."
    )(command)
    command = _filter_options(command)
    return click.argument("letter_ids", nargs=-1, type=click.IntRange(1))(command)


def _selection(
    letters: DeadLetters, letter_ids: tuple[int, ...], every: bool, options: dict[str, Any]
) -> tuple[list[int] | None, DeadLetterFilter | None]:
    where = _build_filter(options)
    filtered = where != DeadLetterFilter()
    if sum((bool(letter_ids), filtered, every)) != 1:
        raise click.UsageError("give dead-letter ids, filters (--reason, --type, ...), or --all")
    return (list(letter_ids), None) if letter_ids else (None, where)


@dead_letters.command("replay")
@_bulk_options
@max_event_bytes_option(
    "The largest event the intake takes (raise it to replay one refused as too large)."
)
@db_option()
@reports_errors
def replay(
    letter_ids: tuple[int, ...],
    every: bool,
    dry_run: bool,
    as_json: bool,
    max_event_bytes: int,
    db: str,
    **options: Any,
) -> None:
    """Send dead letters through the intake again. Each is queued (and removed), a
    duplicate (already decided: removed, nothing queued) or refused again (kept, with the
    reason). Exits with 1 when one was refused or not found."""
    store = open_store(db, must_exist=True)
    try:
        letters = DeadLetters(store, Intake(max_event_bytes))
        ids, where = _selection(letters, letter_ids, every, options)
        if ids is not None:
            reports = letters.replay_ids(ids, dry_run=dry_run)
        else:
            reports = letters.replay_many(where or DeadLetterFilter(), dry_run=dry_run)
    finally:
        store.close()
    _report("replay", reports, as_json=as_json, dry_run=dry_run)


@dead_letters.command("drop")
@_bulk_options
@db_option()
@reports_errors
def drop(
    letter_ids: tuple[int, ...], every: bool, dry_run: bool, as_json: bool, db: str, **options: Any
) -> None:
    """Remove dead letters for good. Exits with 1 when one was not found."""
    store = open_store(db, must_exist=True)
    try:
        letters = DeadLetters(store)
        ids, where = _selection(letters, letter_ids, every, options)
        if ids is not None:
            reports = letters.drop(ids, dry_run=dry_run)
        else:
            reports = letters.drop_many(where or DeadLetterFilter(), dry_run=dry_run)
    finally:
        store.close()
    _report("drop", reports, as_json=as_json, dry_run=dry_run)


def _report(action: str, reports: list[LetterReport], *, as_json: bool, dry_run: bool) -> None:
    counts = summary(reports)
    if as_json:
        document = {
            "action": action,
            "dryRun": dry_run,
            "summary": counts,
            "results": [report.to_dict() for report in reports],
        }
        click.echo(json.dumps(document, indent=2))
    else:
        title = f"{action}{' (dry run)' if dry_run else ''}: " + (
            ", ".join(f"{n} {fate}" for fate, n in counts.items()) or "no dead letter selected"
        )
        table = Table(title=title)
        for column in ("id", "fate", "event type", "event id", "what happened"):
            table.add_column(column, overflow="fold")
        for report in reports:
            table.add_row(
                str(report.id),
                Text(report.fate.value, FATE_STYLE[report.fate]),
                shown(report.event_type or "?"),
                shown(report.event_id or "?"),
                shown(report.note),
            )
        console().print(table)
    if any(report.fate in (Fate.REFUSED, Fate.NOT_FOUND) for report in reports):
        raise SystemExit(1)
