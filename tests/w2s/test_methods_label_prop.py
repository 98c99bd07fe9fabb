"""Label propagation: flipped weak labels inside a cluster are outvoted; k and prior adapt."""

from __future__ import annotations

import numpy as np

from aarlab.w2s.methods._adapt import K_LADDER, adaptive_k, class_prior
from aarlab.w2s.methods._knn import knn_graph
from aarlab.w2s.methods.label_prop import LabelProp, mass_normalise, propagate
from aarlab.w2s.runner import run_experiment
from synthetic_w2s import context, flip, soft, two_clusters


def test_label_prop_fixes_flipped_labels_in_two_clusters():
    x, y = two_clusters(gap=5.0)
    noisy = flip(y, 0.25)
    ctx = context(x, soft(noisy))
    ts = LabelProp().labels(ctx)
    before = (noisy == y).mean()
    after = (ts.targets.argmax(1) == y).mean()
    assert before < 0.8
    assert after > 0.95  # most flips corrected by the cluster's majority
    assert ts.info["k"] in K_LADDER


def test_alpha_zero_keeps_the_weak_labels():
    x, y = two_clusters()
    weak = soft(flip(y, 0.2))
    idx, sim = knn_graph(x, 10, signed=False)
    np.testing.assert_allclose(propagate(idx, sim, weak, alpha=0.0), weak, atol=1e-6)


def test_adaptive_k_grows_with_label_noise():
    # Clean labels on well-separated clusters: a few neighbours suffice; noisy labels need a
    # larger vote. The choice is made from the weak labels alone.
    x, y = two_clusters(n=800, gap=6.0)
    k_noisy = adaptive_k(x, soft(flip(y, 0.35), conf=1.0), signed=False)
    k_clean = adaptive_k(x, soft(y, conf=0.9), signed=False)
    assert k_noisy >= k_clean
    assert k_noisy >= 20


def test_class_mass_normalisation_matches_the_prior():
    f = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]], np.float32)
    prior = np.array([0.5, 0.5])
    g = mass_normalise(f, prior)
    np.testing.assert_allclose(g.sum(1), 1, atol=1e-6)
    assert abs(g[:, 1].mean() - 0.5) < abs(f[:, 1].mean() - 0.5)
    np.testing.assert_allclose(class_prior(soft(np.array([0, 0, 0, 1]), 1.0), pairwise=False),
                               [0.75, 0.25])
    np.testing.assert_allclose(class_prior(soft(np.array([0, 0, 0, 1]), 1.0), pairwise=True),
                               [0.5, 0.5])


def test_label_prop_on_pairs_is_swap_symmetric():
    # Pairwise rows: x and -x are the same pair swapped; the signed graph passes labels reversed.
    x, y = two_clusters(n=300, gap=5.0)
    x[:, 0] = np.abs(x[:, 0]) * np.where(y == 1, 1, -1)  # class is the sign of the first axis
    xs = np.concatenate([x, -x])
    ys = np.concatenate([y, 1 - y])
    weak = soft(flip(y, 0.2))
    ctx = context(xs, np.concatenate([weak, weak[:, ::-1]]), fmt="pairwise")
    t = LabelProp().labels(ctx).targets
    np.testing.assert_allclose(t[:300], t[300:, ::-1], atol=1e-4)
    assert (t.argmax(1) == ys).mean() > 0.95


def test_label_prop_runs_on_a_kit(tiny_snli):
    kit, _ = tiny_snli
    out = run_experiment(kit, {"method": "label_prop", "params": {"k_scale": 0.5}}, seeds=[0])
    assert out.diagnostics[0]["k"] >= 1
    assert len(out[0]) == len(kit.ids("test"))
