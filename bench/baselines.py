"""The baseline table: every W2S method on every built default task, sorted by PGR.

    python bench/baselines.py [--tasks tweets,snli-pref] [--seeds 5] [--out FILE.md]

Runs ``aarlab baseline --task T --all --json`` (the lab-owner command) for each task and prints
one markdown table per task with transfer and PGR (mean ± SE over seeds), the weak floor and
the ceiling, and marks the best method: the "best tuned baseline" the lab must beat.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from aarlab.config import get_settings
from aarlab.tasks.build import is_built
from aarlab.tasks.registry import default_tasks


def run(task: str, seeds: int | None) -> tuple[str, list[dict]]:
    cmd = ["aarlab", "baseline", "--task", task, "--all", "--json"]
    if seeds:
        cmd += ["--seeds", str(seeds)]
    out = subprocess.run([sys.executable, "-m", "aarlab.cli", *cmd[1:]], check=True,
                         capture_output=True, text=True)
    return " ".join(cmd), json.loads(out.stdout)


def table(task: str, command: str, rows: list[dict]) -> str:
    r0 = rows[0]
    est = lambda e: f"{e['mean']:.3f} ± {e['se']:.3f}"  # noqa: E731
    lines = [f"### {task}", "", f"`{command}` — weak {est(r0['weak'])}, ceiling "
             f"{est(r0['ceiling'])}, {r0['pgr']['seeds']} seeds (mean ± SE)", "",
             "| method | transfer | PGR | seconds |", "|---|---|---|---|"]
    for i, r in enumerate(rows):
        name = f"**{r['method']}** (best)" if i == 0 else r["method"]
        lines.append(f"| {name} | {est(r['transfer'])} | {est(r['pgr'])} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=None, help="comma-separated (default: built defaults)")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the tables here")
    args = ap.parse_args()
    settings = get_settings()
    tasks = args.tasks.split(",") if args.tasks else [t.name for t in default_tasks()
                                                      if is_built(settings, t.name)]
    if not tasks:
        sys.exit("no default task is built: run `aarlab task build` first")
    text = ""
    for task in tasks:
        command, rows = run(task, args.seeds)
        text += table(task, command, rows) + "\n"
        print(table(task, command, rows), flush=True)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
