"""Transductive specs: the test rows (features and the teacher's soft labels, never a gold label)
join the rows every step and the student learn from; everything else stays as it was."""

from __future__ import annotations

import numpy as np
import pytest

from aarlab.errors import SpecError
from aarlab.w2s.runner import make_context, run_experiment
from aarlab.w2s.spec import parse_spec
from aarlab.w2s.transductive import joined_features, transductive_context
from sealed_key import sealed_answer_key

FAST = {"epochs": 5}


def test_a_plain_spec_keeps_its_identity_and_a_transductive_one_says_so():
    plain = parse_spec({"method": "noisy_em"})
    trans = parse_spec({"method": "noisy_em", "transductive": True})
    assert "transductive" not in plain.canonical()  # cached baselines keep their keys
    assert trans.canonical() == {**plain.canonical(), "transductive": True}
    assert trans.label == "noisy_em [transductive]"


@pytest.mark.parametrize("bad, message", [
    ({"method": "weak_soft", "transductive": "yes"}, r"transductive: expected true or false"),
    ({"method": "weak_soft", "transductive": True, "student": {"kind": "lora"}},
     r"transductive: only the head student"),
])
def test_bad_transductive_fields_name_the_field(bad, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(bad)


def test_joined_rows_are_the_kits_rows_then_its_test_rows(tiny_snli):
    """What a transductive step sees: train_unlabel's features, teacher outputs, groups and
    answers, then test's, in order, with the test groups renumbered apart from train's."""
    kit, _ = tiny_snli
    plain = make_context(kit, 1)
    x = joined_features({s: kit.features(s) for s in ("train_unlabel", "test")})
    ctx = transductive_context(kit, 1, plain.head, x=x, shared={})
    n, m = len(kit.ids("train_unlabel")), len(kit.ids("test"))
    assert len(ctx.x["train_unlabel"]) == len(ctx.weak["train_unlabel"]) == n + m
    np.testing.assert_array_equal(ctx.x["train_unlabel"][n:], plain.x["test"])
    np.testing.assert_array_equal(ctx.weak["train_unlabel"][:n], plain.weak["train_unlabel"])
    np.testing.assert_array_equal(ctx.weak["train_unlabel"][n:], plain.weak["test"])
    np.testing.assert_array_equal(ctx.x["test"], plain.x["test"])
    groups = ctx.groups("train_unlabel")
    np.testing.assert_array_equal(groups[:n], plain.groups("train_unlabel"))
    test_groups = plain.groups("test")
    assert (groups[n:] >= 0).sum() == (test_groups >= 0).sum()
    if (test_groups >= 0).any():  # no test group shares a number with a train group
        assert not set(groups[:n][groups[:n] >= 0]) & set(groups[n:][groups[n:] >= 0])
    np.testing.assert_array_equal(ctx.groups("test"), test_groups)
    assert ctx.answers("train_unlabel") == plain.answers("train_unlabel") + plain.answers("test")


def test_transductive_run_trains_on_the_test_rows_with_signals(tiny_snli):
    kit, _ = tiny_snli
    n, m = len(kit.ids("train_unlabel")), len(kit.ids("test"))
    spec = {"steps": [{"method": "guarded", "params": {"source": "noisy_em"}},
                      {"method": "logconf"}, {"method": "consistency"}],
            "head": FAST, "transductive": True}
    out = run_experiment(kit, spec, seeds=[0], signals=True)
    assert out[0].shape == (m,)
    signals = out.diagnostics[0]["signals"]
    # Cross-fitted on the joined rows: every held-out signal is a number in range.
    for name in ("heldout_agree", "heldout_confident_agree", "crossfit_stability",
                 "swap_consistency"):
        assert 0.0 <= signals[name] <= 1.0
    plain = run_experiment(kit, {**spec, "transductive": False}, seeds=[0])
    # consistency trains on both orders of every pair: twice the rows, either way
    assert plain.diagnostics[0]["train_rows"] == 2 * n
    assert out.diagnostics[0]["train_rows"] == 2 * (n + m)


def test_teacher_labels_on_the_test_rows_pull_the_student_to_the_teacher(tiny_tweets):
    """The documented risk: a spec that hands the teacher's own labels on (weak_soft) and also
    trains on the test rows learns the teacher's answers exactly where it is scored."""
    kit, _ = tiny_tweets
    head = {"epochs": 60}
    plain = run_experiment(kit, {"method": "weak_soft", "head": head}, seeds=[0, 1])
    trans = run_experiment(kit, {"method": "weak_soft", "head": head, "transductive": True},
                           seeds=[0, 1])
    agree = [np.mean([r.diagnostics[s]["agree_weak_test"] for s in (0, 1)])
             for r in (plain, trans)]
    assert agree[1] > agree[0]


def test_a_transductive_run_never_opens_the_answer_key(tiny_snli, settings, monkeypatch):
    kit, key = tiny_snli
    with sealed_answer_key(key.dir, monkeypatch, root=settings.answer_keys_dir) as touched:
        spec = {"steps": [{"method": "noisy_em"}, {"method": "probe_filter"},
                          {"method": "logconf"}, {"method": "consistency"}],
                "head": FAST, "transductive": True}
        out = run_experiment(kit, spec, seeds=[0], signals=True)
        assert sorted(out) == [0]
    assert touched == []
