"""``aarlab run``: the main job — a lab of parallel researchers on a task, then a report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from aarlab.config import get_settings
from aarlab.errors import AarlabError

if TYPE_CHECKING:
    from aarlab.lab.backends import BackendOptions

from .ui import plain, print_json, progress_stages

err = Console(stderr=True)


def _warn(msg: str) -> None:
    # ``plain``: a warning may quote a researcher's output, whose brackets are not markup.
    err.print(f"[yellow]{plain(msg)}[/]")


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``1.5h`` or plain seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise AarlabError(f"--budget: expected a duration like 90s, 30m or 1h, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def run(
    task: str = typer.Option(None, "--task", "-t",
                             help="Task to research (default: the first default task)."),
    researchers: int = typer.Option(None, "--researchers", "-n", min=1, max=64,
                                    help="Default: one per --researcher, else 3."),
    researcher: list[str] = typer.Option(
        None, "--researcher", "-r",
        help="Repeatable policy: search | llm:anthropic:MODEL | llm:openai:MODEL@URL. "
             "Researcher i runs the i-th, cycling."),
    llm_budget: float = typer.Option(None, "--llm-budget", min=0.000001,
                                     help="Dollars per LLM researcher, all its sessions."),
    llm_token_budget: int = typer.Option(None, "--llm-token-budget", min=1,
                                         help="Tokens per LLM researcher, all kinds."),
    llm_max_turns: int = typer.Option(60, "--llm-max-turns", min=1,
                                      help="Model calls per LLM session."),
    llm_prices: Path = typer.Option(None, "--llm-prices", help="JSON price table override."),
    llm_prompt: Path = typer.Option(None, "--llm-prompt", help="Your prompt template (jinja2)."),
    llm_prompt_size: str = typer.Option(
        "auto", "--llm-prompt-size",
        help="auto (compact when the server reports a context under 16k tokens), full, compact."),
    suite: str = typer.Option(
        None, "--suite",
        help="Also research these tasks (comma-separated, or 'all' = every built task): each "
             "researcher gets every kit; the pick is best on the suite mean."),
    budget: str = typer.Option("30m", "--budget",
                               help="Wall-clock budget of the lab and its replication: 90s, "
                                    "30m, 1h."),
    replication_budget: str = typer.Option(
        None, "--replication-budget",
        help="Time for the end-of-run replication on top of --budget (default: it shares "
             "--budget: the lab gets 80 percent, replication the rest)."),
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
    port: int = typer.Option(
        None, "--port", help="Also serve the dashboard and admin API on 127.0.0.1:PORT."),
    replicate: bool = typer.Option(
        True, "--replicate/--no-replicate",
        help="Replicate the top results at the end (minutes); later: `aarlab replicate`."),
    backend: str = typer.Option("local", "--backend",
                                help="local | ray | auto (ray when a cluster is reachable)."),
    address: str = typer.Option(None, "--address",
                                help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT; none "
                                     "starts Ray on this machine."),
    advertise_host: str = typer.Option(None, "--advertise-host",
                                       help="Address nodes use to reach this lab's server."),
    server_port: int = typer.Option(0, "--server-port", min=0, max=65535,
                                    help="First TCP port for nodes: researcher i's listener "
                                         "is port + i (0 picks free ones)."),
    kit_url: str = typer.Option(None, "--kit-url",
                                help="Kit on a shared filesystem (fsspec URL or path); default: "
                                     "nodes download it from the lab server."),
    cpus_per_researcher: float = typer.Option(1.0, "--cpus-per-researcher", min=0.01,
                                              help="Ray CPUs per researcher actor."),
    gpus_per_researcher: float = typer.Option(0.0, "--gpus-per-researcher", min=0,
                                              help="Ray GPUs per researcher actor."),
) -> None:
    """Start the server and N sandboxed researchers on a task; print and write a report."""
    from aarlab.lab.backends import make_backend
    from aarlab.lab.orchestrator import Lab, LabOptions
    from aarlab.lab.report import copies_note, write_report
    from aarlab.lab.status import lab_costs
    from aarlab.researchers.llm.config import LlmOptions
    from aarlab.researchers.llm.member import preflight
    from aarlab.researchers.llm.policy import is_llm, parse_policy
    from aarlab.sandbox.bwrap import sandbox_available
    from aarlab.store.db import Store
    from aarlab.tasks.answer_key import AnswerKey
    from aarlab.tasks.build import BuildOptions, answer_key_dir, build_task, is_built
    from aarlab.tasks.registry import default_tasks, get_task

    settings = get_settings()
    spec = get_task(task) if task else default_tasks()[0]
    task = spec.name
    policies = list(researcher or ["search"])
    for p in policies:
        parse_policy(p)  # one line naming --researcher if it is malformed
    llm = LlmOptions(budget_usd=llm_budget, budget_tokens=llm_token_budget,
                     max_turns=llm_max_turns, prices_file=llm_prices, prompt_file=llm_prompt,
                     prompt_size=_prompt_size(llm_prompt_size))
    if not resume:  # checks keys, models and prices before anything starts (no tokens spent)
        preflight(policies, llm, on_warning=_warn)
    backend_options = _backend_options(backend, address, advertise_host, server_port, kit_url,
                                       cpus_per_researcher, gpus_per_researcher)
    ok, why = sandbox_available()
    if not ok and backend_options.kind == "local":
        if not allow_unsandboxed:
            raise AarlabError(f"cannot sandbox researchers: {why}",
                              hint="apt-get install -y bubblewrap, or pass --allow-unsandboxed")
        err.print(f"[bold red]WARNING: researchers will run WITHOUT a sandbox ({why}). They "
                  "can read anything this user can, including the answer key.[/]")
    if not is_built(settings, task):
        with progress_stages(enabled=not as_json) as stage:
            build_task(spec, settings, BuildOptions(), stage)
    # A task with no gap to recover (ceiling - weak interval not above 0) is not run: PGR means
    # nothing there. `aarlab task build TASK --force` serves it anyway.
    AnswerKey(answer_key_dir(settings, task), spec.format).require_servable(task)
    suite_tasks = parse_suite(suite, task, settings)
    lab_s, rep_s = split_budget(parse_duration(budget), replication_budget, replicate)
    options = LabOptions(task=task, suite=suite_tasks,
                         researchers=researchers or (len(policies) if researcher else 3),
                         budget_s=lab_s,
                         max_experiments=max_experiments, max_submissions=max_submissions,
                         directions_file=directions, allow_unsandboxed=allow_unsandboxed,
                         port=port, policies=policies, llm=llm, backend=backend_options)
    store = Store(settings.database_url)
    # Reach the backend before a lab row exists: a wrong --address leaves nothing to resume.
    backend = make_backend(backend_options, settings, allow_unsandboxed=allow_unsandboxed)
    try:
        backend.connect(options.researchers)
        lab = Lab(settings, store, options, backend=backend,
                  on_warning=_warn,
                  on_info=(lambda msg: None) if as_json else err.print)
        lab_id = lab.resume() if resume else lab.create()
    except BaseException:
        backend.close()
        raise
    if not as_json:
        on = task + (f" + suite {', '.join(lab.options.suite)}" if lab.options.suite else "")
        err.print(f"lab {lab_id} on {on}: {len(lab.members)} researchers, budget "
                  f"{lab.options.budget_s / 60:.1f} min ({lab.remaining() / 60:.1f} left)"
                  + (f", then replication {rep_s / 60:.1f} min" if replicate else ""))
    reports = report_dir or settings.home / "reports"
    _sigterm_interrupts()  # a killed run still leaves its JSON and report (below)
    try:
        with Live(console=err, refresh_per_second=2, transient=False,
                  auto_refresh=False) as live:
            def tick(rows: list[dict], left: float) -> None:
                if not as_json:
                    if any(is_llm(r.get("policy", "")) for r in rows):
                        with store.session() as s:
                            costs = {c["researcher"]: c for c in lab_costs(s, lab_id)}
                        rows = [r | {"cost": costs.get(r["researcher"])} for r in rows]
                    live.update(status_table(lab_id, task, rows, left), refresh=True)

            lab.run(on_tick=tick)
    except KeyboardInterrupt:
        _stopped(store, settings, lab_id, reports, "during the lab")
    # The quick report first (seconds): a stop during the slow one below still leaves it.
    write_report(store, settings, lab_id, reports, baselines=False)
    if not as_json:
        err.print("writing the report (the first time on a task also runs the classical "
                  "baselines, the tuned one included: minutes)…")
    try:
        summary = write_report(store, settings, lab_id, reports, threads=settings.torch_threads)
    except KeyboardInterrupt:
        _stopped(store, settings, lab_id, reports, "while the report was written", quick=False)
    if not as_json and summary["copies_of_earlier_labs"] and not summary["submissions"]:
        _warn("the lab has no submission of its own." + copies_note(summary))
    if replicate:
        replication_phase(store, settings, lab_id, reports, summary, rep_s,
                          None if as_json else err)
    with store.session() as s:
        costs = lab_costs(s, lab_id)
    if as_json:
        print_json({k: v for k, v in summary.items() if k != "points"} | {"llm_costs": costs})
        return
    err.print(summary_table(summary))
    if costs:
        err.print(cost_table(costs))
    err.print(f"report: {summary['report_path']}")


def replication_phase(store, settings, lab_id: int, reports: Path, summary: dict,
                      budget_s: float | None, console: Console | None) -> None:
    """The end-of-run replication of the top results, inside ``budget_s``; stopped, it leaves
    the results so far and exits 130."""
    from aarlab.replication.report import replicate_after_run  # the verdict on the top

    try:
        replicate_after_run(store, settings, lab_id, reports, summary,
                            warn=_warn,
                            budget_s=budget_s, console=console)
    except KeyboardInterrupt:
        _stopped(store, settings, lab_id, reports, "during the replication", quick=False)


def _sigterm_interrupts() -> None:
    """SIGTERM stops the run like Ctrl-C does (KeyboardInterrupt), so its reports get written."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)


