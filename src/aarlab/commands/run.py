"""``aarlab run``: the main job — a lab of parallel researchers on a task, then a report."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from aarlab.config import get_settings
from aarlab.errors import AarlabError
from aarlab.lab.orchestrator import Lab, LabOptions
from aarlab.lab.report import write_report
from aarlab.sandbox.bwrap import sandbox_available
from aarlab.store.db import Store
from aarlab.tasks.build import BuildOptions, build_task, is_built
from aarlab.tasks.registry import get_task

from .ui import print_json, progress_stages

err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``1.5h`` or plain seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise AarlabError(f"--budget: expected a duration like 90s, 30m or 1h, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def run(
    task: str = typer.Option("tweets", "--task", "-t", help="Task to research."),
    researchers: int = typer.Option(3, "--researchers", "-n", min=1, max=64),
    budget: str = typer.Option("30m", "--budget", help="Wall-clock budget: 90s, 30m, 1h."),
    resume: bool = typer.Option(False, "--resume", help="Continue the last unfinished lab."),
    report_dir: Path = typer.Option(None, "--report-dir", help="Default: AARLAB_HOME/reports."),
    as_json: bool = typer.Option(False, "--json", help="End with one JSON line."),
    directions: Path = typer.Option(None, "--directions", help="Your own directions JSON."),
    max_experiments: int = typer.Option(None, "--max-experiments", min=1,
                                        help="Per researcher."),
    max_submissions: int = typer.Option(None, "--max-submissions", min=0,
                                        help="Per researcher."),
    allow_unsandboxed: bool = typer.Option(
        False, "--allow-unsandboxed",
        help="Run researchers as plain processes if bubblewrap cannot run (unsafe)."),
    port: int = typer.Option(None, "--port", help="Also serve the API on 127.0.0.1:PORT."),
) -> None:
    """Start the server and N sandboxed researchers on a task; print and write a report."""
    settings = get_settings()
    spec = get_task(task)
    ok, why = sandbox_available()
    if not ok:
        if not allow_unsandboxed:
            raise AarlabError(f"cannot sandbox researchers: {why}",
                              hint="apt-get install -y bubblewrap, or pass --allow-unsandboxed")
        err.print(f"[bold red]WARNING: researchers will run WITHOUT a sandbox ({why}). They "
                  "can read anything this user can, including the answer key.[/]")
    if not is_built(settings, task):
        with progress_stages(enabled=not as_json) as stage:
            build_task(spec, settings, BuildOptions(), stage)
    options = LabOptions(task=task, researchers=researchers, budget_s=parse_duration(budget),
                         max_experiments=max_experiments, max_submissions=max_submissions,
                         directions_file=directions, allow_unsandboxed=allow_unsandboxed,
                         port=port)
    store = Store(settings.database_url)
    lab = Lab(settings, store, options, on_warning=lambda msg: err.print(f"[yellow]{msg}[/]"))
    lab_id = lab.resume() if resume else lab.create()
    if not as_json:
        err.print(f"lab {lab_id} on {task}: {len(lab.members)} researchers, budget "
                  f"{lab.options.budget_s / 60:.1f} min ({lab.remaining() / 60:.1f} left)")
    with Live(console=err, refresh_per_second=2, transient=False,
              auto_refresh=False) as live:
        def tick(rows: list[dict], left: float) -> None:
            if not as_json:
                live.update(status_table(lab_id, task, rows, left), refresh=True)

        lab.run(on_tick=tick)
    if not as_json:
        err.print("writing the report (the first time on a task also runs the classical "
                  "baselines)…")
    summary = write_report(store, settings, lab_id, report_dir or settings.home / "reports",
                           threads=settings.torch_threads)
    if as_json:
        print_json({k: v for k, v in summary.items() if k != "points"})
        return
    err.print(summary_table(summary))
    err.print(f"report: {summary['report_path']}")


def status_table(lab_id: int, task: str, rows: list[dict], left: float) -> Table:
    t = Table(title=f"lab {lab_id} on {task} — {left / 60:.1f} min left")
    for col in ("researcher", "direction", "status", "current idea", "experiments",
                "submissions", "best released PGR", "restarts"):
        t.add_column(col, overflow="fold")
    for r in rows:
        best = r["best_released_pgr"]
        t.add_row(r["researcher"], r["direction"], r["status"] + ("" if r["sandboxed"]
                                                                   else " [red](unsandboxed)[/]"),
                  r["current_idea"][:60], str(r["experiments"]), str(r["submissions"]),
                  "–" if best is None else f"{best:.3f}", str(r["restarts"]))
    return t


def summary_table(s: dict) -> Table:
    t = Table("", "value", title=f"lab {s['lab_id']} on {s['task']}")
    def fmt(v):
        return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
    for label, key in (("best released feedback PGR", "best_released_pgr"),
                       ("lab's final-part PGR (pick by feedback)", "best_final_pgr"),
                       ("best classical baseline final-part PGR", "best_baseline_pgr"),
                       ("experiments", "experiments"), ("submissions", "submissions"),
                       ("findings", "findings"), ("probe flags", "probe_flags")):
        t.add_row(label, fmt(s[key]))
    return t
