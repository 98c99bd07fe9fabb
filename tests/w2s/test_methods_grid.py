"""The new families enter the tuned baseline's grid with a few meaningful variants each."""

from __future__ import annotations

from aarlab.lab.tuned import candidate_specs

NEW = ("label_prop", "paired_direction", "confident_learning", "forward", "gce", "bootstrap",
       "elr", "ensemble")


def test_each_new_family_adds_at_most_five_grid_specs():
    specs = candidate_specs()
    for name in NEW:
        mine = [s for s in specs if s.all_steps()[0][1].method == name and not s.transductive]
        assert 1 <= len(mine) <= 5, (name, [s.label for s in mine])
    # forward's anchors stay near the class core: a median anchor gives a singular channel.
    assert all(s.params.get("quantile", 1.0) >= 0.8
               for s in specs if s.method == "forward")
