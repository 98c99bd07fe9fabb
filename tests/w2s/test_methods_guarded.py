"""The guarded label source: keeps a source whose departures from the teacher held-out evidence
supports, falls back to the teacher's soft labels when it does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aarlab.errors import SpecError
from aarlab.w2s.heads import HeadConfig
from aarlab.w2s.methods.base import weak_train_set
from aarlab.w2s.methods.guarded import FoldView, Guarded, decide, fold_views, heldout_drop
from aarlab.w2s.spec import parse_spec
from synthetic_w2s import context, flip, soft, two_clusters

HEAD = HeadConfig(kind="linear", epochs=10)  # the check's behaviour, not the head, is tested


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def topic_task(n: int = 800, seed: int = 0,
               label_gap: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Distances dominated by a 'topic' that only correlates with the label (80/20), the label
    itself on one low-variance axis: neighbours share topic, not label (like tweets)."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 2, n)
    y = np.where(rng.random(n) < np.where(topic == 1, 0.8, 0.2), 1, 0)
    x = rng.normal(size=(n, 10)).astype(np.float32)
    x[:, 1:] += np.where(topic == 1, 1.5, -1.5)[:, None]
    x[:, 0] += np.where(y == 1, label_gap, -label_gap)
    return x, y


def test_keeps_a_source_that_fixes_the_teachers_flips():
    x, y = two_clusters(n=800, gap=5.0)
    weak = soft(flip(y, 0.2))
    ctx = context(x, weak, head=HEAD)
    ts = Guarded(Guarded.Params(source="label_prop")).labels(ctx)
    g = ts.info["guard"]
    assert g["kept"] and g["drop"] <= 0.01
    assert (ts.targets.argmax(1) == y).mean() > 0.95  # the source's labels, not the teacher's


def test_falls_back_when_the_source_follows_another_structure():
    x, y = topic_task(n=1600)
    weak = soft(flip(y, 0.2))
    ctx = context(x, weak)  # the default (MLP) student: it learns the label axis from ω
    ts = Guarded(Guarded.Params(source="label_prop")).labels(ctx)
    g = ts.info["guard"]
    assert not g["kept"] and g["drop"] > 0.01 + 2 * g["se"]
    np.testing.assert_allclose(ts.targets, weak, atol=1e-6)  # weak_soft's labels
    # and the fallback was right: the source's own labels are worse than the teacher's here
    from aarlab.w2s.methods.label_prop import LabelProp
    q = LabelProp().labels(context(x, weak, head=HEAD)).targets.argmax(1)
    assert (q == y).mean() < (weak.argmax(1) == y).mean()


class Majority:
    """A label source that collapses to the majority class (noisy_em did on vader-tweets)."""

    stage = "labels"

    def labels(self, view):
        t = np.zeros_like(view.weak["train_unlabel"])
        t[:, 1] = 1.0
        return weak_train_set(view, t)


def test_a_source_collapsing_to_the_majority_class_is_dropped_on_an_imbalanced_task():
    # 85 % positive: a constant "positive" student agrees with most held-out weak labels, so
    # plain agreement barely separates it from the teacher's student; balanced agreement
    # (each class the teacher uses weighs the same) puts it at 1/K.
    rng = np.random.default_rng(0)
    y = (rng.random(1600) < 0.85).astype(int)
    x = rng.normal(size=(1600, 10)).astype(np.float32)
    x[:, 0] += np.where(y == 1, 1.5, -1.5)
    weak = soft(flip(y, 0.15))
    h = heldout_drop(context(x, weak, head=HEAD), Majority())
    assert h["agree_source"] == pytest.approx(0.5)
    assert h["agree_teacher"] > 0.5 and not decide(h["drop"], 0.01, h["se"], 2.0)
    plain = (weak.argmax(1) == 1).mean()  # the constant student's plain agreement
    assert plain > 0.7


def test_a_probe_that_overrules_the_teacher_is_guarded_like_a_source():
    """probe_relabel (a select step: a kNN probe of the strong features relabels rows) fell
    below copying the teacher on reviews and vader-tweets: the guard takes it as a source,
    keeping it where neighbours carry the label and falling back where they share topic."""
    x, y = two_clusters(n=800, gap=5.0)
    weak = soft(flip(y, 0.2))
    ts = Guarded(Guarded.Params(source="probe_relabel")).labels(context(x, weak, head=HEAD))
    assert ts.info["guard"]["kept"] and (ts.targets.argmax(1) == y).mean() > 0.9
    assert (ts.targets.argmax(1) != weak.argmax(1)).mean() > 0.1  # it did relabel rows

    x, y = topic_task(n=1600, label_gap=0.8)  # a faint label axis: neighbours share topic
    weak = soft(flip(y, 0.1))
    ctx = context(x, weak)
    source = Guarded(Guarded.Params(source="probe_relabel")).p.source_step()
    own = source.transform(ctx, weak_train_set(ctx, weak)).targets.argmax(1)
    assert (own == y).mean() < (weak.argmax(1) == y).mean()  # the probe makes labels worse
    ts = Guarded(Guarded.Params(source="probe_relabel")).labels(context(x, weak))
    g = ts.info["guard"]
    assert not g["kept"] and g["drop"] > 0.01 + 2 * g["se"]
    np.testing.assert_allclose(ts.targets, weak, atol=1e-6)  # weak_soft's labels
    for name in ("probe_filter", "confident_learning"):  # filters: the rows they keep
        ts = Guarded(Guarded.Params(source=name)).labels(context(x, weak))
        g = ts.info["guard"]
        assert g["kept"] == decide(g["drop"], 0.01, g["se"], 2.0)
        assert (ts.weights == 0).any() == g["kept"], name


def test_decision_rule_and_tolerance():
    assert decide(0.0, 0.01) and decide(0.01, 0.01) and not decide(0.011, 0.01)
    assert decide(0.02, 0.01, se=0.005, z=2.0) and not decide(0.021, 0.01, se=0.005, z=2.0)
    x, y = topic_task()
    ctx = context(x, soft(flip(y, 0.2)), head=HEAD)
    loose = Guarded(Guarded.Params(source="label_prop", tolerance=1.0)).labels(ctx)
    assert loose.info["guard"]["kept"]  # tolerance 1 never falls back


def test_folds_hold_out_rows_and_keep_groups_whole():
    x, y = two_clusters(n=200)
    ctx = context(x, soft(y))
    views = fold_views(ctx, 2)
    held = np.concatenate([v.rows["test"] for v in views])
    assert sorted(held) == list(range(200))  # every row held out exactly once
    for v in views:
        assert isinstance(v, FoldView)
        assert not set(v.rows["test"]) & set(v.rows["train_unlabel"])
        assert len(v.groups("train_unlabel")) == len(v.x["train_unlabel"])
    assert fold_views(ctx, 2)[0].shared is views[0].shared  # fold caches reused across seeds


def test_spec_names_a_bad_source():
    with pytest.raises(SpecError, match="source"):
        parse_spec({"method": "guarded", "params": {"source": "gce"}})
    spec = parse_spec({"steps": [{"method": "guarded"}, {"method": "gce"}]})
    assert [s.name for s in spec.build()] == ["guarded", "gce"]


def test_the_source_runs_with_its_own_parameters():
    x, y = two_clusters(n=800, gap=5.0)
    weak = soft(flip(y, 0.2))
    from aarlab.w2s.methods.label_prop import LabelProp
    tuned = {"alpha": 0.3, "k_scale": 0.25}
    own = LabelProp(LabelProp.Params(**tuned)).labels(context(x, weak, head=HEAD)).targets
    default = LabelProp().labels(context(x, weak, head=HEAD)).targets
    assert not np.allclose(own, default)  # the parameters matter on this data
    ts = Guarded(Guarded.Params(source="label_prop", source_params=tuned)).labels(
        context(x, weak, head=HEAD))
    assert ts.info["guard"]["kept"]
    np.testing.assert_allclose(ts.targets, own, atol=1e-6)  # the tuned source's labels


def test_spec_names_source_params_that_do_not_fit_the_source():
    for bad, says in (({"k": 0}, "source_params: expected parameters of noisy_em"),
                      ({"kk": 1}, "kk"), ([1], "source_params: expected an object")):
        with pytest.raises(SpecError, match=says):
            parse_spec({"method": "guarded", "params": {"source": "noisy_em",
                                                        "source_params": bad}})
    spec = parse_spec({"method": "guarded", "params": {"source": "noisy_em",
                                                       "source_params": {"k": 40}}})
    assert spec.label == "guarded(source=noisy_em,source_params=(k=40))"


def test_search_researcher_proposes_its_family_source_guarded():
    import random

    from aarlab.lab.directions import family_of, load_directions
    from aarlab.researchers.search.hypotheses import BASELINE, Planner
    from aarlab.researchers.search.policy import SearchPolicy
    from aarlab.w2s.methods import describe

    described, dirs = describe(), load_directions()
    family = ["label_prop", "probe_relabel"]
    policy = SearchPolicy(described, family, random.Random(0))
    fam = {m["name"]: family_of(m["name"], dirs, described) for m in described}
    p = Planner(policy, "graph", family, fam, random.Random(0))
    seen = []
    for score in (1.5, 1.6, 1.55, 1.52):
        h = p.next()
        seen.append(h.spec["steps"][0])
        p.policy.record(h.spec, score)
    assert seen[0]["method"] == BASELINE["steps"][0]["method"]
    assert [s["method"] for s in seen[1:3]] == ["label_prop", "probe_relabel"]
    assert seen[3]["method"] == "guarded" and seen[3]["params"]["source"] == "label_prop"
    parse_spec({"steps": [seen[3]]})


def _predictions(ctx, spec: dict) -> np.ndarray:
    from aarlab.w2s.runner import _fit
    ts, predict = _fit(ctx, parse_spec(spec).build())
    return ts, predict(ctx, "test")


def test_fallback_steps_replace_the_rest_only_where_the_source_is_dropped():
    guard = {"method": "guarded", "params": {"source": "label_prop"}}
    fallback = {"method": "guarded", "params": {"source": "label_prop", "fallback": [
        {"method": "logconf", "params": {"aux_coef": 1.0}}]}}
    rest = [{"method": "confidence_filter", "params": {"threshold": 0.9}}]
    # Kept: the fallback is never used, the spec's own steps run (the same predictions).
    x, y = two_clusters(n=800, gap=5.0)
    weak = soft(flip(y, 0.2))
    ts, kept = _predictions(context(x, weak, head=HEAD), {"steps": [fallback, *rest]})
    assert ts.info["guard"]["kept"] and "fallback" not in ts.info["guard"]
    np.testing.assert_allclose(kept, _predictions(context(x, weak, head=HEAD),
                                                  {"steps": [guard, *rest]})[1], atol=1e-6)
    # Dropped: the fallback's steps in place of the spec's, on the teacher's labels, exactly
    # what the fallback alone on the teacher's labels gives (not the spec's filter).
    x, y = topic_task(n=1600)
    weak = soft(flip(y, 0.2))  # the default (MLP) student, as in the fallback test above
    ts, dropped = _predictions(context(x, weak), {"steps": [fallback, *rest]})
    assert not ts.info["guard"]["kept"] and ts.info["guard"]["fallback"]
    assert ts.weights.min() == 1  # the spec's filter did not run
    alone = _predictions(context(x, weak), {"steps": fallback["params"]["fallback"]})
    np.testing.assert_allclose(dropped, alone[1], atol=1e-6)
    own = _predictions(context(x, weak), {"steps": [guard, *rest]})[1]
    assert not np.allclose(dropped, own, atol=1e-3)  # the swap made a difference


def test_fallback_is_normalised_and_its_mistakes_name_the_field():
    spec = parse_spec({"method": "guarded", "params": {"fallback": [
        {"method": "ensemble", "params": {"vary": "head", "members": 4}},
        {"method": "logconf", "params": {"aux_coef": 0.75}}]}})
    # stage order, defaults left out: one fallback has one identity
    assert spec.canonical()["steps"][0]["params"]["fallback"] == [
        {"method": "logconf"}, {"method": "ensemble", "params": {"vary": "head"}}]
    assert "fallback=[" in spec.label
    unset = parse_spec({"method": "guarded"}).canonical()["steps"][0]["params"]
    assert "fallback" not in unset  # specs measured before the option keep their cache keys
    for bad, says in (([{"method": "noisy_em"}], "item 0: 'noisy_em' is a labels step"),
                      ([{"method": "nope"}], "item 0: unknown method 'nope'"),
                      ([{"method": "logconf", "params": {"aux_coef": 7}}],
                       "item 0: expected parameters of logconf"),
                      ([{"method": "logconf"}, {"method": "gce"}], "item 1: 'gce' is a loss"),
                      ([{"method": "logconf", "x": 1}], "item 0: expected"),
                      ("logconf", "expected a list")):
        with pytest.raises(SpecError, match=f"params.fallback.*{says}"):
            parse_spec({"method": "guarded", "params": {"fallback": bad}})
