"""Noise-robust training: forward correction, GCE, bootstrapping, ELR, confident learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aarlab.w2s.heads import HeadConfig, train_head, xent_loss
from aarlab.w2s.methods.bootstrap import BootstrapLoss
from aarlab.w2s.methods.confident_learning import ConfidentLearning, label_issues
from aarlab.w2s.methods.elr import train_elr
from aarlab.w2s.methods.forward import ForwardLoss, anchor_transition, estimate_transition
from aarlab.w2s.methods.gce import GCELoss
from aarlab.w2s.methods.vanilla import WeakHard
from aarlab.w2s.runner import run_experiment
from synthetic_w2s import context, flip, soft, two_clusters

LINEAR = HeadConfig(kind="linear", epochs=40, batch_size=250, lr=0.05)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny heads: extra torch threads only spin, and on a shared machine they stall the test.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _batch(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 2, generator=g) * 2
    p1 = torch.rand(n, generator=g)
    return logits, torch.stack([1 - p1, p1], 1)


def test_forward_correction_recovers_the_clean_classifier():
    # Asymmetric channel: 60 % of class 0 is labelled 1, class 1 is clean. Plain CE learns the
    # noisy majority (class 0's region labelled 1); correcting through T recovers the boundary.
    x, y = two_clusters(n=1000, d=4, gap=4.0)
    noisy = flip(y, 0.6, only_class=0)
    targets = soft(noisy, conf=1.0)
    ctx = context(x, targets)
    t_est = estimate_transition(ctx, quantile=0.97)
    np.testing.assert_allclose(t_est, [[0.4, 0.6], [0.0, 1.0]], atol=0.12)
    plain = train_head(x, targets, seed=0, cfg=LINEAR, loss_fn=xent_loss)
    fixed = train_head(x, targets, seed=0, cfg=LINEAR, loss_fn=ForwardLoss(t_est))
    acc_plain = (plain.predict_proba(x).argmax(1) == y).mean()
    acc_fixed = (fixed.predict_proba(x).argmax(1) == y).mean()
    assert acc_plain < 0.7
    assert acc_fixed > 0.9


def test_anchor_transition_reads_rows_at_the_quantile():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.05, 0.95]])
    t = anchor_transition(probs, quantile=1.0)
    np.testing.assert_allclose(t, [[0.9, 0.1], [0.05, 0.95]])
    # Identity channel: the forward loss is plain cross-entropy.
    logits, weak = _batch()
    torch.testing.assert_close(ForwardLoss(np.eye(2))(logits, weak, 0.5),
                               xent_loss(logits, weak, 0.5), atol=1e-5, rtol=1e-5)


def test_gce_formula_and_limits():
    logits, weak = _batch()
    p = torch.softmax(logits, -1)
    q = 0.7
    torch.testing.assert_close(GCELoss(q)(logits, weak, 0.0),
                               (weak * (1 - p ** q)).sum(-1) / q)
    # q → 0 is cross-entropy; q = 1 is the mean absolute error Σ t (1 − p).
    torch.testing.assert_close(GCELoss(1e-4)(logits, weak, 0.0), xent_loss(logits, weak, 0.0),
                               atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(GCELoss(1.0)(logits, weak, 0.0), (weak * (1 - p)).sum(-1))


def test_gce_bounds_the_pull_of_a_contradicted_label():
    # The student is sure of class 0; the label says 1. CE's gradient on the logit stays ~1,
    # GCE's shrinks with p^q: the wrong label pulls much less.
    logits = torch.tensor([[6.0, -6.0]], requires_grad=True)
    target = torch.tensor([[0.0, 1.0]])
    (g_ce,) = torch.autograd.grad(xent_loss(logits, target, 0).sum(), logits)
    (g_gce,) = torch.autograd.grad(GCELoss(0.7)(logits, target, 0).sum(), logits)
    assert g_gce.abs().max() < 0.01 * g_ce.abs().max()


@pytest.mark.parametrize("hard", [True, False])
def test_bootstrap_target_mixes_label_and_student(hard):
    logits, weak = _batch()
    p = torch.softmax(logits, -1)
    own = torch.eye(2)[p.argmax(1)] if hard else p
    target = 0.8 * weak + 0.2 * own
    torch.testing.assert_close(BootstrapLoss(0.8, hard)(logits, weak, 0.3),
                               xent_loss(logits, target, 0.3))
    torch.testing.assert_close(BootstrapLoss(1.0, hard)(logits, weak, 0.3),
                               xent_loss(logits, weak, 0.3))


def test_elr_without_its_term_is_train_head():
    x, y = two_clusters(n=300)
    t = soft(y)
    cfg = HeadConfig(epochs=3, batch_size=64)
    a = train_head(x, t, seed=3, cfg=cfg).predict_proba(x)
    b = train_elr(x, t, None, seed=3, cfg=cfg, loss_fn=xent_loss, lam=0.0,
                  beta=0.7).predict_proba(x)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_elr_resists_memorising_flipped_labels():
    # A wide MLP trained long on few rows memorises flipped labels; ELR keeps more of the rows
    # on their early (clean-cluster) prediction.
    x, y = two_clusters(n=200, d=20, gap=3.0)
    noisy = flip(y, 0.3)
    cfg = HeadConfig(hidden=256, epochs=150, batch_size=50, lr=3e-3, dropout=0.0,
                     weight_decay=0.0)
    t = soft(noisy, conf=1.0)
    ce = train_head(x, t, seed=0, cfg=cfg).predict_proba(x).argmax(1)
    elr = train_elr(x, t, None, seed=0, cfg=cfg, loss_fn=xent_loss, lam=3.0,
                    beta=0.7).predict_proba(x).argmax(1)
    wrong = noisy != y
    assert (elr[wrong] == y[wrong]).mean() > (ce[wrong] == y[wrong]).mean() + 0.1


def test_label_issues_use_per_class_thresholds():
    # Class 1 is the probe's less confident class: a global 0.6 cut would call every class-1
    # row an issue; per-class thresholds flag only the row the probe puts clearly in class 0.
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.55, 0.45], [0.52, 0.48], [0.88, 0.12]])
    given = np.array([0, 0, 1, 1, 1])
    issues, y_star = label_issues(probs, given)
    np.testing.assert_array_equal(issues, [False, False, False, False, True])
    assert y_star[4] == 0


@pytest.mark.parametrize("action", ["drop", "relabel"])
def test_confident_learning_finds_flipped_labels(action):
    x, y = two_clusters(n=800, gap=5.0)
    noisy = flip(y, 0.2)
    ctx = context(x, soft(noisy, conf=1.0))
    ts = WeakHard().labels(ctx)
    out = ConfidentLearning(ConfidentLearning.Params(action=action)).transform(ctx, ts)
    flagged = (out.weights == 0) if action == "drop" else (
        out.targets.argmax(1) != ts.targets.argmax(1))
    wrong = noisy != y
    assert flagged[wrong].mean() > 0.8  # most flips found
    assert flagged[~wrong].mean() < 0.1  # few clean rows touched
    if action == "relabel":
        assert (out.targets.argmax(1) == y).mean() > 0.95


@pytest.mark.parametrize("spec", [
    {"steps": [{"method": "confident_learning", "params": {"probe": "logistic"}},
               {"method": "gce"}]},
    {"steps": [{"method": "label_prop"}, {"method": "forward"}, {"method": "elr"}]},
    {"steps": [{"method": "noisy_em"}, {"method": "bootstrap"}]},
])
def test_noise_robust_steps_compose_on_a_kit(tiny_tweets, spec):
    kit, _ = tiny_tweets
    out = run_experiment(kit, spec, seeds=[0])
    assert len(out[0]) == len(kit.ids("test"))
