"""The methods README's per-task table, made from the cached default rows (lab-owner view).

    python bench/method_table.py [--tasks snli-pref,tweets,...] [--json OUT]

Reads the rows ``aarlab baseline --task T --all`` cached beside each task's answer key (it runs
nothing: a task without cached rows is skipped, and a cache that no longer matches the kit is
ignored). For every method at its defaults: final-part PGR of the 3-seed vote with its 95 %
paired-bootstrap interval on each task, and the seconds of its 5-seed run (wall seconds summed
over seeds, including the cross-fitted signal fits of the 3 vote seeds). Per task: Spearman's ρ
between the label-free selection score (``signals.selection``) and final PGR across methods,
i.e. how well the signals a researcher can see would have ranked the methods.

    python bench/method_table.py --loss-record

prints instead what the search researcher's ``LOSS_RECORD`` (its tie-break between losses that
its own task's signals cannot tell apart) should hold on this machine's built tasks: each loss
at its defaults, final-part PGR of its 3-seed vote minus weak_soft's, on every task whose
final-part gap is clear (the ceiling's 95 % interval over the teacher lies above 0), and how far
the constant in ``hypotheses.py`` is from it.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from aarlab.config import get_settings
from aarlab.kits.kit import TaskKit
from aarlab.lab.baselines import BaselineCache
from aarlab.researchers.search.hypotheses import LOSS_RECORD
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.paths import answer_key_dir, is_built, kit_dir
from aarlab.tasks.registry import all_tasks
from aarlab.w2s.methods import describe

# LM tasks train a LoRA student, not a head: their rows are not this table's.
SKIP = ("snli-lm",)


def _kit_and_key(task: str) -> tuple[TaskKit, AnswerKey]:
    settings = get_settings()
    kit = TaskKit(kit_dir(settings, task))
    return kit, AnswerKey(answer_key_dir(settings, task), kit.format)


def cached_rows(task: str) -> list[dict] | None:
    """The task's cached default rows, or None (not built, never run, or stale)."""
    if not is_built(get_settings(), task):
        return None
    return BaselineCache(*_kit_and_key(task)).record.get("defaults") or None


def clear_gap(task: str) -> bool:
    """Whether the task's final-part gap (ceiling over teacher) has a 95 % interval above 0."""
    return _kit_and_key(task)[1].reference["gap"]["parts"]["final"]["ci95"][0] > 0


def all_cached(tasks: list[str] | None = None) -> dict[str, list[dict]]:
    names = tasks or [t.name for t in all_tasks() if t.name not in SKIP]
    return {t: rows for t in names if (rows := cached_rows(t))}


def final(row: dict) -> dict:
    """Final-part PGR of the row's 3-seed vote (its seed mean when it has no vote)."""
    return (row.get("vote") or row)["pgr_final"]


def feedback(row: dict) -> float:
    return (row.get("vote") or row)["pgr_feedback"]["mean"]


def ranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="stable")
    r = np.empty(len(a))
    r[order] = np.arange(len(a))
    for v in np.unique(a):  # ties share their mean rank
        r[a == v] = r[a == v].mean()
    return r


def spearman(a, b) -> float:
    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def signal_rho(rows: list[dict], signal: str = "selection") -> tuple[float, int]:
    have = [r for r in rows if signal in r.get("signals", {})]
    return spearman([r["signals"][signal] for r in have], [final(r)["mean"] for r in have]), \
        len(have)


def ci(e: dict) -> str:
    lo, hi = e["ci95"]
    return f"{e['mean']:+.3f} [{lo:+.2f}, {hi:+.2f}]"


def table(data: dict[str, list[dict]]) -> str:
    tasks = list(data)
    methods = [r["method"] for r in next(iter(data.values()))]
    by = {t: {r["method"]: r for r in rows} for t, rows in data.items()}
    lines = ["| method | " + " | ".join(f"{t} final PGR [95%]" for t in tasks)
             + " | s / 5-seed run (" + ", ".join(tasks) + ") |",
             "|---|" + "---|" * len(tasks) + "---|"]
    for m in methods:
        cells = [ci(final(by[t][m])) if m in by[t] else "–" for t in tasks]
        secs = "/".join(f"{by[t][m]['seconds']:.0f}" if m in by[t] else "–" for t in tasks)
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {secs} |")
    rho = []
    for t in tasks:
        r, n = signal_rho(data[t])
        rho.append(f"{r:+.2f} (n={n})")
    lines.append("| *ρ(selection score, final PGR) over methods* | " + " | ".join(rho) + " | |")
    return "\n".join(lines)


def loss_record(data: dict[str, list[dict]], clear: set[str],
                losses: list[str]) -> dict[str, dict[str, float]]:
    """Each loss's final PGR (3-seed vote) minus weak_soft's, per task in ``clear``."""
    out: dict[str, dict[str, float]] = {}
    for t, rows in data.items():
        by = {r["method"]: final(r)["mean"] for r in rows}
        if t not in clear or "weak_soft" not in by:
            continue
        for m in losses:
            if m in by:
                out.setdefault(m, {})[t] = round(by[m] - by["weak_soft"], 3)
    return out


def record_drift(new: dict, old: dict, measured: set[str]) -> list[str]:
    """Lines naming every loss/task among the ``measured`` tasks where the two records differ
    by more than 0.0005 or where one has an entry the other lacks."""
    lines = []
    for m in sorted(set(new) | set(old)):
        for t in sorted((set(new.get(m, {})) | set(old.get(m, {}))) & measured):
            a, b = new.get(m, {}).get(t), old.get(m, {}).get(t)
            if a is None or b is None or abs(a - b) > 5e-4:
                lines.append(f"{m} on {t}: measured {a}, LOSS_RECORD {b}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default=None, help="comma-separated (default: every built task)")
    ap.add_argument("--json", default=None, help="also write the rows used to this file")
    ap.add_argument("--loss-record", action="store_true",
                    help="print the search researcher's LOSS_RECORD as measured here")
    args = ap.parse_args()
    data = all_cached(args.tasks.split(",") if args.tasks else None)
    if not data:
        sys.exit("no cached default rows: run `aarlab baseline --task T --all` first")
    if args.loss_record:
        losses = [m["name"] for m in describe() if m["stage"] == "loss"]
        clear = {t for t in data if clear_gap(t)}
        new = loss_record(data, clear, losses)
        print(json.dumps(new, indent=1))
        unmeasured = sorted({t for r in LOSS_RECORD.values() for t in r} - clear)
        if unmeasured:
            print("not measured here (no cached rows, or no clear gap): " + ", ".join(unmeasured))
        drift = record_drift(new, LOSS_RECORD, clear)
        print("\n".join(["LOSS_RECORD differs from this measurement:", *drift]) if drift
              else f"LOSS_RECORD matches this measurement on {', '.join(sorted(clear))}")
        return
    print(table(data))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f)


if __name__ == "__main__":
    main()