def _stopped(store, settings, lab_id: int, reports: Path, when: str, quick: bool = True):
    """A stopped run: write the quick report (unless a fuller one is on disk), say where, exit
    130 (like a shell's Ctrl-C) without a traceback."""
    from aarlab.lab.report import write_report

    if quick:
        write_report(store, settings, lab_id, reports, baselines=False)
    err.print(f"[yellow]stopped {when}: the results so far are in {reports}/lab{lab_id}-*.md "
              "and .json[/]")
    raise typer.Exit(130)


def parse_suite(text: str | None, task: str, settings) -> list[str]:
    """``--suite``: the other tasks of a suite lab (built and servable), ``all``: every built
    task."""
    from aarlab.tasks.answer_key import AnswerKey
    from aarlab.tasks.build import answer_key_dir, is_built
    from aarlab.tasks.registry import get_task, same_rows

    if not text:
        return []
    if text.strip() == "all":
        from aarlab.tasks.registry import all_tasks

        names = [t.name for t in all_tasks() if is_built(settings, t.name)]
    else:
        names = [n.strip() for n in text.split(",") if n.strip()]
    out = []
    for name in names:
        if name == task or name in out:
            continue
        spec = get_task(name)  # an unknown name is an error naming the task
        twin = next((t for t in [task, *out] if same_rows(name, t)), None)
        if twin is not None:
            # Its rows are no second task for a suite mean, and its feedback labels are twin's.
            if text.strip() == "all":
                continue
            raise AarlabError(f"--suite: task {name!r} is drawn from the same rows as {twin!r}",
                              hint="a suite's tasks must be different data; keep one of them")
        if not is_built(settings, name):
            raise AarlabError(f"--suite: task {name!r} is not built",
                              hint=f"aarlab task build {name}")
        AnswerKey(answer_key_dir(settings, name), spec.format).require_servable(name)
        out.append(name)
    return out


