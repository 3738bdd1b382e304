"""``sagas retry|compensate|cancel|resume|skip``: operator actions, on one instance or in bulk.

``sagas retry SAGA_ID`` acts on one instance; ``sagas retry --where status=failed --where
saga=order_fulfillment`` on every instance the clauses select, with ``--dry-run`` to see first
what each would do. Either way, the report says per instance what really happened.
"""

from __future__ import annotations

import getpass
import json
import os
from collections import Counter
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from sagas.cli.common import console, db_option, open_store, reports_errors
from sagas.cli.filtering import build_filter, where_option
from sagas.engine.operator import OperatorAction
from sagas.intake import parse_data
from sagas.operations import ActionRequest, ActionResult, Operations, Outcome

__all__ = ["ACTIONS"]

ACTOR_ENV = "SAGAS_ACTOR"
OUTCOME_STYLE = {
    Outcome.APPLIED: "green",
    Outcome.WOULD_APPLY: "cyan",
    Outcome.REFUSED: "yellow",
    Outcome.NOT_FOUND: "red",
}
HELP = {
    OperatorAction.RETRY: "Run a failed step or a failed compensation again (or a waiting retry "
    "now).",
    OperatorAction.COMPENSATE: "Compensate a running saga: undo what it completed.",
    OperatorAction.CANCEL: "Stop a saga where it stands, without compensating (recorded).",
    OperatorAction.RESUME: "Resume a cancelled saga (or retry a failed one).",
    OperatorAction.SKIP: "Mark a step done by hand, with data merged into the saga's data.",
}


def _json_object(_: click.Context, __: click.Parameter, value: str | None) -> dict[str, Any]:
    """``--data``: parsed as strictly as an event's data (see :func:`sagas.intake.parse_data`)."""
    if value is None:
        return {}
    try:
        return parse_data(os.fsencode(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _command(action: OperatorAction) -> click.Command:
    step_required = action == OperatorAction.SKIP

    @click.argument("saga_id", required=False)
    @where_option
    @click.option("--reason", help="Why (recorded in the instance's log).")
    @click.option(
        "--actor",
        envvar=ACTOR_ENV,
        default=lambda: getpass.getuser(),
        show_default="the current user",
        help=f"Who acts (recorded; env {ACTOR_ENV}).",
    )
    @click.option("--dry-run", is_flag=True, help="Decide and report, but change nothing.")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @db_option()
    @reports_errors
    def run(
        saga_id: str | None,
        where: tuple[str, ...],
        reason: str | None,
        actor: str,
        dry_run: bool,
        as_json: bool,
        db: str,
        step: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        if (saga_id is None) == (not where):
            raise click.UsageError("give either a SAGA_ID or --where clauses (not both)")
        request = ActionRequest(action, actor, reason, step, data or {})
        selection = build_filter({"where": where}) if saga_id is None else None
        store = open_store(db, must_exist=True)
        try:
            operations = Operations(store)
            if selection is None:
                results = [operations.act(saga_id or "", request, dry_run=dry_run)]
            else:
                results = operations.act_many(selection, request, dry_run=dry_run)
        finally:
            store.close()
        _report(action, results, as_json, dry_run)
        if saga_id is not None and results[0].outcome == Outcome.REFUSED:
            raise click.ClickException(f"{action.value} refused: {results[0].note}")

    if action in (OperatorAction.RETRY, OperatorAction.SKIP):
        run = click.option(
            "--step",
            required=step_required,
            metavar="NAME",
            help="The step to mark done." if step_required else "Only this step.",
        )(run)
    if action == OperatorAction.SKIP:
        run = click.option(
            "--data",
            callback=_json_object,
            metavar="JSON",
            help="A JSON object merged into the saga's data (what the step would have given).",
        )(run)
    return click.command(action.value, help=HELP[action])(run)


def _report(
    action: OperatorAction, results: list[ActionResult], as_json: bool, dry_run: bool
) -> None:
    counts = Counter(result.outcome for result in results)
    if as_json:
        summary = {outcome.value: counts[outcome] for outcome in Outcome if counts[outcome]}
        document = {
            "action": action.value,
            "dryRun": dry_run,
            "summary": summary,
            "results": [r.to_dict() for r in results],
        }
        click.echo(json.dumps(document, indent=2))
        return
    title = f"{action.value}{' (dry run)' if dry_run else ''}: " + (
        ", ".join(f"{counts[o]} {o.value}" for o in Outcome if counts[o]) or "no instance selected"
    )
    table = Table(title=title)
    table.add_column("saga id", no_wrap=True)
    for column in ("outcome", "status", "what happened"):
        table.add_column(column, overflow="fold")
    for result in results:
        before, after = result.status_before, result.status_after
        moved = f"{before} → {after}" if before and before != after else str(before or "")
        table.add_row(
            result.saga_id,
            Text(result.outcome.value, OUTCOME_STYLE[result.outcome]),
            moved,
            result.note,
        )
    console().print(table)


ACTIONS = [_command(action) for action in OperatorAction]
"""The five operator commands, in the order of :class:`OperatorAction`."""
