"""How often the seed-noise interval of a 3-seed vote covers the truth, on simulated tasks.

    python bench/vote_coverage.py [--trials 80] [--rows 700] [--seeds 5,8] [--fail 0.2]

The lab's final report gives the headline's PGR of a 3-seed vote, and its difference from the
tuned baseline, with an interval over the final rows *and* the seeds (``Scorer.vote_interval``,
``Scorer.vote_diff``: every vote of 3 distinct seeds, seeds and rows resampled together). This
checks that interval where the truth is known: a simulated binary task whose rows have a shared
difficulty, whose teacher seeds shift every method trained on them (weak, pick, baseline), and
whose baseline is seed-sensitive (on a seed it "falls back" to copying its teacher with
probability ``--fail``, as a guard does). The truth, the expected PGR of a vote of 3 distinct
seeds and the expected difference, comes from a large Monte-Carlo sample of the same process.
Prints, per seed count, the share of trials whose 95 % interval covers it (about 0.95 is right),
the same for the row-only interval of one vote (seeds 0-2, as the headline's first report has
it), and the share called a win (the difference's interval above 0).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from aarlab.w2s.metrics import bootstrap_pgr, bootstrap_pgr_diff, majority_vote


def simulate(rng: np.random.Generator, rows: int, seeds: int, fail: float):
    """truth and per-seed predictions (seeds, rows) of weak, ceiling, pick and baseline."""
    truth = rng.integers(0, 2, rows)
    difficulty = rng.standard_normal(rows)  # shared by every method: rows are hard or easy
    teacher = rng.standard_normal(seeds)  # a teacher seed's shift, shared by its students

    def right(skill: float, shift: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal((len(shift), rows))
        return skill + 0.8 * difficulty + 0.15 * shift[:, None] + 0.6 * noise > 0

    weak, pick, base = right(0.45, teacher), right(0.95, teacher), right(1.0, teacher)
    ceiling = right(1.05, rng.standard_normal(seeds))
    falls_back = rng.random(seeds) < fail
    base[falls_back] = weak[falls_back]

    def labels(ok: np.ndarray) -> np.ndarray:
        return np.where(ok, truth, 1 - truth)

    return truth, labels(weak), labels(ceiling), labels(pick), labels(base)


def population(fail: float, rows: int = 20_000, draws: int = 150) -> tuple[float, float]:
    """Expected PGR of a 3-distinct-seed vote of the pick, and its expected difference."""
    rng = np.random.default_rng(12345)
    acc = {k: [] for k in ("w", "c", "p", "b")}
    for _ in range(draws):
        truth, w, c, p, b = simulate(rng, rows, 3, fail)
        for k, x in (("w", w), ("c", c), ("p", majority_vote(p, 2)),
                     ("b", majority_vote(b, 2))):
            acc[k].append((x == truth).mean())
    m = {k: float(np.mean(v)) for k, v in acc.items()}

    def pgr(x: float) -> float:
        return (x - m["w"]) / (m["c"] - m["w"])

    return pgr(m["p"]), pgr(m["p"]) - pgr(m["b"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=80)
    ap.add_argument("--rows", type=int, default=700)
    ap.add_argument("--seeds", default="5,8")
    ap.add_argument("--fail", type=float, default=0.2)
    ap.add_argument("--boot", type=int, default=400)
    args = ap.parse_args()
    true_pick, true_diff = population(args.fail)
    print(f"truth: PGR of a 3-seed vote {true_pick:.3f}, difference from the baseline "
          f"{true_diff:+.3f} (baseline falls back on a seed with probability {args.fail})")
    print("| seeds | trials | covers the vote's PGR | covers the difference | row-only interval "
          "of one vote covers the difference | called a win | s |")
    print("|---|---|---|---|---|---|---|")
    for seeds in (int(x) for x in args.seeds.split(",")):
        rng = np.random.default_rng(7)
        cover_pick = cover_diff = cover_rows = wins = 0
        t0 = time.monotonic()
        for trial in range(args.trials):
            truth, w, c, p, b = simulate(rng, args.rows, seeds, args.fail)
            one = bootstrap_pgr(truth, w, c, p, n_boot=args.boot, seed=trial, vote_of=3)
            diff = bootstrap_pgr_diff(truth, w, c, p, b, n_boot=args.boot, seed=trial,
                                      vote_of=3)
            rows_only = bootstrap_pgr_diff(truth, w, c, majority_vote(p[:3], 2),
                                           majority_vote(b[:3], 2), n_boot=args.boot,
                                           seed=trial)
            cover_pick += one.lo <= true_pick <= one.hi
            cover_diff += diff.lo <= true_diff <= diff.hi
            cover_rows += rows_only.lo <= true_diff <= rows_only.hi
            wins += diff.lo > 0
        n = args.trials
        print(f"| {seeds} | {n} | {cover_pick / n:.2f} | {cover_diff / n:.2f} | "
              f"{cover_rows / n:.2f} | {wins / n:.2f} | {time.monotonic() - t0:.0f} |")


if __name__ == "__main__":
    main()
