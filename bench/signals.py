"""How well each label-free signal ranks method specs by final-part PGR (lab-owner bench).

    python bench/signals.py [--task snli-pref] [--seeds 3] [--out FILE.json] [--table FILE.md]
    python bench/signals.py --from FILE.json        # re-print the table from a saved run

Runs every library method with its defaults and a small parameter/composition grid
(``GRID``), each with ``run_experiment(..., signals=True)`` on the kit alone, then scores the
predictions with the answer key (``Scorer``: this is the lab owner's view, never a researcher's).
For each signal: Spearman's rho between the signal's mean over seeds and the spec's final-part
PGR, with a 95 % interval from resampling the specs. The feedback-part PGR (what the Ladder
releases, before rounding) is printed as a reference: the best a researcher's scored
submissions could tell, itself limited by the test-row noise of both halves.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from aarlab.config import get_settings
from aarlab.kits.kit import TaskKit
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.paths import answer_key_dir, kit_dir
from aarlab.tasks.scorer import Scorer
from aarlab.w2s import signals as sig
from aarlab.w2s.methods import all_methods
from aarlab.w2s.runner import run_experiment
from aarlab.w2s.spec import parse_spec


def _s(method: str, **params) -> dict:
    return {"method": method, "params": params}


# Variants of the library's documented parameters, a few compositions and both head kinds.
GRID: list[dict] = [
    {"steps": [_s("weak_soft", temperature=0.5)]},
    {"steps": [_s("weak_soft", temperature=2.0)]},
    {"steps": [_s("weak_soft")], "head": {"kind": "linear"}},
    {"steps": [_s("noisy_em", k=10)]},
    {"steps": [_s("noisy_em", k=50)]},
    {"steps": [_s("noisy_em", prior="logistic")]},
    {"steps": [_s("noisy_em", channel_prior=5.0)]},
    {"steps": [_s("noisy_em")], "head": {"kind": "linear"}},
    {"steps": [_s("strong_prior", algorithm="kmeans")]},
    {"steps": [_s("confidence_filter", threshold=0.6)]},
    {"steps": [_s("confidence_filter", threshold=0.85)]},
    {"steps": [_s("confidence_weight", power=3.0)]},
    {"steps": [_s("probe_filter", probe="logistic")]},
    {"steps": [_s("probe_filter", k=50)]},
    {"steps": [_s("probe_relabel", probe="logistic")]},
    {"steps": [_s("probe_relabel", k=10)]},
    {"steps": [_s("probe_relabel", k=50)]},
    {"steps": [_s("probe_relabel", soft=True)]},
    {"steps": [_s("logconf", aux_coef=0.25)]},
    {"steps": [_s("logconf", aux_coef=1.0)]},
    {"steps": [_s("logconf")], "head": {"kind": "linear"}},
    {"steps": [_s("product", beta=2.0)]},
    {"steps": [_s("window", radius=0.1)]},
    {"steps": [_s("self_train", rounds=1)]},
    {"steps": [_s("self_train", hard=False)]},
    {"steps": [_s("consistency", augment=False)]},
    {"steps": [_s("probe_relabel"), _s("logconf")]},
    {"steps": [_s("probe_relabel"), _s("consistency")]},
    {"steps": [_s("noisy_em"), _s("consistency")]},
    {"steps": [_s("noisy_em"), _s("logconf")]},
    {"steps": [_s("confidence_filter"), _s("logconf")]},
    {"steps": [_s("noisy_em"), _s("self_train", rounds=1)]},
]


def specs() -> list[dict]:
    return [{"steps": [_s(m.name)]} for m in all_methods()] + GRID


def spearman_ci(signal: np.ndarray, right: np.ndarray, n_boot: int = 1000, seed: int = 0
                ) -> tuple[float, float, float]:
    """Spearman rho of ``signal`` (S,) with final PGR, and a percentile 95 % interval.

    ``right`` (S, R): per spec and final test row, the share of seeds that got the row right.
    Within one set of rows PGR is an increasing affine map of accuracy, the same for every
    spec, so ranks by PGR are ranks by mean correctness. The bootstrap resamples specs and test
    rows together: the interval holds the spread of the grid and the test-row noise.
    """
    rho = float(spearmanr(signal, right.mean(1)).statistic)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(signal), len(signal))
        acc = right[i][:, rng.integers(0, right.shape[1], right.shape[1])].mean(1)
        if np.ptp(signal[i]) > 0 and np.ptp(acc) > 0:
            boots.append(spearmanr(signal[i], acc).statistic)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return rho, float(lo), float(hi)


def measure(task: str, seeds: int, out: Path | None = None) -> dict:
    settings = get_settings()
    kit = TaskKit(kit_dir(settings, task))
    scorer = Scorer(AnswerKey(answer_key_dir(settings, task), kit.format), kit.ids("test"))
    use = kit.seeds[:seeds]
    rows = []
    for spec in specs():
        label = parse_spec(spec).label
        t0 = time.perf_counter()
        result = run_experiment(kit, spec, use, signals=True, threads=settings.torch_threads)
        scores = [scorer.score(result[s]) for s in use]
        # Per test row, the share of seeds that got it right: lets the interval resample rows.
        right = np.mean([result[s] == scorer.truth for s in use], axis=0)
        rows.append({
            "spec": spec, "label": label, "seconds": time.perf_counter() - t0,
            "signals": result.signals,
            **{part: float(np.mean([sc.pgr[part] for sc in scores]))
               for part in ("final", "feedback")},
            **{f"{part}_rows": np.round(right[scorer.masks[part]], 4).tolist()
               for part in ("final", "feedback")},
        })
        r = rows[-1]
        if out:  # after every spec: a stopped run keeps what it measured (--from reads it)
            out.write_text(json.dumps(_run(task, use, kit, rows), indent=1))
        print(f"{label:<55} final {r['final']:+.3f}  feedback {r['feedback']:+.3f}  "
              + " ".join(f"{k}={v:.3f}" for k, v in r["signals"].items()), flush=True)
    return _run(task, use, kit, rows)


def _run(task: str, seeds: list[int], kit: TaskKit, rows: list[dict]) -> dict:
    return {"task": task, "seeds": seeds, "sizes": kit.manifest.get("sizes"), "rows": rows,
            "command": " ".join(["python bench/signals.py", *sys.argv[1:]])}


def table(run: dict) -> str:
    rows = run["rows"]
    final = np.array([r["final_rows"] for r in rows])
    lines = [f"`{run['command']}` — task {run['task']} (sizes {run['sizes']}), {len(rows)} specs "
             f"(library defaults + grid), seeds {run['seeds']}; Spearman ρ with final-part PGR, "
             "95 % interval resampling specs and final test rows.", "",
             "| signal (higher = better) | Spearman ρ vs final PGR | 95 % interval |",
             "|---|---|---|"]
    names = [k for k in sig.SIGNALS if all(k in r["signals"] for r in rows)]
    for name in names:
        rho, lo, hi = spearman_ci(np.array([r["signals"][name] for r in rows]), final)
        lines.append(f"| `{name}` | {rho:+.2f} | [{lo:+.2f}, {hi:+.2f}] |")
    rho, lo, hi = spearman_ci(np.array([r["feedback"] for r in rows]), final)
    lines.append(f"| *reference: feedback-part PGR (needs gold; the Ladder releases it coarsely)*"
                 f" | {rho:+.2f} | [{lo:+.2f}, {hi:+.2f}] |")
    lines += ["", *combinations(run)]
    secs = np.median([r["seconds"] for r in rows])
    lines += ["", f"Median wall seconds per spec with signals ({len(run['seeds'])} seeds): "
              f"{secs:.1f}."]
    return "\n".join(lines) + "\n"


def combinations(run: dict, top: int = 5) -> list[str]:
    """Sums of one or two [0, 1]-scaled signals as a selection score: chosen by Spearman with
    the *feedback*-part PGR (what a lab may select on), reported against the final part."""
    rows = run["rows"]
    names = [k for k in sig.SIGNALS if k != "heldout_loglik" and all(k in r["signals"]
                                                                     for r in rows)]
    cands = [(a,) for a in names] + [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    feedback = np.array([r["feedback"] for r in rows])
    final = np.array([r["final_rows"] for r in rows])

    def score(c: tuple) -> np.ndarray:
        return np.array([sum(r["signals"][k] for k in c) for r in rows])

    by_fb = sorted(cands, key=lambda c: -spearmanr(score(c), feedback).statistic)
    current = next(c for c in cands if set(c) == set(sig.SELECTION))
    shown = by_fb[:top] + ([current] if current not in by_fb[:top] else [])
    out = [f"Selection scores (a signal or a sum of two, {len(cands)} candidates) ranked by "
           "Spearman with *feedback*-part PGR; the final-part column is the honest one:", "",
           "| selection score | ρ vs feedback PGR | ρ vs final PGR | 95 % interval |",
           "|---|---|---|---|"]
    for c in shown:
        rho_fb = spearmanr(score(c), feedback).statistic
        rho, lo, hi = spearman_ci(score(c), final)
        mark = " (library's `selection_score`)" if c == current else ""
        out.append(f"| `{' + '.join(c)}`{mark} | {rho_fb:+.2f} | {rho:+.2f} | "
                   f"[{lo:+.2f}, {hi:+.2f}] |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="snli-pref")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="write the per-spec results (JSON)")
    ap.add_argument("--table", type=Path, default=None, help="write the table (markdown)")
    ap.add_argument("--from", dest="src", type=Path, default=None, help="table of a saved run")
    args = ap.parse_args()
    run = json.loads(args.src.read_text()) if args.src else measure(args.task, args.seeds,
                                                                      args.out)
    text = table(run)
    print(text)
    if args.table:
        args.table.write_text(text)


if __name__ == "__main__":
    main()
