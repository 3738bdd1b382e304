"""Text from the database shown on a terminal as it is, never interpreted.

Correlation keys, saga data, failure reasons, step errors and notes come from outside (events,
participants' replies). Printed as they are, an escape sequence in them could recolour the
screen, move the cursor, rewrite what an operator sees (``\\r``) or set the window title, and
Rich would read ``[red]`` or ``[link=…]`` as markup. So every such value is shown through
:func:`shown`: a Rich ``Text`` (never parsed as markup) whose control characters are written as
Python-style escapes (``\\x1b``, ``\\r``, ``\\u202e``).
"""

from __future__ import annotations

import re

from rich.style import StyleType
from rich.text import Text

__all__ = ["escape_controls", "shown"]

# C0 and C1 control characters, DEL, and the Unicode bidirectional controls (they reorder what
# follows them on screen: "Trojan source"). Newlines too, unless the caller keeps them.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_BUT_NEWLINE = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(value: str, *, keep_newlines: bool = False) -> str:
    """``value`` with every control character written as an escape (``\\x1b``, ``\\r``)."""
    pattern = _CONTROLS_BUT_NEWLINE if keep_newlines else _CONTROLS
    return pattern.sub(_escape, value)


def shown(value: object, style: StyleType = "", *, keep_newlines: bool = False) -> Text:
    """``value`` as text for a table cell or a panel: markup is not parsed, control
    characters are escaped. ``keep_newlines``: for text the CLI laid out in lines itself."""
    return Text(escape_controls(str(value), keep_newlines=keep_newlines), style=style)
