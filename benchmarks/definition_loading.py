"""Loading a large saga definition: milliseconds per ``sagas.load_definition`` of a generated
file of ``--steps`` steps (each a command with a timeout, a retry policy, a compensation and an
``after``), best of ``--repeat`` after one warm-up load. ``--profile`` prints the functions that
took the most time (cProfile) instead.

Run from the repository root::

    .venv/bin/python -m benchmarks.definition_loading --steps 500
    .venv/bin/python -m benchmarks.definition_loading --steps 2000 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

from sagas import load_definition


def definition_text(steps: int) -> str:
    """A valid definition of ``steps`` steps in a chain."""
    lines = ["name: big", "trigger: Start", "correlation: id", "steps:"]
    for i in range(steps):
        lines += [
            f"  - name: step{i}",
            f"    command: {{type: Do{i}, data: {{id: id}}, success: Done{i}, failure: Failed{i}}}",
            "    timeout: 30s",
            "    retry: {attempts: 3, initial_delay: 1s}",
            f"    compensation: {{handler: undo{i}}}",
        ]
        if i:
            lines.append(f"    after: [step{i - 1}]")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse the options, write the file, time (or profile) loading it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "big.yaml"
        file.write_text(definition_text(options.steps), encoding="utf-8")
        load_definition(file)
        if options.profile:
            profile = cProfile.Profile()
            profile.runcall(load_definition, file)
            pstats.Stats(profile).sort_stats("tottime").print_stats(15)
            return
        times = []
        for _ in range(options.repeat):
            started = time.perf_counter()
            load_definition(file)
            times.append(time.perf_counter() - started)
        size = file.stat().st_size
    print(
        f"{options.steps} steps ({size:,} bytes): best {min(times) * 1000:.1f} ms of "
        f"{options.repeat} loads (load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
