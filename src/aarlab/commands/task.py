"""``aarlab task list | build | show``: the W2S task kits and their reference numbers."""

from __future__ import annotations

import time
from dataclasses import replace

import typer
from rich.console import Console
from rich.table import Table

from aarlab.config import get_settings
from aarlab.errors import TaskNotBuiltError

from .ui import console, print_json, progress_stages

err_console = Console(stderr=True)

task_app = typer.Typer(help="Build and inspect W2S task kits.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(task_app, name="task")


def task_column(table: Table, names: list[str]) -> None:
    """A task-name column that never wraps or cuts a name, even on an 80-column pipe."""
    table.add_column("task", no_wrap=True, min_width=max((len(n) for n in names), default=4))


@task_app.command("list")
def list_tasks(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the known tasks, their format and whether they are built."""
    from aarlab.tasks.build import is_built
    from aarlab.tasks.registry import all_tasks

    settings = get_settings()
    rows = [{"name": t.name, "format": t.format, "default": t.default,
             "built": is_built(settings, t.name), "description": t.description}
            for t in all_tasks()]
    if as_json:
        print_json(rows)
        return
    table = Table()
    task_column(table, [r["name"] for r in rows])
    for col in ("format", "default", "built", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["format"], "yes" if r["default"] else "opt-in",
                      "yes" if r["built"] else "no", r["description"])
    console.print(table)


@task_app.command("build")
def build(
    names: list[str] = typer.Argument(None, help="Tasks to build (default: every default task)."),
    all_defaults: bool = typer.Option(False, "--all", help="Build every default task."),
    seed: int = typer.Option(0, help="Build seed: fixes the split and the pairing."),
    force: bool = typer.Option(
        False, help="Rebuild even if already built, and serve the task even when its gap "
        "(ceiling - weak) is not clearly above 0."),
    strong_model: str = typer.Option(
        None, "--strong-model", help="Student encoder (see registry), e.g. mpnet; default: "
        "the task's own."),
    as_json: bool = typer.Option(False, "--json", help="Print the reference table as JSON."),
    as_name: str = typer.Option(
        None, "--as", help="Build a language-model task of this name from the one source task "
        "given (needs --weak-model and --strong-model)."),
    weak_model: str = typer.Option(
        None, "--weak-model", help="With --as: the weak teacher LM, fine-tuned (LoRA) on "
        "train_label: a packaged name (smollm2-135m, gemma3-270m, qwen2.5-0.5b), a local "
        "transformers folder or a hub id."),
    sizes: str = typer.Option(
        None, "--sizes", help="LABEL,UNLABEL,TEST rows (e.g. 200,400,300 for a CPU)."),
) -> None:
    """Fetch data and models, write the kit and answer key, run the references.

    Exits 1 when a task's gap (ceiling - weak, with its bootstrap interval) is not clearly above
    0: such a task is built but not served, unless ``--force``.
    """
    from aarlab.tasks.registry import default_tasks, get_task

    if all_defaults and names:
        raise typer.BadParameter("give task names or --all, not both")
    if as_name or weak_model:
        if not (as_name and weak_model and strong_model and names and len(names) == 1):
            raise typer.BadParameter("a language-model task needs one source task, --as NAME, "
                                     "--weak-model M and --strong-model M")
        from aarlab.tasks.lm_tasks import define, parse_sizes

        lm_spec = define(as_name, get_task(names[0]), weak_model, strong_model,
                         parse_sizes(sizes) if sizes else None)
        build_specs([lm_spec], seed=seed, rebuild=force, force=force, as_json=as_json)
        return
    specs = [get_task(n) for n in names] if names else default_tasks()
    if sizes:
        from aarlab.tasks.lm_tasks import parse_sizes

        specs = [replace(sp, sizes=parse_sizes(sizes)) for sp in specs]
    build_specs(specs, seed=seed, rebuild=force, force=force, strong_model=strong_model,
                as_json=as_json)


def build_specs(specs: list, *, seed: int = 0, rebuild: bool = False, force: bool = False,
                strong_model: str | None = None, as_json: bool = False) -> None:
    """Build (unless built and not ``rebuild``), print the references with the gap, and exit 1
    for a task whose gap is not clearly above 0 unless ``force`` (then it is served anyway)."""
    from aarlab.tasks.answer_key import AnswerKey, TaskRefusedError
    from aarlab.tasks.build import BuildOptions, answer_key_dir, build_task, is_built

    settings = get_settings()
    with progress_stages(enabled=not as_json) as stage:
        for spec in specs:
            if spec.notice and not as_json:
                console.print(f"[yellow]{spec.name}: {spec.notice}[/]")
            if is_built(settings, spec.name) and not rebuild:
                continue
            t0 = time.monotonic()
            build_task(spec, settings, BuildOptions(seed=seed, strong_model=strong_model,
                                                    force=force), stage)
            if not as_json:
                console.print(f"built {spec.name} in {time.monotonic() - t0:.0f} s")
    show_reference([s.name for s in specs], as_json)
    refused = []
    for spec in specs:
        try:
            AnswerKey(answer_key_dir(settings, spec.name), spec.format).require_servable(
                spec.name)
        except TaskRefusedError as e:
            refused.append(e)
    for e in refused:
        err_console.print(f"[red]refused:[/] {e.message}\n  to fix: {e.hint}", highlight=False)
    if refused:
        raise typer.Exit(1)


def task_summary(name: str) -> dict:
    from aarlab.kits.kit import TaskKit
    from aarlab.tasks.answer_key import PARTS, AnswerKey
    from aarlab.tasks.build import answer_key_dir, is_built, kit_dir
    from aarlab.tasks.registry import get_task

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
        "sizes": m["sizes"], **{f"n_{s}": n for s, n in m["sizes"].items()},
        "strong_model": m["strong_model"], "weak_teacher": m["weak_teacher"],
        "student_head": m["student_head"]["kind"],
        "provenance": m["provenance"], "notice": m.get("notice"),
    }
    if "student_lm" in m:  # a language-model task: both models and how they were tuned
        out["student_lm"], out["lm_fit"] = m["student_lm"], m.get("lm_fit")
    for which in ("weak", "ceiling"):
        out[which] = key.reference_estimate(which).as_dict()
        out[f"{which}_parts"] = {p: key.reference_estimate(which, p).as_dict() for p in PARTS}
    ref = key.reference
    # Which tuned-family member is the ceiling, and its cross-validated accuracy on train_unlabel.
    out["ceiling_member"] = ref.get("ceiling_member")
    out["gap"] = ref.get("gap")
    out["gap_ok"], out["served"] = key.gap_ok, key.servable
    out["forced"] = bool(ref.get("forced", False))
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
    member = s["ceiling_member"]
    if member and member.get("members"):
        fam = Table("member", "CV accuracy (train_unlabel)", "± SE",
                    title=f"ceiling family, {member['folds']}-fold CV: {member['member']} chosen")
        for m_name, cv in member["members"].items():
            mark = " ←" if m_name == member["member"] else ""
            fam.add_row(m_name + mark, f"{cv['acc']:.3f}", f"{cv['se']:.3f}")
        console.print(fam)
    show_reference([name], False)


def show_reference(names: list[str], as_json: bool) -> None:
    rows = [task_summary(n) for n in names]
    if as_json:
        print_json([{k: r[k] for k in ("name", "weak", "ceiling", "weak_parts", "ceiling_parts",
                                        "ceiling_member", "gap", "gap_ok", "served")}
                    for r in rows])
        return
    seeds = ", ".join(sorted({str(r["weak"]["seeds"]) for r in rows}))
    # Narrow enough for an 80-column pipe; the SEs and the parts are in --json.
    table = Table(title=f"reference runs on test: accuracy (mean of {seeds} seeds); "
                        "gap with its 95 % bootstrap interval")
    task_column(table, names)
    for col in ("weak", "ceiling", "member", "gap [95 % CI]", "served"):
        table.add_column(col, no_wrap=True, min_width=min(len(col), 7))
    for r in rows:
        w, c, gap = r["weak"], r["ceiling"], r["gap"] or {}
        gap_txt = (f"{gap['mean']:+.3f} [{gap['ci95'][0]:.3f},{gap['ci95'][1]:.3f}]"
                   if "ci95" in gap else f"{c['mean'] - w['mean']:+.3f}")
        served = "yes" if r["gap_ok"] else ("forced" if r["served"] else "[red]no[/]")
        table.add_row(r["name"], f"{w['mean']:.3f}", f"{c['mean']:.3f}",
                      (r["ceiling_member"] or {}).get("member", "?"), gap_txt, served)
    console.print(table)
