"""``aarlab methods`` and ``aarlab baseline``: the method library and its scores (lab-owner view).

``baseline`` opens the answer key through the scorer, so it is for the lab owner; researchers
get predictions from ``run_experiment`` and scores only from the scoring server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from aarlab.config import get_settings
from aarlab.errors import SpecError, TaskNotBuiltError

from .ui import console, print_json, progress_stages

if TYPE_CHECKING:
    from aarlab.w2s.spec import MethodSpec


def register(app: typer.Typer) -> None:
    app.command("methods")(methods)
    app.command("baseline")(baseline)


def methods(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the W2S methods: stage, parameters (default, range) and a one-line description."""
    from aarlab.w2s.methods import describe

    rows = describe()
    if as_json:
        print_json(rows)
        return
    table = Table("stage", Column("parameters (default, range)", overflow="fold"),
                  "description", "cost")
    # Names are what people type: never truncate them, let the prose columns wrap instead.
    table.columns.insert(0, Column("method", no_wrap=True,
                                   min_width=max(len(m["name"]) for m in rows)))
    for m in rows:
        # Text, not markup: "[0, 1]" ranges and "[head ...]" labels must print as written.
        table.add_row(m["name"], m["stage"], Text("\n".join(_param_text(p) for p in m["params"])),
                      Text(m["doc"]), Text(m["cost"]))
    console.print(table)


def _param_text(p: dict) -> str:
    if p["type"] == "choice":
        return f"{p['name']}={p['default']} {{{', '.join(map(str, p['choices']))}}}"
    if "min" in p or "max" in p:
        left = "[" if p.get("min_inclusive") else "("
        right = "]" if p.get("max_inclusive") else ")"
        return f"{p['name']}={p['default']} {left}{p.get('min')}, {p.get('max')}{right}"
    return f"{p['name']}={p['default']}"


