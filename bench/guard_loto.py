"""Leave-one-task-out check of the guard rule (``aarlab.w2s.methods.guarded``) on cached rows.

    python bench/guard_loto.py [--tasks snli-pref,tweets,movies,reviews,math] [--holdout nyt]

The guard keeps a method only if its cross-fitted held-out agreement with the teacher
(``signals.heldout_agree``, a kit-only signal) is at most ``tolerance`` below that of
``weak_soft``; otherwise the result is ``weak_soft``'s. Every cached default row carries that
signal (3 vote seeds), so the rule can be applied to every library method on every task
without rerunning anything. The library step decides per seed and allows ``z`` standard
errors of one seed's drop beyond the tolerance; the cached rows keep only the 3-seed mean of
the signal, so this bench applies the bare tolerance (z = 0) to that mean, whose noise is
about 1/√3 of one seed's.

Per held-out task the tolerance is fitted on the *other* tasks only: the grid value with the
largest summed feedback-half gain over weak_soft (guarded − weak_soft, over every method),
ties to the smallest (most cautious) tolerance. Then, on the held-out task's final half:
how many methods fall below weak_soft with and without the guard, and the lab's pick (best
feedback PGR among the methods the guard keeps) with its final PGR. ``--holdout`` tasks are
never used for fitting (outside data): they are scored with the tolerance fitted on all the
others. Lab-owner view: the PGRs come from the answer key; the rule never sees them.
"""

from __future__ import annotations

import argparse

import numpy as np

from aarlab.w2s.methods.guarded import GuardParams, decide
from method_table import all_cached, ci, feedback, final

GRID = tuple(np.round(np.arange(0.0, 0.0501, 0.0025), 4))
DEFAULT = GuardParams().tolerance


def drops(rows: list[dict]) -> dict[str, float]:
    """Held-out teacher-agreement drop of each method against weak_soft (same seeds, folds)."""
    ws = next(r for r in rows if r["method"] == "weak_soft")["signals"]["heldout_agree"]
    return {r["method"]: ws - r["signals"]["heldout_agree"] for r in rows
            if "heldout_agree" in r.get("signals", {})}


def guarded_gain(rows: list[dict], tol: float, part=feedback) -> float:
    d, ws = drops(rows), part(next(r for r in rows if r["method"] == "weak_soft"))
    return sum((part(r) if decide(d[r["method"]], tol) else ws) - ws
               for r in rows if r["method"] in d)


def fit(train: dict[str, list[dict]]) -> float:
    gains = [sum(guarded_gain(rows, t) for rows in train.values()) for t in GRID]
    return float(GRID[int(np.argmax(gains))])  # argmax: first (smallest) of tied best


def evaluate(rows: list[dict], tol: float) -> dict:
    d = drops(rows)
    ws = next(r for r in rows if r["method"] == "weak_soft")
    fin = {r["method"]: final(r)["mean"] for r in rows}
    kept = [r for r in rows if r["method"] in d and decide(d[r["method"]], tol)]
    below_raw = sum(fin[m] < fin["weak_soft"] for m in d)
    below_guard = sum(fin[m] < fin["weak_soft"] for m in d if decide(d[m], tol))
    lost = sum(fin[m] > fin["weak_soft"] for m in d if not decide(d[m], tol))
    pick = max(kept or [ws], key=feedback)
    raw_pick = max((r for r in rows if r["method"] in d), key=feedback)
    return {"tol": tol, "below_raw": below_raw, "below_guard": below_guard, "lost": lost,
            "n": len(d), "pick": pick["method"], "pick_final": final(pick),
            "raw_pick": raw_pick["method"], "raw_pick_final": final(raw_pick),
            "ws_final": final(ws), "noisy_em_drop": d.get("noisy_em"),
            "noisy_em_kept": decide(d["noisy_em"], tol) if "noisy_em" in d else None,
            "guarded_drop": d.get("guarded")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="snli-pref,tweets,movies,reviews,math")
    ap.add_argument("--holdout", default="nyt", help="outside tasks: never fitted on")
    args = ap.parse_args()
    fit_on = all_cached([t for t in args.tasks.split(",") if t])
    held = [t for t in args.holdout.split(",") if t]
    outside = all_cached(held) if held else {}
    print(f"fitted on {list(fit_on)}; outside {list(outside)}; library default tolerance "
          f"{DEFAULT}\n")
    print("| held-out task | tolerance fitted on the others | methods below weak_soft: raw → "
          "guarded (of n) | methods above weak_soft dropped | noisy_em drop (kept?) | "
          "lab's pick raw: final PGR [95%] | lab's pick guarded: final PGR [95%] | "
          "weak_soft [95%] |")
    print("|---|---|---|---|---|---|---|---|")
    cases = [(t, fit({k: v for k, v in fit_on.items() if k != t}), rows)
             for t, rows in fit_on.items()]
    cases += [(t, fit(fit_on), rows) for t, rows in outside.items()]
    for t, tol, rows in cases:
        e = evaluate(rows, tol)
        nd = "–" if e["noisy_em_drop"] is None else \
            f"{e['noisy_em_drop']:+.4f} ({'kept' if e['noisy_em_kept'] else 'fell back'})"
        print(f"| {t}{' (outside)' if t in outside else ''} | {tol:.4f} | {e['below_raw']} → "
              f"{e['below_guard']} (of {e['n']}) | {e['lost']} | {nd} | {e['raw_pick']}: "
              f"{ci(e['raw_pick_final'])} | {e['pick']}: {ci(e['pick_final'])} | "
              f"{ci(e['ws_final'])} |")
    print("\nSame, at the library default tolerance:")
    for t, rows in {**fit_on, **outside}.items():
        e = evaluate(rows, DEFAULT)
        print(f"  {t}: below weak_soft {e['below_raw']} → {e['below_guard']} of {e['n']}, "
              f"dropped above-weak_soft {e['lost']}, guarded-row drop {e['guarded_drop']}, "
              f"pick {e['pick']} {ci(e['pick_final'])}")


if __name__ == "__main__":
    main()
