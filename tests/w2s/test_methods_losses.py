"""Losses in the openai/weak-to-strong style: (logits, targets, step_frac) -> per-example loss."""

from __future__ import annotations

import pytest
import torch

from aarlab.w2s.heads import xent_loss
from aarlab.w2s.methods.logconf import LogconfLoss, harden
from aarlab.w2s.methods.product import ProductLoss
from aarlab.w2s.methods.window import WindowLoss
from aarlab.w2s.runner import run_experiment


def _batch(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 2, generator=g) * 2
    p1 = torch.rand(n, generator=g)
    return logits, torch.stack([1 - p1, p1], 1)


def test_logconf_is_xent_without_aux_and_ramps_up():
    logits, weak = _batch()
    loss = LogconfLoss(aux_coef=0.0)
    torch.testing.assert_close(loss(logits, weak, 0.7), xent_loss(logits, weak, 0.7))
    ramp = LogconfLoss(aux_coef=0.8, warmup_frac=0.5)
    assert ramp.coef(0.0) == 0.0
    assert ramp.coef(0.25) == pytest.approx(0.4)
    assert ramp.coef(0.9) == pytest.approx(0.8)
    torch.testing.assert_close(ramp(logits, weak, 0.0), xent_loss(logits, weak, 0.0))


def test_logconf_target_moves_toward_the_student():
    # The student is sure of class 0 where the weak label leans to class 1.
    logits = torch.tensor([[4.0, -4.0], [-4.0, 4.0]])
    weak = torch.tensor([[0.3, 0.7], [0.3, 0.7]])
    full = LogconfLoss(aux_coef=1.0, warmup_frac=0.0)(logits, weak, 1.0)
    plain = xent_loss(logits, weak, 1.0)
    assert full[0] < plain[0]  # disagreeing with the weak label costs less
    # With aux_coef=1 the target is the hardened student, so the loss is small everywhere.
    assert torch.all(full < 0.01)


def test_harden_matches_the_weak_class_balance():
    logits, _ = _batch(n=200)
    preds = torch.softmax(logits, -1)
    for share in (0.2, 0.5, 0.8):
        weak = torch.zeros(200, 2)
        weak[: int(200 * share), 1] = 1
        weak[int(200 * share):, 0] = 1
        hard = harden(preds, weak)
        assert torch.all(hard.sum(1) == 1)
        assert abs(hard[:, 1].mean().item() - share) <= 0.01
        # Class 1 goes to the rows with the highest p(class 1).
        assert preds[hard[:, 1] == 1, 1].min() >= preds[hard[:, 1] == 0, 1].max()


def test_product_loss_formula():
    logits, weak = _batch()
    torch.testing.assert_close(ProductLoss(alpha=1.0, beta=0.0)(logits, weak, 1.0),
                               xent_loss(logits, weak, 1.0), atol=1e-5, rtol=1e-5)
    alpha, beta = 0.5, 2.0
    student = torch.softmax(logits, -1)
    target = student**beta * weak**alpha
    target = target / target.sum(1, keepdim=True)
    torch.testing.assert_close(ProductLoss(alpha, beta, warmup_frac=0.0)(logits, weak, 1.0),
                               xent_loss(logits, target, 1.0), atol=1e-5, rtol=1e-5)
    # Hard labels stay finite.
    hard = torch.eye(2)[weak.argmax(1)]
    assert torch.isfinite(ProductLoss()(logits, hard, 1.0)).all()


def test_window_loss_trains_only_where_the_student_is_uncertain():
    logits = torch.tensor([[5.0, -5.0], [0.1, 0.0], [-0.2, 0.3], [-6.0, 6.0]])
    weak = torch.tensor([[0.0, 1.0]] * 4)
    loss = WindowLoss(radius=0.2, warmup_frac=0.5)
    early, late = loss(logits, weak, 0.1), loss(logits, weak, 0.9)
    torch.testing.assert_close(early, xent_loss(logits, weak, 0.1))
    assert late[0] == 0 and late[3] == 0  # confident rows: no loss
    torch.testing.assert_close(late[1:3], early[1:3])


@pytest.mark.parametrize("method", ["logconf", "product", "window"])
def test_loss_methods_end_to_end(tiny_tweets, method):
    kit, _ = tiny_tweets
    base = run_experiment(kit, {"method": "weak_soft", "head": {"epochs": 8}}, seeds=[0])
    out = run_experiment(kit, {"method": method, "head": {"epochs": 8}}, seeds=[0])
    assert out[0].shape == base[0].shape
    # The loss changes what the student learns.
    assert (out[0] != base[0]).any()
