"""``python -m fuzz``: the full fuzzing campaign (``make fuzz``), its figures printed at the end.

The work is split into parts run by a pool of processes (two by default: this machine's
cores); each part has its own seed and its own temporary databases.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from fuzz.definitions import fuzz_generated, fuzz_mutants
from fuzz.events import fuzz_events, fuzz_http_bodies
from fuzz.outcomes import Tally, run_part

Part = Callable[[], Tally]


def _parts(args: argparse.Namespace) -> list[Part]:
    parts: list[Part] = []
    chunk = max(1, args.chunk)
    for name, total, run in (
        ("generated", args.definitions, fuzz_generated),
        ("mutants", args.mutants, fuzz_mutants),
        ("events", args.events, fuzz_events),
        ("http", args.bodies, fuzz_http_bodies),
    ):
        pieces = max(1, -(-total // chunk)) if total else 0
        for piece in range(pieces):
            count = min(chunk, total - piece * chunk)
            seed = args.seed * 1_000 + piece
            if name == "mutants":
                parts.append(partial(run, count, seed=seed, processes=2 if piece == 0 else 0))
            elif name == "events":
                parts.append(partial(run, count, seed=seed, processes=5 if piece == 0 else 0))
            else:
                parts.append(partial(run, count, seed=seed))
    return parts


def main(argv: list[str] | None = None) -> int:
    """Run the campaign; the exit status is 1 when anything crashed."""
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument(
        "--definitions", type=int, default=100_000, help="documents generated from the schema"
    )
    parser.add_argument(
        "--mutants", type=int, default=20_000, help="mutants of the shipped definition files"
    )
    parser.add_argument("--events", type=int, default=100_000, help="random and mutated events")
    parser.add_argument("--bodies", type=int, default=10_000, help="HTTP API request bodies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=5_000, help="inputs per part")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(
        f"fuzz: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{args.processes} processes, seed {args.seed}",
        flush=True,
    )
    totals: dict[str, Tally] = {}
    context = multiprocessing.get_context("spawn")  # no engine state shared across a fork
    with context.Pool(args.processes, maxtasksperchild=1) as pool:
        for tally in pool.imap_unordered(run_part, _parts(args)):
            total = totals.setdefault(tally.name, Tally(tally.name, unit=tally.unit))
            total.merge(tally)
            total.seconds += tally.seconds
            print(
                f"  part done: {tally.name}: {tally.inputs:,} {tally.unit}, "
                f"crashes {tally.crash_count}",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    crashes = 0
    for tally in totals.values():
        print(tally.report())
        crashes += tally.crash_count
    print(
        f"== fuzz: {sum(t.inputs for t in totals.values()):,} inputs in {elapsed / 60:,.1f} min "
        f"wall-clock ({args.processes} processes; rates above are per process-second); "
        f"crashes: {crashes}"
    )
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
