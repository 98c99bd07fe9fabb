"""Ensemble step: exactly `members` student fits, probabilities averaged, composable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aarlab.w2s.heads import HeadConfig, xent_loss
from aarlab.w2s.methods.base import Context
from aarlab.w2s.methods.ensemble import Ensemble
from aarlab.w2s.methods.vanilla import WeakSoft
from aarlab.w2s.runner import run_experiment
from synthetic_w2s import context, soft, two_clusters


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _counted(ctx: Context, monkeypatch) -> list:
    calls: list = []
    real = Context.fit

    def fit(self, ts, loss_fn=xent_loss, seed_offset=0):
        calls.append((self.head.kind, seed_offset))
        return real(self, ts, loss_fn, seed_offset)
    monkeypatch.setattr(Context, "fit", fit)
    return calls


@pytest.mark.parametrize("members", [2, 5])
def test_ensemble_costs_exactly_members_fits_and_averages_them(monkeypatch, members):
    x, y = two_clusters(n=300)
    ctx = context(x, soft(y), head=HeadConfig(epochs=2))
    calls = _counted(ctx, monkeypatch)
    ts = WeakSoft().labels(ctx)
    head = Ensemble(Ensemble.Params(members=members)).train(ctx, ts, xent_loss)
    assert len(calls) == members == len(head.heads)
    assert len({off for _, off in calls}) == members  # every member its own seed
    p = head.predict_proba(x)
    np.testing.assert_allclose(p, np.mean([h.predict_proba(x) for h in head.heads], 0))
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(np.exp(head.logits(x)), p, atol=1e-6)


def test_ensemble_can_alternate_head_kinds(monkeypatch):
    x, y = two_clusters(n=200)
    ctx = context(x, soft(y), head=HeadConfig(epochs=2))
    calls = _counted(ctx, monkeypatch)
    Ensemble(Ensemble.Params(members=4, vary="head")).train(ctx, WeakSoft().labels(ctx),
                                                            xent_loss)
    assert [k for k, _ in calls] == ["mlp", "linear", "mlp", "linear"]


def test_ensemble_composes_with_consistency_on_pairs(tiny_snli):
    kit, _ = tiny_snli
    spec = {"steps": [{"method": "noisy_em"}, {"method": "ensemble", "params": {"members": 2}},
                      {"method": "consistency"}]}
    out = run_experiment(kit, spec, seeds=[0])
    assert len(out[0]) == len(kit.ids("test"))