def baseline(
    task: str = typer.Option(..., "--task", "-t", help="Task name (see `aarlab task list`)."),
    method: str = typer.Option(None, "--method", "-m", help="Method name (see `aarlab methods`)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Method parameter KEY=VALUE."),
    head: list[str] = typer.Option(None, "--head", help="Student head override KEY=VALUE."),
    spec: str = typer.Option(None, "--spec", help="A full method spec: JSON text or @file."),
    run_all: bool = typer.Option(False, "--all", help="Run every method with its defaults."),
    tuned: bool = typer.Option(False, "--tuned",
                               help="Add the tuned classical baseline (parameters tuned with a "
                                    "label-free signal and a researcher's submission budget)."),
    seeds: int = typer.Option(None, "--seeds", "-n", min=1,
                              help="Seeds to run (default: every seed the kit has)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run W2S methods on a task: PGR on the feedback and final halves with 95% intervals.

    Rows are ordered by feedback-half PGR, the half a researcher may choose on; the first row
    is the best classical method, to be judged on the final half.
    """
    from aarlab.cores import usable_cores
    from aarlab.kits.kit import TaskKit
    from aarlab.lab.baselines import default_rows, evaluate, pick_on_feedback, tuned_baseline
    from aarlab.tasks.answer_key import AnswerKey
    from aarlab.tasks.build import answer_key_dir, is_built, kit_dir
    from aarlab.tasks.registry import get_task
    from aarlab.tasks.scorer import Scorer

    specs = [] if tuned and not (method or spec or run_all) else _specs(
        method, param or [], head or [], spec, run_all)
    settings = get_settings()
    get_task(task)
    if not is_built(settings, task):
        raise TaskNotBuiltError(f"task {task!r} is not built",
                                hint=f"run `aarlab task build {task}`")
    kit = TaskKit(kit_dir(settings, task))
    if seeds is not None and seeds > len(kit.seeds):
        raise SpecError(f"--seeds: task {task!r} has weak labels for {len(kit.seeds)} seeds, "
                        f"got {seeds}")
    seed_list = kit.seeds[:seeds] if seeds else kit.seeds
    scorer = Scorer(AnswerKey(answer_key_dir(settings, task), kit.format), kit.ids("test"))
    key = scorer.key
    results = []
    with progress_stages(enabled=not as_json) as stage:
        if run_all and seeds is None:  # every kit seed: the cached rows the lab compares with
            with stage(f"{task}: every method, defaults (cached after)", None):
                results = [dict(r, defaults=True) for r in
                           default_rows(kit, key, threads=settings.torch_threads,
                                        workers=usable_cores())]
        else:
            for s in specs:
                with stage(f"{task}: {s.label}", len(seed_list)) as advance:
                    results.append(evaluate(kit, scorer, s, seed_list,
                                            on_seed=lambda _: advance(1),
                                            threads=settings.torch_threads))
        if run_all:
            pick_on_feedback(results)["chosen"] = True
        if tuned:
            with stage(f"{task}: tuned baseline (cached after)", None):
                row, _ = tuned_baseline(kit, key, settings, threads=settings.torch_threads,
                                        workers=usable_cores())
            results.append({**row, "method": f"tuned: {row['method']}"})
    results.sort(key=lambda r: -_feedback(r))
    if as_json:
        print_json(results if run_all or len(results) > 1 else results[0])
        return
    _print_table(task, results, len(seed_list))


def _feedback(r: dict) -> float:
    return (r.get("vote") or r)["pgr_feedback"]["mean"]


def _specs(method: str | None, params: list[str], head: list[str], spec: str | None,
           run_all: bool) -> list[MethodSpec]:
    from aarlab.w2s.methods import all_methods
    from aarlab.w2s.spec import parse_spec

    given = sum(x is not None and x is not False for x in (method, spec, run_all or None))
    if given != 1:
        raise SpecError("--method, --spec, --all: give exactly one",
                        hint="e.g. `aarlab baseline --task tweets --method logconf`")
    if run_all:
        if params or head:
            raise SpecError("--param/--head: not used with --all (each method runs with its "
                            "defaults)")
        return [parse_spec({"method": m.name}) for m in all_methods()]
    if spec is not None:
        if params:
            raise SpecError("--param: put parameters inside --spec")
        text = _read_spec_text(spec)
        obj = json.loads(text) if _is_json(text) else text
        if head and isinstance(obj, dict):
            obj = {**obj, "head": {**obj.get("head", {}), **_kv(head, "--head")}}
        return [parse_spec(obj)]
    return [parse_spec({"method": method, "params": _kv(params, "--param"),
                        "head": _kv(head, "--head")})]


def _read_spec_text(spec: str) -> str:
    if not spec.startswith("@"):
        return spec
    path = Path(spec[1:])
    if not path.is_file():
        raise SpecError(f"--spec: no file {path}")
    return path.read_text()


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _kv(items: list[str], option: str) -> dict:
    """``["k=v", ...]`` → dict; values are read as JSON (numbers, true/false), else strings."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SpecError(f"{option}: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _print_table(task: str, results: list[dict], n_seeds: int) -> None:
    r0 = results[0]
    console.print(f"[bold]{escape(task)}[/]: weak {_est(r0['weak'])}, "
                  f"ceiling {_est(r0['ceiling'])} on test ({n_seeds} seeds). PGR per half "
                  "[95% interval: test rows and seeds resampled]; vote = majority of the first "
                  "3 seeds, as researchers submit; agree = test agreement with the weak labels; "
                  "sec = seconds per experiment", highlight=False)
    table = Table(Column("method", overflow="fold",
                         min_width=min(24, max(len(r["method"]) for r in results))),
                  "feedback PGR (vote)", "final PGR (vote)", "final PGR (seed mean)",
                  "agree", "sec")
    for r in results:
        v = r.get("vote")
        name = r["method"] + (" *" if r.get("chosen") else "")
        table.add_row(Text(name), _ci(v["pgr_feedback"]) if v else "–",
                      _ci(v["pgr_final"]) if v else "–", _ci(r["pgr_final"]),
                      f"{r['agree_weak_test']:.3f}" if "agree_weak_test" in r else "–",
                      f"{r['seconds']:.1f}" if "seconds" in r else "–")
    console.print(table)
    if any(r.get("chosen") for r in results):
        console.print("* the best classical method: chosen on the feedback half; judge it on "
                      "the final half.", highlight=False)


def _est(e: dict) -> str:
    return f"{e['mean']:.3f} ± {e['se']:.3f}"


def _ci(e: dict) -> str:
    lo, hi = e["ci95"]
    return f"{e['mean']:.3f} [{lo:.3f}, {hi:.3f}]"
