"""How far adaptive flipping climbs the Ladder, and how often an honest gain is released.

Pure rules, no server: a SYNTHETIC task whose weak teacher is right on row i with probability
0.5 + confidence_i / 2 (mean accuracy about 0.79), half the rows feedback, half final, and the
server's probe rule (a query within ``tau`` rows of an earlier one learns nothing).

Attack (issue 15): start from the weak teacher's predictions, flip ``m`` rows of the current best
(among the ``pool`` least confident rows, or anywhere), keep the flip when a new score is released;
``queries`` queries. Reported: releases, and the best's released PGR minus its final-part PGR,
in PGR and in released steps (the grid), mean over ``trials`` runs (and the worst run).

Honest: a new vector that differs from the best on ``disc`` of the feedback rows and is right on
``gain`` more of them than the best (net); reported: the share released over 2,000 draws.

    python bench/ladder_attack.py [--rows 160] [--gap 0.085] [--queries 1000] [--trials 20]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from aarlab.scoring.ladder import Ladder, PairedLadder
from aarlab.scoring.probes import ProbeIndex, pack


def synthetic(rows: int, rng: np.random.Generator):
    conf = rng.beta(1.2, 1.0, rows)
    truth = rng.integers(0, 2, rows)
    right = rng.random(rows) < 0.5 + conf / 2
    weak = np.where(right, truth, 1 - truth)
    feedback = np.zeros(rows, bool)
    feedback[rng.permutation(rows)[: rows // 2]] = True
    return truth, weak, conf, feedback


def attack(rows: int, gap: float, m: int, queries: int, targeted: bool, tau: int,
           ladder_kind: str, safety: float, min_step_se: float, rng: np.random.Generator,
           pool_size: int = 40):
    truth, weak, conf, fb = synthetic(rows, rng)
    fin = ~fb
    w_fb, w_fin = (weak == truth)[fb].mean(), (weak == truth)[fin].mean()
    gap_fin = gap  # the same gap on both parts: the synthetic teacher is the same on both

    def pgr(v, part, w):
        return ((v == truth)[part].mean() - w) / gap

    paired = PairedLadder(int(fb.sum()), w_fb, gap, safety, min_step_se) \
        if ladder_kind == "paired" else None
    old = Ladder(0.02)
    pool = np.argsort(conf)[:pool_size] if targeted else np.arange(rows)
    best = weak.copy()
    released = old.round(pgr(best, fb, w_fb)) if ladder_kind == "old" else 0.0
    sent = ProbeIndex(rows)  # the server's own index of earlier submissions
    sent.add(0, pack(best))
    releases = 0
    for t in range(1, queries + 1):
        q = best.copy()
        q[rng.choice(pool, m, replace=False)] ^= 1
        near = sent.nearest(pack(q)).distance
        sent.add(t, pack(q))
        if near < tau:
            continue  # a probe (or a copy): answered with the old release
        if ladder_kind == "old":
            r, new = old.release(released, pgr(q, fb, w_fb))
        else:
            v = paired.compare((q == truth)[fb], (best == truth)[fb])
            new, r = v.released, paired.round(pgr(q, fb, w_fb))
        if new:
            best, released, releases = q, r, releases + 1
    grid = old.eta if ladder_kind == "old" else paired.grid
    over = released - ((best == truth)[fin].mean() - w_fin) / gap_fin
    return releases, over, over / grid


def honest(n_fb: int, gap: float, disc: float, gain: float, safety: float,
           min_step_se: float, rng: np.random.Generator, draws: int = 2000) -> float:
    """Share of honest improvements released: ``disc`` rows differ, ``gain`` net right."""
    lad = PairedLadder(n_fb, 0.79, gap, safety, min_step_se)
    m = max(1, round(disc * n_fb))
    p_gain = min(1.0, 0.5 + gain / disc / 2)  # per discordant row, P(the new one is right)
    hits = 0
    for _ in range(draws):
        rows = rng.choice(n_fb, m, replace=False)
        best = np.zeros(n_fb, np.int8)
        new = np.zeros(n_fb, np.int8)
        right = rng.random(m) < p_gain
        new[rows[right]] = 1
        best[rows[~right]] = 1
        hits += lad.compare(new, best).released
    return hits / draws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=160)
    ap.add_argument("--gap", type=float, default=0.085)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--tau", type=int, default=10)
    ap.add_argument("--safety", type=float, nargs="+", default=[1.0, 2.0, 2.5, 3.0])
    ap.add_argument("--min-step-se", type=float, nargs="+", default=[0.5])
    ap.add_argument("--flips", type=int, nargs="+", default=[13, 26])
    ap.add_argument("--pool", type=int, default=40, help="least confident rows to flip among")
    ap.add_argument("--random", action=argparse.BooleanOptionalAction, default=True,
                    help="also the attack on random rows")
    a = ap.parse_args()
    n_fb = a.rows // 2
    print(f"synthetic task: {a.rows} test rows ({n_fb} feedback), gap {a.gap}, tau {a.tau}, "
          f"{a.queries} queries, {a.trials} trials")
    print("ladder           flips  rows      releases  released-final PGR  in steps (worst)")
    configs = [("old", 0.0, 0.0)] + [("paired", k, f) for k in a.safety for f in a.min_step_se]
    for kind, k, f in configs:
        for m in a.flips:
            for targeted in (True, False) if a.random else (True,):
                rng = np.random.default_rng(m)
                out = np.array([attack(a.rows, a.gap, m, a.queries, targeted, a.tau, kind, k, f,
                                       rng, a.pool) for _ in range(a.trials)])
                name = "old eta=0.02" if kind == "old" else f"k={k:g} f={f:g}"
                print(f"{name:16s} {m:5d}  {'least-conf' if targeted else 'random':9s} "
                      f"{out[:, 0].mean():8.1f}  {out[:, 1].mean():+18.2f}  "
                      f"{out[:, 2].mean():+6.1f} ({out[:, 2].max():+.1f})")
    print("\nhonest gains released (share of 2,000 draws)")
    print("ladder           gain(acc)  discordant  share")
    for _, k, f in configs[1:]:
        for gain, disc in ((0.03, 0.08), (0.05, 0.10), (0.05, 0.20), (0.10, 0.20)):
            share = honest(n_fb, a.gap, disc, gain, k, f, np.random.default_rng(1))
            print(f"k={k:g} f={f:g}{'':8s} {gain:9.2f}  {disc:10.2f}  {share:5.2f}")
    lad = PairedLadder(n_fb, 0.79, a.gap, 3.0, 0.5)
    print(f"\nstep at f=0.5: {lad.step:.4f} accuracy = {lad.step * n_fb:.1f} feedback rows = "
          f"{lad.grid:.3f} PGR; all-gain flips pass only above k^2 rows "
          f"(k=3: {math.ceil(9 * (n_fb - 1) / n_fb)} feedback rows)")


if __name__ == "__main__":
    main()