REPLICATION_SHARE = 0.2  # of --budget, when no --replication-budget is given


def split_budget(total_s: float, replication: str | None, replicate: bool
                 ) -> tuple[float, float]:
    """(lab seconds, replication seconds): the run's budget bounds both."""
    if not replicate:
        return total_s, 0.0
    if replication is not None:
        try:
            return total_s, parse_duration(replication)
        except AarlabError:
            raise AarlabError(f"--replication-budget: expected a duration like 90s, 5m, got "
                              f"{replication!r}") from None
    return total_s * (1 - REPLICATION_SHARE), total_s * REPLICATION_SHARE


def _backend_options(kind: str, address: str | None, advertise_host: str | None,
                     server_port: int, kit_url: str | None, cpus: float,
                     gpus: float) -> BackendOptions:
    from aarlab.lab.backends import BackendOptions

    if kind not in ("local", "ray", "auto"):
        raise AarlabError(f"--backend: expected local, ray or auto, got {kind!r}")
    if kind == "local" and (address or kit_url or gpus):
        raise AarlabError("--address, --kit-url and --gpus-per-researcher need --backend ray "
                          "(or auto)")
    return BackendOptions(kind=kind, address=address, advertise_host=advertise_host,
                          server_port=server_port, kit_url=kit_url, cpus_per_researcher=cpus,
                          gpus_per_researcher=gpus)


