"""Cached baseline rows are keyed by their spec with every default filled in, not by its label:
changing a method's default re-runs exactly that method, an unchanged library re-runs nothing,
and rows cached before the key existed (the 25-minute answer-key caches) are still reused."""

from __future__ import annotations

import json

import pytest
from pydantic import Field, create_model

from aarlab.lab import baselines
from aarlab.w2s.methods import METHODS
from aarlab.w2s.spec import parse_spec

FAST = {"head": {"epochs": 3, "min_steps": 10}}
LIBRARY = ("weak_soft", "confidence_filter", "logconf")


@pytest.fixture
def ran(monkeypatch):
    """The small library as the defaults (parsed on each call, so today's defaults count),
    and the method of each spec actually run."""
    monkeypatch.setattr(baselines, "default_specs",
                        lambda: [parse_spec({"method": m, **FAST}) for m in LIBRARY])
    out: list[str] = []
    real = baselines.run_spec
    monkeypatch.setattr(baselines, "run_spec", lambda kit, sc, spec, *a, **kw:
                        out.append(_name(spec.canonical())) or real(kit, sc, spec, *a, **kw))
    return out


def _change_default(monkeypatch, method: str, field: str, value) -> None:
    """Give ``method`` a new default for ``field``: the label ``method`` stays the same."""
    cls = METHODS[method]
    old = cls.Params.model_fields[field]
    new = create_model(cls.Params.__name__, __base__=cls.Params, **{field: (
        old.annotation, Field(value, description=old.description))})
    monkeypatch.setattr(cls, "Params", new)


def _name(spec: dict) -> str:
    return spec["steps"][0]["method"]


def _threshold(rows: list[dict]) -> float:
    row = next(r for r in rows if _name(r["spec"]) == "confidence_filter")
    return row["spec"]["steps"][0]["params"]["threshold"]


def test_a_changed_default_reruns_exactly_that_method(task_copy, ran, monkeypatch):
    kit, key = task_copy
    first = baselines.default_rows(kit, key)
    assert ran == list(LIBRARY) and all("key" in r for r in first)
    ran.clear()
    assert baselines.default_rows(kit, key) == first and ran == []  # unchanged: nothing runs

    _change_default(monkeypatch, "confidence_filter", "threshold", 0.9)
    assert parse_spec({"method": "confidence_filter"}).label == "confidence_filter"
    rows = baselines.default_rows(kit, key)
    assert ran == ["confidence_filter"]  # the label is the same; the key is not
    assert _threshold(first) == 0.7 and _threshold(rows) == 0.9
    assert [r for r in rows if _name(r["spec"]) != "confidence_filter"] == \
        [r for r in first if _name(r["spec"]) != "confidence_filter"]
    ran.clear()
    recs, preds = baselines.candidates(kit, key, specs=baselines.default_specs())
    assert ran == [] and preds.shape[0] == 3  # the candidates reuse the new default run
    assert [c["key"] for c in recs] == [r["key"] for r in rows]

    _change_default(monkeypatch, "logconf", "aux_coef", 0.5)
    ran.clear()
    baselines.default_rows(kit, key)
    baselines.candidates(kit, key, specs=baselines.default_specs())
    assert ran == ["logconf"]


def test_rows_cached_before_the_key_are_reused_and_keyed_once(task_copy, ran, monkeypatch):
    kit, key = task_copy
    first = baselines.default_rows(kit, key)
    baselines.candidates(kit, key, specs=baselines.default_specs())
    path = key.dir / "baselines.json"
    record = json.loads(path.read_text())
    for part in ("defaults", "candidates"):  # the format the answer-key caches are in today
        for row in record[part]:
            del row["key"]
    # a parameter added since the row was run: trusted to be what the method did before
    del record["defaults"][1]["spec"]["steps"][0]["params"]["balance"]
    path.write_text(json.dumps(record))
    ran.clear()

    rows = baselines.default_rows(kit, key)
    recs, _ = baselines.candidates(kit, key, specs=baselines.default_specs())
    assert ran == [] and [r["key"] for r in rows] == [r["key"] for r in first]
    saved = json.loads(path.read_text())  # the trust is given once: the key is stored now
    assert all("key" in r for part in ("defaults", "candidates") for r in saved[part])

    # A legacy row still records the value it ran with: a changed default misses it.
    for part in ("defaults", "candidates"):
        for row in saved[part]:
            del row["key"]
    path.write_text(json.dumps(saved))
    _change_default(monkeypatch, "confidence_filter", "min_keep", 0.3)
    baselines.default_rows(kit, key)
    assert ran == ["confidence_filter"]


def test_a_keyed_row_must_match_exactly(task_copy, ran):
    kit, key = task_copy
    baselines.default_rows(kit, key)
    path = key.dir / "baselines.json"
    record = json.loads(path.read_text())
    record["defaults"][2]["key"] = record["defaults"][2]["key"].replace("logconf", "other")
    path.write_text(json.dumps(record))
    ran.clear()
    baselines.default_rows(kit, key)
    assert ran == ["logconf"]
