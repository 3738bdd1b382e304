"""What a campaign counts: outcomes by kind, and every crash with the input that caused it."""

from __future__ import annotations

import re
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Crash", "Tally"]

_DIGITS = re.compile(r"[0-9]+")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _shape(message: str) -> str:
    """A message without its numbers and quoted values: crashes of one kind share it."""
    return _DIGITS.sub("N", _QUOTED.sub("'…'", message))[:200]


def _bytes(reproducer: bytes | str) -> bytes:
    if isinstance(reproducer, str):
        return reproducer.encode("utf-8", "surrogatepass")
    return reproducer


MAX_KEPT = 20
"""How many crashes (and findings) of one kind are kept with their input."""


@dataclass(frozen=True)
class Crash:
    """An input that made a path raise something other than its documented errors (or break
    a promise: a traceback printed, something stored from a refused input)."""

    path: str
    kind: str
    message: str
    reproducer: bytes

    def __str__(self) -> str:
        shown = self.reproducer[:300]
        more = f" (+{len(self.reproducer) - 300:,} bytes)" if len(self.reproducer) > 300 else ""
        return f"[{self.path}] {self.kind}: {self.message[:500]}\n    input: {shown!r}{more}"


@dataclass
class Tally:
    """Outcomes of one campaign, counted by path and kind; crashes kept with their input."""

    name: str
    unit: str = "inputs"
    inputs: int = 0
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    crashes: list[Crash] = field(default_factory=list)
    crash_count: int = 0
    findings: list[Crash] = field(default_factory=list)
    finding_count: int = 0
    signatures: Counter[str] = field(default_factory=Counter)
    """How often each crash or finding was seen (the first input of each is kept)."""
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0

    def count(self, path: str, kind: str) -> None:
        """One more outcome ``kind`` on ``path``."""
        self.outcomes[path, kind] += 1

    def crash(self, path: str, exc: BaseException | str, reproducer: bytes | str) -> None:
        """An input that crashed ``path`` (an unexpected exception, or a broken promise)."""
        self.crash_count += 1
        self.count(path, "CRASH")
        if isinstance(exc, BaseException):
            kind = type(exc).__name__
            message = "".join(traceback.format_exception_only(exc)).strip()
        else:
            kind, message = "broken promise", exc
        signature = f"{path} {kind} {_shape(message)}"
        self.signatures[signature] += 1
        if self.signatures[signature] == 1 and len(self.crashes) < MAX_KEPT:
            self.crashes.append(Crash(path, kind, message, _bytes(reproducer)))

    def finding(self, path: str, what: str, reproducer: bytes | str) -> None:
        """A refusal whose message falls short (no line, no event id) without crashing."""
        self.finding_count += 1
        self.count(path, "finding: " + what.split(":")[0])
        signature = f"{path} finding {_shape(what)}"
        self.signatures[signature] += 1
        if self.signatures[signature] == 1 and len(self.findings) < MAX_KEPT:
            self.findings.append(Crash(path, "finding", what, _bytes(reproducer)))

    def merge(self, other: Tally) -> None:
        """Add ``other``'s counts (a worker process's) to this one."""
        self.inputs += other.inputs
        self.outcomes.update(other.outcomes)
        self.crash_count += other.crash_count
        self.finding_count += other.finding_count
        for mine, theirs in ((self.crashes, other.crashes), (self.findings, other.findings)):
            for crash in theirs:
                signature = f"{crash.path} {crash.kind} {_shape(crash.message)}"
                if signature not in self.signatures and len(mine) < MAX_KEPT:
                    mine.append(crash)
        self.signatures.update(other.signatures)

    def stop(self) -> None:
        """Record the time taken so far."""
        self.seconds = time.perf_counter() - self.started

    def report(self) -> str:
        """The figures, as printed by ``make fuzz``."""
        rate = self.inputs / self.seconds if self.seconds else 0.0
        lines = [
            f"== {self.name}: {self.inputs:,} {self.unit} in {self.seconds:,.1f} s "
            f"({rate:,.0f} {self.unit}/s); crashes: {self.crash_count}; "
            f"findings: {self.finding_count}"
        ]
        for (path, kind), number in sorted(self.outcomes.items()):
            lines.append(f"   {path:<28} {kind:<40} {number:>9,}")
        lines += [
            f"   CRASH (distinct kinds: {len(self.crashes)}) {crash}" for crash in self.crashes
        ]
        lines += [f"   FINDING {finding}" for finding in self.findings]
        return "\n".join(lines)


def run_part(part: Callable[[], Tally]) -> Tally:
    """Run one part of the campaign (in a worker process: defined here, not in ``__main__``,
    which processes started by spawning cannot import)."""
    return part()
