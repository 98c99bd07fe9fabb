"""What a sandbox costs per exec, against a plain subprocess, measured in one run.

    .venv/bin/python bench/sandbox.py [--repeats 30]

For each command (``true``, ``python -c pass``, ``python -c "import numpy, aarlab"``) it times
``subprocess.run`` (the floor), ``ProcessSandbox.exec`` and ``BubblewrapSandbox.exec``
(interleaved, so a shared machine's load hits all three alike) and prints the median
milliseconds and each sandbox's ratio to the floor. The load average is printed with the table.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aarlab.sandbox import BubblewrapSandbox, ProcessSandbox, SandboxSpec, sandbox_available

COMMANDS = {
    "true": ["true"],
    "python -c pass": [sys.executable, "-c", "pass"],
    "python: import numpy, aarlab": [sys.executable, "-c", "import numpy, aarlab"],
}


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    console = Console()
    ok, reason = sandbox_available()
    with tempfile.TemporaryDirectory() as tmp:
        spec = SandboxSpec(name="bench", workspace=Path(tmp) / "ws")
        runners = {
            "subprocess": lambda cmd: subprocess.run(cmd, capture_output=True, check=True,
                                                     cwd=spec.workspace),
            "ProcessSandbox": _exec(ProcessSandbox(spec, console=Console(file=io.StringIO()))),
        }
        if ok:
            runners["BubblewrapSandbox"] = _exec(BubblewrapSandbox(spec))
        else:
            console.print(f"[yellow]bubblewrap unavailable: {reason}[/]")
        table = Table(title=f"exec overhead, median of {args.repeats} "
                            f"(load average {os.getloadavg()[0]:.2f})")
        table.add_column("command")
        for name in runners:
            table.add_column(f"{name} ms", justify="right")
        for name in list(runners)[1:]:
            table.add_column(f"{name} / subprocess", justify="right")
        for label, cmd in COMMANDS.items():
            times: dict[str, list[float]] = {name: [] for name in runners}
            for run in runners.values():
                run(cmd)  # warm the page cache before timing
            for _ in range(args.repeats):
                for name, run in runners.items():
                    times[name].append(_time(lambda run=run, cmd=cmd: run(cmd)))
            med = {name: statistics.median(ts) for name, ts in times.items()}
            table.add_row(label, *(f"{m:.1f}" for m in med.values()),
                          *(f"{med[n] / med['subprocess']:.2f}x" for n in list(runners)[1:]))
        console.print(table)


def _exec(sandbox):
    def run(cmd):
        r = sandbox.exec(cmd)
        if not r.ok:
            raise SystemExit(f"{type(sandbox).__name__} failed on {cmd}: {r.stderr}")

    return run


if __name__ == "__main__":
    main()
