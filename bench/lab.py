"""The default lab for a fixed wall-clock budget on this machine.

    .venv/bin/python bench/lab.py [--task tweets] [--researchers 3] [--budget 30m]

Prints the lab's best final-part PGR (the submission each researcher picked by its released
feedback score) and the tuned classical baseline's (library parameters tuned with a label-free
signal and a researcher's submission budget, chosen on feedback, a 3-seed vote like the pick),
each with its 95% interval, their paired difference with its interval and whether that is a win
(interval above 0), the best default-parameter method's final-part PGR (chosen on feedback),
the number of experiments, and the lab's overhead: the share
of CPU time (the lab process + every researcher process, as each researcher reports its own
process CPU time with its experiments) not spent inside ``run_experiment``.
"""

from __future__ import annotations

import argparse
import resource
import time

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from aarlab.commands.run import parse_duration
from aarlab.config import get_settings
from aarlab.lab.orchestrator import Lab, LabOptions
from aarlab.lab.report import write_report
from aarlab.lab.tables import LabEvent, LabMember
from aarlab.store.db import Store
from aarlab.tasks.build import BuildOptions, build_task, is_built
from aarlab.tasks.registry import get_task


def own_cpu_seconds() -> float:
    # Researchers run under bubblewrap's own init, so RUSAGE_CHILDREN does not see them; they
    # report their CPU with their telemetry instead (see researcher_cpu below).
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def researcher_cpu(events: list[dict]) -> tuple[float, float]:
    """(CPU inside experiments, CPU of the researcher processes) from experiment events."""
    inside = sum(float(e.get("cpu_s", 0)) for e in events)
    per_process: dict[str, float] = {}
    for e in events:
        p = e.get("process", "?")
        per_process[p] = max(per_process.get(p, 0.0), float(e.get("process_cpu_s", 0)))
    return inside, sum(per_process.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="tweets")
    ap.add_argument("--researchers", type=int, default=3)
    ap.add_argument("--budget", default="30m")
    args = ap.parse_args()
    settings = get_settings()
    if not is_built(settings, args.task):
        build_task(get_task(args.task), settings, BuildOptions())
    store = Store(settings.database_url)
    lab = Lab(settings, store, LabOptions(task=args.task, researchers=args.researchers,
                                          budget_s=parse_duration(args.budget)))
    lab_id = lab.create()
    cpu0, t0 = own_cpu_seconds(), time.monotonic()
    lab.run()
    lab_cpu, wall = own_cpu_seconds() - cpu0, time.monotonic() - t0
    summary = write_report(store, settings, lab_id, settings.home / "reports",
                           threads=settings.torch_threads)
    with store.session() as s:
        ids = select(LabMember.researcher_id).where(LabMember.lab_id == lab_id)
        events = [e.payload for e in s.scalars(select(LabEvent).where(
            LabEvent.researcher_id.in_(ids), LabEvent.kind == "experiment"))]
    exp_s, researchers_cpu = researcher_cpu(events)
    cpu = lab_cpu + researchers_cpu
    t = Table("measure", "value", title=f"bench/lab.py: lab {lab_id} on {args.task}, "
              f"{args.researchers} researchers, {wall / 60:.1f} min wall")
    diff = summary.get("diff_vs_tuned_baseline")
    t.add_row("lab best final-part PGR [95%]",
              _ci(summary["best_final_pgr"], summary.get("best_final_pgr_ci95")))
    t.add_row(f"tuned classical final-part PGR ({summary.get('tuned_baseline_method')}) [95%]",
              _ci(summary.get("tuned_baseline_final_pgr"),
                  summary.get("tuned_baseline_final_pgr_ci95")))
    t.add_row("lab − tuned classical [95%]",
              _ci(diff["mean"], diff["ci95"]) if diff else "–")
    t.add_row("win (interval above 0)", "yes" if summary.get("win") else "no")
    t.add_row(f"best default classical final-part PGR ({summary['best_baseline_method']}) "
              "[95%]", _ci(summary["best_baseline_pgr"], summary.get("best_baseline_pgr_ci95")))
    t.add_row("best released feedback PGR", f"{summary['best_released_pgr']}")
    t.add_row("experiments", str(summary["experiments"]))
    t.add_row("submissions / findings / probe flags",
              f"{summary['submissions']} / {summary['findings']} / {summary['probe_flags']}")
    t.add_row("CPU seconds: lab process / researcher processes",
              f"{lab_cpu:.0f} / {researchers_cpu:.0f}")
    t.add_row("CPU seconds inside experiments", f"{exp_s:.0f}")
    t.add_row("overhead (share of CPU not in experiments)",
              f"{1 - exp_s / cpu:.2f}" if cpu else "–")
    t.add_row("report", summary["report_path"])
    Console().print(t)


def _ci(v: float | None, ci: list[float] | None) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


if __name__ == "__main__":
    main()
