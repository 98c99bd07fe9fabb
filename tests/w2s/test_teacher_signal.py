"""``signals.teacher_kappa`` and ``teacher_margin``: is the weak teacher informative at all?
Checked on synthetic kits with a known truth: an informative teacher, a coin, and (pairwise) a
teacher with a position bias that a plain probe would happily learn."""

from __future__ import annotations

import numpy as np

from aarlab.w2s import signals as sig
from synthetic_w2s import flip, soft, two_clusters


def _coin(n: int, p1: float = 0.5, seed: int = 3) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p1).astype(int)


def test_kappa_tells_an_informative_teacher_from_a_coin():
    x, y = two_clusters(n=800, d=16, seed=0)
    good = soft(flip(y, 0.2))  # right on ~80 % of rows: κ ≈ 2q − 1 ≈ 0.6
    coin = soft(_coin(len(y)))
    k_good, se_good = sig.teacher_kappa(x, good, pairwise=False)
    k_coin, se_coin = sig.teacher_kappa(x, coin, pairwise=False)
    assert 0.4 < k_good < 0.8 and 0 < se_good < 0.05
    assert abs(k_coin) < 2 * se_coin + 0.02
    # Deterministic: one number per kit, the same on every call.
    assert sig.teacher_kappa(x, good, pairwise=False) == (k_good, se_good)


def test_a_skewed_coin_is_not_information_either():
    """Agreement with a teacher that says class 0 on 80 % of rows is high for any student that
    says class 0 too; κ discounts the agreement those class shares give by chance."""
    x, _ = two_clusters(n=800, d=16, seed=1)
    teacher = soft(_coin(len(x), p1=0.2))
    kappa, se = sig.teacher_kappa(x, teacher, pairwise=False)
    assert abs(kappa) < 2 * se + 0.02


def test_pairwise_kappa_reads_only_the_swap_odd_part_of_the_teacher():
    """Pairwise rows are emb(A) − emb(B): the truth flips under a swap (x → −x). A teacher that
    says "A" on most rows whatever they hold (an LM's position bias) carries nothing about the
    truth, even where the rows share an offset a probe with an intercept could latch onto."""
    rng = np.random.default_rng(2)
    n, d = 800, 16
    x = rng.normal(size=(n, d)).astype(np.float32)
    truth = (x[:, 0] > 0).astype(int)
    x[:, 1] += 2.0  # every pair leans the same way on one feature
    biased = soft(_coin(n, p1=0.25))
    k_bias, se_bias = sig.teacher_kappa(x, biased, pairwise=True)
    assert abs(k_bias) < 2 * se_bias + 0.02
    k_good, _ = sig.teacher_kappa(x, soft(flip(truth, 0.2)), pairwise=True)
    assert k_good > 0.4


def test_margin_is_zero_when_flat_and_grows_with_confidence():
    y = np.array([0, 1, 1, 0])
    assert sig.teacher_margin(np.full((4, 2), 0.5)) == 0.0
    assert abs(sig.teacher_margin(soft(y, 0.8)) - 0.6) < 1e-6
    three = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    assert abs(sig.teacher_margin(three) - 0.5) < 1e-9
