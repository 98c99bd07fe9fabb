"""The search researcher's policy proposes new, valid specs within the library's ranges."""

from __future__ import annotations

import random

from aarlab.errors import SpecError
from aarlab.researchers.search.notebook import Notebook
from aarlab.researchers.search.policy import SearchPolicy, key
from aarlab.w2s.methods import describe
from aarlab.w2s.spec import parse_spec


def _policy(seed=0, direction=("confidence_filter", "logconf")):
    return SearchPolicy(describe(), list(direction), random.Random(seed))


def test_proposals_are_new_and_mostly_valid():
    policy = _policy()
    valid = 0
    for i in range(200):
        spec, why = policy.propose()
        assert key(spec) not in policy.tried, "proposed a spec it already tried"
        try:
            parse_spec(spec)
            valid += 1
            policy.record(spec, score=random.Random(i).random())
        except SpecError:
            policy.tried.add(key(spec))
    # Composition can pair two steps of one single-step stage; the library refuses those.
    assert valid >= 170


def test_parameters_stay_inside_the_library_ranges():
    policy = _policy(1)
    info = {m["name"]: {p["name"]: p for p in m["params"]} for m in describe()}
    for _ in range(300):
        spec = policy.mutate(policy.random_spec())
        for step in spec["steps"]:
            for name, value in step["params"].items():
                p = info[step["method"]][name]
                if "min" in p:
                    assert value >= p["min"], (step, name)
                if "max" in p:
                    assert value <= p["max"], (step, name)
                if p.get("type") == "choice":
                    assert value in p["choices"]


def test_direction_biases_where_it_starts():
    policy = _policy(2, direction=("noisy_em",))
    firsts = [policy.random_spec()["steps"][0]["method"] for _ in range(200)]
    assert firsts.count("noisy_em") > 120  # 80% bias, against 1 in 13 without it


def test_exploitation_mutates_the_best_known_spec():
    policy = _policy(3)
    best = {"steps": [{"method": "logconf", "params": {"aux_coef": 0.5}}]}
    policy.record(best, 0.9)
    policy.record({"steps": [{"method": "weak_hard", "params": {}}]}, 0.1)
    policy.explore0 = policy.explore_min = 0.0
    children = [policy.propose()[0] for _ in range(50)]
    near_best = [c for c in children if any(s["method"] == "logconf" for s in c["steps"])]
    assert len(near_best) > 25


def test_notebook_survives_a_line_cut_short(tmp_path):
    nb = Notebook(tmp_path / "notebook.jsonl")
    nb.append({"spec": {"steps": []}, "score": 0.5})
    with open(nb.path, "a") as f:
        f.write('{"spec": {"ste')  # a kill mid-write
    assert nb.entries() == [{"spec": {"steps": []}, "score": 0.5}]