def status_table(lab_id: int, task: str, rows: list[dict], left: float) -> Table:
    t = Table(title=f"lab {lab_id} on {task} — {left / 60:.1f} min left")
    llm = any("cost" in r for r in rows)
    remote = any(r.get("backend") == "ray" for r in rows)
    columns = ("researcher", "direction", "status", "current idea", "experiments",
               "submissions", "best released PGR", "restarts")
    for col in columns + (("LLM cost",) if llm else ()) + (("node",) if remote else ()):
        t.add_column(col, overflow="fold")
    for r in rows:
        best = r["best_released_pgr"]
        c = r.get("cost")
        cost = (f"${c['dollars']:.2f}{'' if c['priced'] else ' (unpriced)'} · "
                f"{c['tokens'] / 1000:.0f}k tok") if c else "–"
        t.add_row(r["researcher"], r["direction"], r["status"] + ("" if r["sandboxed"]
                                                                   else " [red](unsandboxed)[/]"),
                  plain(r["current_idea"], 60), str(r["experiments"]), str(r["submissions"]),
                  "–" if best is None else f"{best:.3f}", str(r["restarts"]),
                  *((cost,) if llm else ()), *((r.get("node", ""),) if remote else ()))
    return t


def cost_table(costs: list[dict]) -> Table:
    """Tokens, dollars and research-hours of each LLM researcher."""
    t = Table(title="LLM researchers: tokens and cost")
    for col in ("researcher", "model", "sessions", "calls", "input", "output", "cache read",
                "cache write", "$", "research-h", "$/h"):
        t.add_column(col, overflow="fold")
    for c in costs:
        per_h = c["dollars_per_hour"]
        t.add_row(c["researcher"], c["policy"].removeprefix("llm:").split("@")[0],
                  str(c["sessions"]), str(c["calls"]), f"{c['input_tokens']:,}",
                  f"{c['output_tokens']:,}", f"{c['cache_read_tokens']:,}",
                  f"{c['cache_write_tokens']:,}",
                  f"{c['dollars']:.4f}" + ("" if c["priced"] else " (no price)"),
                  f"{c['research_hours']:.3f}", "–" if per_h is None else f"{per_h:.2f}")
    return t


def summary_table(s: dict) -> Table:
    t = Table("", "value", title=f"lab {s['lab_id']} on {s['task']}")

    def fmt(v, ci=None):
        if v is None:
            return "–"
        text = f"{v:.3f}" if isinstance(v, float) else str(v)
        return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

    d = s.get("diff_vs_tuned_baseline")
    rows = [
        ("best released feedback PGR", fmt(s["best_released_pgr"])),
        ("lab's final-part PGR (pick by feedback) [95%]",
         fmt(s["best_final_pgr"], s.get("best_final_pgr_ci95"))),
        (f"tuned classical baseline final-part PGR "
         f"({plain(s.get('tuned_baseline_method')) or '–'})",
         fmt(s.get("tuned_baseline_final_pgr"), s.get("tuned_baseline_final_pgr_ci95"))),
        ("lab − tuned baseline [95%]", fmt(d["mean"], d["ci95"]) if d else "–"),
        ("win (interval above 0)", "yes" if s.get("win") else "no"),
        (f"best default classical final-part PGR "
         f"({plain(s.get('best_baseline_method')) or '–'})",
         fmt(s["best_baseline_pgr"], s.get("best_baseline_pgr_ci95"))),
    ] + [(label, fmt(s[key])) for label, key in (
        ("experiments", "experiments"), ("submissions", "submissions"),
        ("findings", "findings"), ("probe flags", "probe_flags"))]
    su = s.get("suite")
    if su:
        def est(e):
            return fmt(e["mean"], e.get("ci95")) if e else "–"
        rows.append((f"suite pick (best mean feedback PGR): {plain(su['method']) or '–'}",
                     ""))
        for task_name, r in su["per_task"].items():
            rows.append((f"  {task_name}: final PGR / tuned / pick − tuned",
                         f"{est(r.get('pick'))} / {est(r.get('tuned'))} / {est(r.get('diff'))}"))
        rows.append(("  suite mean: final PGR / tuned / pick − tuned",
                     f"{est(su['final_mean'])} / {est(su['tuned_mean'])} / "
                     f"{est(su['diff_mean'])}"))
        rows.append(("  suite win (mean difference above 0)", "yes" if s.get("suite_win")
                     else "no"))
    for label, value in rows:
        t.add_row(label, value)
    return t


def _prompt_size(value: str) -> str:
    if value not in ("auto", "full", "compact"):
        raise AarlabError(f"--llm-prompt-size: expected auto, full or compact, got {value!r}")
    return value
