"""ResearcherEnv: what the lab writes is what the researcher reads; bad values name the variable."""

from __future__ import annotations

import pytest

from aarlab.errors import AarlabError
from aarlab.lab.researcher_env import UNLIMITED, ResearcherEnv


def test_round_trip_keeps_every_field():
    told = ResearcherEnv(token="t0k", task="snli-pref", deadline=1234.5, seed=7,
                         direction="graph", direction_methods=("label_prop", "noisy_em"),
                         max_experiments=9, max_submissions=0, kit="/kit",
                         socket="/run/aarlab.sock", workspace="/workspace",
                         suite={"tweets": "/suite/tweets"})
    assert ResearcherEnv.from_env(told.to_env()) == told


def test_unlimited_budgets_are_not_written_and_read_back_as_unlimited():
    env = ResearcherEnv(token="t", task="x", deadline=1.0).to_env()
    assert "AARLAB_MAX_EXPERIMENTS" not in env and "AARLAB_SUITE" not in env
    back = ResearcherEnv.from_env(env)
    assert back.max_experiments == back.max_submissions == UNLIMITED and back.suite == {}


@pytest.mark.parametrize(("change", "field"), [
    ({"AARLAB_TOKEN": ""}, "AARLAB_TOKEN"),
    ({"AARLAB_DEADLINE": None}, "AARLAB_DEADLINE"),
    ({"AARLAB_DEADLINE": "soon"}, "AARLAB_DEADLINE"),
    ({"AARLAB_SEED": "one"}, "AARLAB_SEED"),
    ({"AARLAB_SUITE": "[1, 2]"}, "AARLAB_SUITE"),
    ({"AARLAB_SUITE": '{"tweets": 3}'}, "AARLAB_SUITE"),
    ({"AARLAB_SUITE": "{not json"}, "AARLAB_SUITE"),
])
def test_a_missing_or_malformed_variable_is_named(change, field):
    env = ResearcherEnv(token="t", task="x", deadline=1.0).to_env()
    for k, v in change.items():
        if v is None:
            env.pop(k)
        else:
            env[k] = v
    with pytest.raises(AarlabError) as e:
        ResearcherEnv.from_env(env)
    assert e.value.message.startswith(field)
