"""Text that came from outside — a correlation key, saga data, a participant's failure reason,
the step error and the log's notes quoting it — is shown escaped by ``sagas list``, ``show``
(with its timeline) and ``stats``: escape sequences, ``\\r``, bells and bidi controls are
written out, Rich markup is printed as it is. Checked on the raw bytes, plain and on a colour
terminal (where Rich's own styling is the only escape sequence allowed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagas import SagaDefinition
from sagas.cli import cli
from sagas.cli.terminal import escape_controls, shown
from sagas.engine.decide import saga_id_for
from sagas.events import Event
from sagas.testing import ManualClock, saga_engine

CLEAR_SCREEN = "\x1b[2J"
SET_TITLE = "\x1b]0;pwned\x07"
KEY = f"o-1{CLEAR_SCREEN}{SET_TITLE}[red]k[/red]\r"
ADDRESS = "[link=https://evil.example]click[/link]\x1b[31m"
REASON = "no stock\x1b[5m[bold red]NOW[/bold red]\u202eevil\x08"
HOSTILE = (CLEAR_SCREEN, SET_TITLE, "\x1b[5m", "\x1b]8;", "\u202e", "\x07", "\x08", "\r")
"""What must never reach the terminal raw (\\x1b]8; is how a terminal hyperlink starts; red,
\\x1b[31m, is left out: Rich colours a status with it)."""


@pytest.fixture
def hostile_db(tmp_path: Path, order_definition: SagaDefinition) -> tuple[str, str]:
    """An order whose key and data hold escape sequences and markup, compensated after the
    inventory service refused it with a reason that holds more. The file and the saga id."""
    path = str(tmp_path / "hostile.db")
    saga_id = saga_id_for("order_fulfillment", KEY)
    clock = ManualClock()
    with saga_engine(path, clock=clock) as engine:
        engine.register(order_definition)
        data = {"orderId": KEY, "items": [{"sku": "[b]x[/b]", "quantity": 1}], "address": ADDRESS}
        engine.publish(Event.create("OrderCreated", data, at=clock.now()))
        engine.run_until_idle()
        refusal = {"orderId": KEY, "reason": REASON}
        engine.publish(
            Event.create("InventoryReservationFailed", refusal, at=clock.now(), saga_id=saga_id)
        )
        engine.run_until_idle()
        state = engine.store.instance(saga_id).state
    assert REASON in (state.reason or "")  # the hostile text is stored as it came
    return path, saga_id


def run(*args: str, colour: bool) -> bytes:
    env = {"COLUMNS": "200", "TERM": "xterm-256color"}
    env |= {"FORCE_COLOR": "1"} if colour else {"NO_COLOR": "1", "FORCE_COLOR": ""}
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def commands(db: str, saga_id: str) -> list[list[str]]:
    return [["list", "--db", db], ["show", saga_id, "--db", db], ["stats", "--db", db]]


@pytest.mark.parametrize("which", ["list", "show", "stats"])
def test_no_escape_sequence_reaches_a_plain_output(hostile_db: tuple[str, str], which: str) -> None:
    db, saga_id = hostile_db
    (command,) = [c for c in commands(db, saga_id) if c[0] == which]
    out = run(*command, colour=False)
    assert b"\x1b" not in out
    for raw in HOSTILE:
        assert raw.encode() not in out, f"{raw!r} reached the terminal"


@pytest.mark.parametrize("which", ["list", "show"])
def test_on_a_colour_terminal_only_richs_own_styling_is_sent(
    hostile_db: tuple[str, str], which: str
) -> None:
    db, saga_id = hostile_db
    (command,) = [c for c in commands(db, saga_id) if c[0] == which]
    out = run(*command, colour=True).decode()
    assert "\x1b[" in out  # the colours are on: the check below is not vacuous
    for raw in HOSTILE:
        assert raw not in out, f"{raw!r} reached the terminal"
    # Every escape sequence left is a colour/style (SGR) sequence Rich wrote itself.
    sequences = set(re.findall(r"\x1b[^m]*m?", out))
    assert all(re.fullmatch(r"\x1b\[[0-9;]*m", s) for s in sequences), sequences


def column(table: str, index: int) -> str:
    """The text of one column of a Rich table, its folded lines joined (at most 9 columns)."""
    cells = [line.split("│")[index].strip() for line in table.splitlines() if line.startswith("│")]
    return "".join(cells)


def test_list_shows_the_key_and_reason_escaped_and_markup_as_text(
    hostile_db: tuple[str, str],
) -> None:
    db, _ = hostile_db
    out = run("list", "--db", db, colour=False).decode()
    assert column(out, 3) == "o-1\\x1b[2J\\x1b]0;pwned\\x07[red]k[/red]\\r"
    reason = column(out, 6).replace(" ", "")  # wrapped at spaces: compare without them
    assert reason.endswith("nostock\\x1b[5m[boldred]NOW[/boldred]\\u202eevil\\x08")


def test_show_prints_data_reason_error_and_notes_escaped_with_markup_as_text(
    hostile_db: tuple[str, str],
) -> None:
    db, saga_id = hostile_db
    out = run("show", saga_id, "--db", db, colour=False).decode()
    flat = re.sub(r"[\s│┃|]+", "", out)  # table borders and folding removed
    assert "[link=https://evil.example]click[/link]" in flat  # data: markup kept as text
    assert "[b]x[/b]" in flat
    assert "nostock\\x1b[5m[boldred]NOW[/boldred]\\u202eevil\\x08" in flat  # reason, error
    assert "\\x1b]0;pwned\\x07" in flat
    assert "\\r" in flat
    # The reason shows in the header, the step's error and the timeline's note.
    assert flat.count("NOW[/boldred]") >= 3


def test_escape_controls_writes_every_control_character_out() -> None:
    every = "".join(map(chr, range(0x20))) + "\x7f\x85\x9b\u202e\u2066"
    escaped = escape_controls(every)
    assert escaped.isprintable()
    assert escaped.startswith("\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\t\\n\\x0b\\x0c\\r")
    assert escaped.endswith("\\x7f\\x85\\x9b\\u202e\\u2066")
    assert escape_controls("a\nb", keep_newlines=True) == "a\nb"
    assert escape_controls("plain [red]text[/red] é ✓") == "plain [red]text[/red] é ✓"
    assert shown("[red]x[/red]").plain == "[red]x[/red]"
