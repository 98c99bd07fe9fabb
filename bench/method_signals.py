"""Did the label-free selection score predict the new method families? (lab-owner bench)

    python bench/method_signals.py [--task snli-pref] [--seeds 3] [--out FILE.json]

Runs a few reference methods and every method named in ``NEW`` at its defaults with
``run_experiment(..., signals=True)`` (the kit alone), then scores them with the answer key
(``Scorer``: the lab owner's view, never a researcher's). Prints, per spec, the selection score
(``aarlab.w2s.signals.selection_score``) and its rank next to the final-part PGR and its rank,
and Spearman's rho between the two over these specs with bench/signals.py's interval
(resampling specs and final test rows).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

from aarlab.config import get_settings
from aarlab.kits.kit import TaskKit
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.paths import answer_key_dir, kit_dir
from aarlab.tasks.scorer import Scorer
from aarlab.w2s.runner import run_experiment
from aarlab.w2s.spec import parse_spec

REFERENCE = ["weak_soft", "noisy_em", "probe_relabel", "logconf"]
NEW = ["label_prop", "confident_learning", "forward", "gce", "bootstrap", "elr", "ensemble",
       "paired_direction"]


def _bench_signals():
    """bench/signals.py (not a package) for its ``spearman_ci``."""
    spec = importlib.util.spec_from_file_location("bench_signals",
                                                  Path(__file__).with_name("signals.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def measure(task: str, seeds: int, names: list[str], out: Path | None) -> list[dict]:
    settings = get_settings()
    kit = TaskKit(kit_dir(settings, task))
    scorer = Scorer(AnswerKey(answer_key_dir(settings, task), kit.format), kit.ids("test"))
    use = kit.seeds[:seeds]
    rows: list[dict] = []
    for name in names:
        t0 = time.perf_counter()
        res = run_experiment(kit, {"method": name}, use, signals=True,
                             threads=settings.torch_threads)
        scores = [scorer.score(res[s]) for s in use]
        right = np.mean([res[s] == scorer.truth for s in use], axis=0)
        rows.append({"label": parse_spec({"method": name}).label, "new": name in NEW,
                     "seconds": time.perf_counter() - t0, "signals": res.signals,
                     "final": float(np.mean([sc.pgr["final"] for sc in scores])),
                     "final_rows": np.round(right[scorer.masks["final"]], 4).tolist()})
        r = rows[-1]
        print(f"{r['label']:<22} selection {r['signals'].get('selection', float('nan')):.3f} "
              f"final {r['final']:+.3f}  {r['seconds']:.0f} s", flush=True)
        if out is not None:  # after every spec: a stopped run keeps what it measured
            out.write_text(json.dumps({"task": task, "seeds": use, "rows": rows}))
    return rows


def table(rows: list[dict]) -> str:
    sel = np.array([r["signals"]["selection"] for r in rows])
    fin = np.array([r["final"] for r in rows])
    rank_sel = (-sel).argsort().argsort() + 1
    rank_fin = (-fin).argsort().argsort() + 1
    lines = ["| method | selection score | its rank | final PGR (mean of seeds) | its rank |",
             "|---|---|---|---|---|"]
    for i in np.argsort(-sel):
        star = " (new)" if rows[i]["new"] else ""
        lines.append(f"| {rows[i]['label']}{star} | {sel[i]:.3f} | {rank_sel[i]} | "
                     f"{fin[i]:+.3f} | {rank_fin[i]} |")
    rho, lo, hi = _bench_signals().spearman_ci(sel, np.array([r["final_rows"] for r in rows]))
    lines += ["", f"Spearman ρ (selection score vs final PGR) over these {len(rows)} specs: "
              f"{rho:+.2f} [{lo:+.2f}, {hi:+.2f}]"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="snli-pref")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", default=None, help="comma-separated (default: references + NEW)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--from", dest="src", type=Path, default=None, help="table of a saved run")
    args = ap.parse_args()
    if args.src:
        rows = json.loads(args.src.read_text())["rows"]
    else:
        names = args.methods.split(",") if args.methods else REFERENCE + NEW
        rows = measure(args.task, args.seeds, names, args.out)
    print(table(rows))


if __name__ == "__main__":
    main()
