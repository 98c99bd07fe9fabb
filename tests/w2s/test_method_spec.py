"""A bad method spec names the field that is wrong; a good one runs with every default filled."""

from __future__ import annotations

import pytest

from aarlab.errors import SpecError
from aarlab.w2s.heads import HeadConfig
from aarlab.w2s.methods import METHODS, describe
from aarlab.w2s.spec import HeadSpec, parse_spec


@pytest.mark.parametrize(("spec", "message"), [
    ({"method": "nope"}, "method: unknown method 'nope'"),
    ({"steps": [{"method": "logconf"}, {"method": "nope"}]}, "steps[1].method: unknown method"),
    ({"method": "confidence_filter", "params": {"threshold": 1.5}},
     "params.threshold: must be in [0, 1], got 1.5"),
    ({"method": "probe_filter", "params": {"c": 0}}, "params.c: must be in (0, 100], got 0"),
    ({"method": "confidence_filter", "params": {"threshold": "high"}},
     "params.threshold: expected a number, got 'high'"),
    ({"method": "probe_filter", "params": {"k": 2.5}}, "params.k: expected an integer, got 2.5"),
    ({"method": "self_train", "params": {"hard": "yes"}}, "params.hard: expected true or false"),
    ({"method": "probe_filter", "params": {"probe": "svm"}},
     "params.probe: must be one of 'knn' or 'logistic', got 'svm'"),
    ({"method": "logconf", "params": {"alpha": 1}}, "params.alpha: unknown parameter of 'logconf'"),
    ({"steps": [{"method": "logconf", "params": {"aux_coef": -1}}]},
     "steps[0].params.aux_coef: must be in [0, 1], got -1"),
    ({"method": "weak_soft", "head": {"epochs": 0}}, "head.epochs: must be in [1, 200], got 0"),
    ({"method": "weak_soft", "head": {"kind": "cnn"}}, "head.kind: must be one of"),
    ({"method": "weak_soft", "head": {"lr": "fast"}}, "head.lr: expected a number"),
    ({"method": "weak_soft", "extra": 1}, "extra: unknown field"),
    ({"method": 3}, "method: expected a string, got 3"),
    ({"method": "weak_soft", "params": []}, "params: expected an object"),
    ({"steps": [{"method": "logconf", "parms": {}}]}, "steps[0].parms: unknown field (known: "
                                                       "method, params)"),
    ({"method": "logconf", "steps": [{"method": "product"}]},
     "steps[0].method: 'product' is a loss step, but 'logconf' already is one"),
    ({"steps": [{"method": "weak_hard"}, {"method": "noisy_em"}]}, "steps[1].method"),
    ({}, "method: required"),
    ("{not json", "spec: not valid JSON"),
    ([1, 2], "spec: expected an object"),
])
def test_bad_spec_names_the_field(spec, message):
    with pytest.raises(SpecError) as e:
        parse_spec(spec)
    assert message in e.value.message


def test_bool_is_not_a_number_and_int_is_a_float():
    with pytest.raises(SpecError, match="params.threshold: expected a number, got True"):
        parse_spec({"method": "confidence_filter", "params": {"threshold": True}})
    spec = parse_spec({"method": "confidence_filter", "params": {"threshold": 1}})
    assert spec.canonical()["steps"][0]["params"]["threshold"] == 1.0


def test_canonical_fills_defaults_and_orders_by_stage():
    spec = parse_spec({"steps": [{"method": "consistency"}, {"method": "logconf"},
                                 {"method": "confidence_filter", "params": {"threshold": 0.8}}],
                       "head": {"kind": "linear"}})
    canon = spec.canonical()
    assert [s["method"] for s in canon["steps"]] == ["confidence_filter", "logconf",
                                                     "consistency"]
    assert canon["steps"][0]["params"] == {"threshold": 0.8, "min_keep": 0.1, "balance": True}
    assert canon["head"] == {"kind": "linear"}
    assert spec.label == "consistency+logconf+confidence_filter(threshold=0.8) [head kind=linear]"
    assert parse_spec(spec) is spec  # an already-validated spec passes through


def test_head_spec_overrides_only_given_fields():
    base = {"kind": "mlp", "hidden": 64, "epochs": 7, "batch_size": 32, "lr": 0.01,
            "weight_decay": 0.0, "dropout": 0.0}
    cfg = HeadSpec(epochs=3).config(base)
    assert cfg == HeadConfig(**{**base, "epochs": 3})


def test_every_parameter_is_described_with_a_range_or_choices():
    listed = describe()
    assert {m["name"] for m in listed} == set(METHODS)
    assert {"weak_hard", "weak_soft", "confidence_filter", "confidence_weight", "logconf",
            "product", "window", "strong_prior", "probe_relabel", "probe_filter",
            "self_train", "noisy_em", "consistency"} <= set(METHODS)
    for m in listed:
        assert m["doc"] and m["stage"] and m["cost"], m["name"]
        for p in m["params"]:
            assert p["doc"], (m["name"], p["name"])
            if p["type"] in ("int", "float"):
                assert "min" in p and "max" in p, (m["name"], p["name"])
                assert p["min"] <= p["default"] <= p["max"]
            elif p["type"] == "choice":
                assert p["default"] in p["choices"]
            elif p["type"] == "mapping":  # another step's parameters: guarded's source_params
                assert (m["name"], p["name"]) == ("guarded", "source_params") and p["default"] == {}
            elif p["type"] == "steps":  # steps in place of the spec's: guarded's fallback
                assert (m["name"], p["name"]) == ("guarded", "fallback") and p["default"] is None
            else:
                assert p["type"] == "bool", (m["name"], p["name"])
            # The listed default is itself a valid spec value.
            parse_spec({"method": m["name"], "params": {p["name"]: p["default"]}})
