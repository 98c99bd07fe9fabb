"""``aarlab task list | build | show``: the W2S task kits and their reference numbers."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from aarlab.config import get_settings
from aarlab.errors import TaskNotBuiltError
from aarlab.tasks.answer_key import PARTS, AnswerKey
from aarlab.tasks.build import BuildOptions, answer_key_dir, build_task, is_built, kit_dir
from aarlab.tasks.kit import SPLITS, TaskKit
from aarlab.tasks.registry import all_tasks, default_tasks, get_task

from .ui import console, print_json, progress_stages

task_app = typer.Typer(help="Build and inspect W2S task kits.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(task_app, name="task")


@task_app.command("list")
def list_tasks(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the known tasks, their format and whether they are built."""
    settings = get_settings()
    rows = [{"name": t.name, "format": t.format, "default": t.default,
             "built": is_built(settings, t.name), "description": t.description}
            for t in all_tasks()]
    if as_json:
        print_json(rows)
        return
    table = Table("task", "format", "default", "built", "description")
    for r in rows:
        table.add_row(r["name"], r["format"], "yes" if r["default"] else "opt-in",
                      "yes" if r["built"] else "no", r["description"])
    console.print(table)


@task_app.command("build")
def build(
    names: list[str] = typer.Argument(None, help="Tasks to build (default: every default task)."),
    all_defaults: bool = typer.Option(False, "--all", help="Build every default task."),
    seed: int = typer.Option(0, help="Build seed: fixes the split and the pairing."),
    force: bool = typer.Option(False, help="Rebuild even if already built."),
    strong_model: str = typer.Option(
        None, "--strong-model", help="Student encoder (see registry), e.g. mpnet; default: "
        "the task's own."),
    as_json: bool = typer.Option(False, "--json", help="Print the reference table as JSON."),
) -> None:
    """Fetch data and models, write the kit and answer key, run the references."""
    settings = get_settings()
    specs = [get_task(n) for n in names] if names else default_tasks()
    if all_defaults and names:
        raise typer.BadParameter("give task names or --all, not both")
    with progress_stages(enabled=not as_json) as stage:
        for spec in specs:
            if spec.notice and not as_json:
                console.print(f"[yellow]{spec.name}: {spec.notice}[/]")
            if is_built(settings, spec.name) and not force:
                continue
            t0 = time.monotonic()
            build_task(spec, settings, BuildOptions(seed=seed, strong_model=strong_model), stage)
            if not as_json:
                console.print(f"built {spec.name} in {time.monotonic() - t0:.0f} s")
    show_reference([s.name for s in specs], as_json)


def task_summary(name: str) -> dict:
    settings = get_settings()
    spec = get_task(name)
    if not is_built(settings, name):
        raise TaskNotBuiltError(f"task {name!r} is not built",
                                hint=f"run `aarlab task build {name}`")
    kit = TaskKit(kit_dir(settings, name))
    key = AnswerKey(answer_key_dir(settings, name), spec.format)
    m = kit.manifest
    out = {
        "name": name, "format": spec.format, "description": spec.description,
        "kit_dir": str(kit.dir), "answer_key_dir": str(key.dir),
        "sizes": m["sizes"], **{f"n_{s}": m["sizes"][s] for s in SPLITS},
        "strong_model": m["strong_model"], "weak_teacher": m["weak_teacher"],
        "student_head": m["student_head"]["kind"],
        "provenance": m["provenance"], "notice": m.get("notice"),
    }
    for which in ("weak", "ceiling"):
        out[which] = key.reference_estimate(which).as_dict()
        out[f"{which}_parts"] = {p: key.reference_estimate(which, p).as_dict() for p in PARTS}
    return out


@task_app.command("show")
def show(name: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Sizes, provenance and weak / ceiling accuracy ± SE of a built task."""
    s = task_summary(name)
    if as_json:
        print_json(s)
        return
    console.print(f"[bold]{name}[/] ({s['format']}): {s['description']}")
    if s["notice"]:
        console.print(f"[yellow]notice: {s['notice']}[/]")
    console.print(f"kit: {s['kit_dir']}\nanswer key: {s['answer_key_dir']}")
    console.print("sizes: " + ", ".join(f"{k} {v}" for k, v in s["sizes"].items()))
    console.print(f"strong model: {s['strong_model']} ({s['student_head']} head); "
                  f"weak teacher: {s['weak_teacher']['kind']}")
    prov = Table("package", "version", "file", "member", "sha256", "licence", title="provenance")
    for p in s["provenance"]:
        prov.add_row(p["package"], p["version"], p["file"], p["member"], p["sha256"][:16] + "…",
                     p["licence"])
    console.print(prov)
    show_reference([name], False)


def show_reference(names: list[str], as_json: bool) -> None:
    rows = [task_summary(n) for n in names]
    if as_json:
        print_json([{k: r[k] for k in ("name", "weak", "ceiling", "weak_parts", "ceiling_parts")}
                    for r in rows])
        return
    table = Table("task", "weak (test)", "ceiling (test)", "gap", "weak final", "ceiling final",
                  "seeds", title="reference runs: accuracy ± SE")
    for r in rows:
        w, c = r["weak"], r["ceiling"]
        table.add_row(r["name"], f"{w['mean']:.3f} ± {w['se']:.3f}",
                      f"{c['mean']:.3f} ± {c['se']:.3f}", f"{c['mean'] - w['mean']:+.3f}",
                      f"{r['weak_parts']['final']['mean']:.3f}",
                      f"{r['ceiling_parts']['final']['mean']:.3f}", str(w["seeds"]))
    console.print(table)
