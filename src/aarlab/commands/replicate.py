"""``aarlab replicate REF``, ``aarlab report`` and ``aarlab task import DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from aarlab.config import get_settings

from .ui import console, plain, print_json

if TYPE_CHECKING:
    from aarlab.store.db import Store


def _store() -> Store:
    from aarlab.server.app import open_store

    return open_store(get_settings())


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}",
                                 param_hint="--redraw-seeds") from None
    return seeds


def replicate_cmd(
    ref: str = typer.Argument(..., help="Submission id or snapshot id (sha256)."),
    redraw_seeds: str = typer.Option("101", help="Build seeds of the re-drawn splits, comma-"
                                                 "separated (never the original's)."),
    tasks: list[str] = typer.Option(None, "--task", help="Other tasks to run on (default: "
                                                          "every built task)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Re-run a result's method outside any sandbox and compare with its claim.

    Fresh seeds (teacher seeds kept out of every kit), a re-drawn split and other tasks, each
    with final-part PGR and its 95% interval, and its paired difference from weak_soft (copying
    the teacher) on the same kit and seeds: above, below or tie.
    """
    from aarlab.replication.method import ReplicationError, load_method
    from aarlab.replication.replicate import replicate, targets_for
    from aarlab.replication.report import vs_weak_soft_cell

    settings = get_settings()
    method = load_method(_store(), settings, ref)
    if not method.replicable:
        raise ReplicationError(f"{ref} cannot be replicated: {method.why_not}")
    report = replicate(method, targets_for(method, settings, _seeds(redraw_seeds), tasks),
                       settings.torch_threads, settings)
    if as_json:
        print_json(report)
        return
    claim = method.claim
    used = report["seeds_used"]
    console.print(f"[bold]{ref}[/] on {method.task}: claimed final PGR "
                  f"{claim.get('pgr_final', float('nan')):.3f} (released "
                  f"{claim.get('released_pgr')}); seeds it used: "
                  f"{'not recorded' if used is None else ','.join(map(str, used))}",
                  highlight=False)
    table = Table("target", "kind", "seeds", "final PGR [95%]", "short by (SE)",
                  "weak_soft [95%]", "− weak_soft, paired [95%]", "how")
    for r in report["results"]:
        p = r["pgr_final"]
        short = "–" if r["shortfall_se"] is None else f"{r['shortfall_se']:+.1f}"
        seeds = ",".join(map(str, r["seeds"])) + ("" if r.get("fresh", True) or
                                                   r["kind"] != "fresh-seeds" else " (not fresh)")
        ci = p.get("ci95")
        soft = r.get("vs_weak_soft")
        w = soft["weak_soft"] if soft else None
        vs = vs_weak_soft_cell(r)
        table.add_row(r["target"], r["kind"], seeds,
                      f"{p['mean']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci
                      else f"{p['mean']:.3f} ± {p['se']:.3f}",
                      f"[red]{short}[/]" if r["falls_short"] else short,
                      f"{w['mean']:.3f} [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}]" if w else "–",
                      f"[red]{vs}[/]" if soft and soft["verdict"] == "below" else vs,
                      plain(r["how"]))
    console.print(table)


def report_cmd(
    lab: int = typer.Option(None, "--lab", help="Lab id (default: the latest)."),
    out: Path = typer.Option(None, "--out", help="Report folder (default: HOME/reports)."),
    n_replicate: int = typer.Option(3, "--replicate", min=0, help="Top results to replicate."),
    redraw_seeds: str = typer.Option("101", help="Build seeds of the re-drawn splits."),
    tasks: list[str] = typer.Option(None, "--task", help="Other tasks for replication "
                                                          "(default: every built task)."),
) -> None:
    """Write the final report: progress, leaderboard with replicated PGR, audit, cost, specs."""
    from aarlab.replication.report import latest_lab_id, write_final_report

    settings = get_settings()
    store = _store()
    lab_id = lab if lab is not None else latest_lab_id(store)
    r = write_final_report(store, settings, lab_id, out or settings.home / "reports",
                           n_replicate, _seeds(redraw_seeds), tasks, settings.torch_threads)
    console.print(f"report: {r['report_path']}", highlight=False)
    console.print("audit: " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                         for k, v in r["audit"]["counts"].items()))


def import_cmd(
    folder: Path = typer.Argument(..., help="Folder with train_label.jsonl, train_unlabel.jsonl "
                                            "and test.jsonl (every row labelled)."),
    name: str = typer.Option(None, "--name", help="Task name (default: the folder's name)."),
    build: bool = typer.Option(True, "--build/--no-build",
                               help="Build the task now and report its gap (default)."),
    force: bool = typer.Option(False, help="Serve the task even when its gap (ceiling - weak) "
                                           "is not clearly above 0."),
    strong_model: str = typer.Option(None, "--strong-model",
                                     help="Student encoder, e.g. mpnet (default minilm-l6)."),
) -> None:
    """Import a user task from jsonl files and build it: the kit gets no label, the answer key
    every label; the gap (ceiling - weak) is reported, and a task without one is not served."""
    from aarlab.tasks.task_import import import_task

    from .task import build_specs

    spec = import_task(folder, name, get_settings())
    console.print(f"imported {spec.name} ({spec.format}: {spec.sizes.train_label} / "
                  f"{spec.sizes.train_unlabel} / {spec.sizes.test} rows)", highlight=False)
    if build:
        build_specs([spec], rebuild=True, force=force, strong_model=strong_model)
    else:
        console.print(f"build it with `aarlab task build {spec.name}`", highlight=False)


def register(app: typer.Typer) -> None:
    from .task import task_app

    app.command("replicate")(replicate_cmd)
    app.command("report")(report_cmd)
    task_app.command("import")(import_cmd)
