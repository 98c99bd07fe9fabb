"""Paired direction / CCS: one label-free direction of the pair differences; the weak labels
choose only its sign; swapping A and B flips every label."""

from __future__ import annotations

import numpy as np
import pytest

from aarlab.errors import SpecError
from aarlab.w2s.methods.paired_direction import (
    PairedDirection,
    contrast_features,
    find_direction,
)
from aarlab.w2s.runner import run_experiment
from synthetic_w2s import context, flip, soft


def _pairs(n: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pair differences: the label is the sign of a bimodal axis (x0); a larger, unimodal
    nuisance shared by x1..x4 dominates the variance; random A/B order makes it odd."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.where(y == 1, 1.0, -1.0)
    x = rng.normal(size=(n, 8))
    x[:, 0] = s * (1.5 + 0.2 * rng.normal(size=n))
    x[:, 1:5] = 2.0 * rng.normal(size=(n, 1)) + 0.3 * rng.normal(size=(n, 4))
    return x.astype(np.float32), y


def test_ccs_finds_the_bimodal_concept_where_pca_finds_the_nuisance():
    x, y = _pairs()
    z = contrast_features(x, pairwise=True)
    acc = {}
    for algorithm in ("ccs", "pca"):
        score = z @ find_direction(z, algorithm, seed=0)
        agree = ((score > 0) == (y == 1)).mean()
        acc[algorithm] = max(agree, 1 - agree)  # up to the sign, which the weak labels choose
    assert acc["ccs"] > 0.95
    assert acc["pca"] < 0.75


def test_weak_labels_only_choose_the_sign():
    x, y = _pairs()
    a = PairedDirection().labels(context(x, soft(flip(y, 0.3)), fmt="pairwise")).targets
    b = PairedDirection().labels(context(x, soft(flip(y, 0.1, seed=5)), fmt="pairwise")).targets
    np.testing.assert_allclose(a, b)  # different weak labels, same majority sign: same labels
    assert (a.argmax(1) == y).mean() > 0.95
    c = PairedDirection().labels(context(x, soft(1 - y), fmt="pairwise")).targets
    np.testing.assert_allclose(c, a[:, ::-1])  # a teacher that is mostly wrong picks -θ


@pytest.mark.parametrize("algorithm", ["ccs", "pca"])
def test_swapping_a_and_b_flips_every_label(algorithm):
    x, y = _pairs(n=400)
    weak = soft(flip(y, 0.2))
    step = PairedDirection(PairedDirection.Params(algorithm=algorithm))
    t = step.labels(context(x, weak, fmt="pairwise")).targets
    t_swapped = step.labels(context(-x, weak[:, ::-1], fmt="pairwise")).targets
    np.testing.assert_allclose(t_swapped, t[:, ::-1], atol=1e-5)


def test_paired_direction_needs_two_classes():
    x, _ = _pairs(n=50)
    with pytest.raises(SpecError, match="two-class"):
        PairedDirection().labels(context(x, np.full((50, 3), 1 / 3, np.float32)))


def test_paired_direction_runs_on_a_kit(tiny_snli):
    kit, _ = tiny_snli
    out = run_experiment(kit, {"method": "paired_direction", "params": {"algorithm": "pca"}},
                         seeds=[0])
    assert len(out[0]) == len(kit.ids("test"))
