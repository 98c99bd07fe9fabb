"""``bench/method_table.py --loss-record`` regenerates the search researcher's ``LOSS_RECORD``
(its tie-break between losses) from cached baseline rows: a loss's gain over weak_soft, on the
tasks whose gap is clear, and nothing else."""

from __future__ import annotations

import bench_scripts
from aarlab.researchers.search.hypotheses import LOSS_RECORD
from aarlab.w2s.methods import describe


def _table():
    return bench_scripts.load("method_table")


def _row(method: str, pgr: float, voted: bool = True) -> dict:
    final = {"pgr_final": {"mean": pgr, "ci95": [pgr - 0.1, pgr + 0.1]}}
    return {"method": method, "vote": final} if voted else {"method": method, **final}


def test_gain_over_weak_soft_on_clear_gap_tasks_only():
    table = _table()
    data = {"a": [_row("weak_soft", 0.10), _row("logconf", 0.35), _row("gce", 0.05),
                  _row("noisy_em", 0.9)],
            "b": [_row("weak_soft", -0.2, voted=False), _row("logconf", 0.1, voted=False)],
            "noisy": [_row("weak_soft", 0.0), _row("logconf", 3.0)],
            "no-baseline": [_row("logconf", 0.5)]}
    got = table.loss_record(data, {"a", "b", "no-baseline"}, ["logconf", "gce", "product"])
    assert got == {"logconf": {"a": 0.25, "b": 0.3}, "gce": {"a": -0.05}}


def test_drift_names_differences_on_measured_tasks_only():
    table = _table()
    old = {"logconf": {"a": 0.25, "b": 0.3, "elsewhere": 0.9}, "gce": {"a": 0.0}}
    new = {"logconf": {"a": 0.2502, "b": 0.1}, "gce": {"a": 0.0}, "product": {"a": 0.1}}
    lines = table.record_drift(new, old, {"a", "b"})
    assert lines == ["logconf on b: measured 0.1, LOSS_RECORD 0.3",
                     "product on a: measured 0.1, LOSS_RECORD None"]
    assert table.record_drift(old, old, {"a", "b", "elsewhere"}) == []


def test_record_covers_every_library_loss():
    """A loss without a record would tie-break as 0 (weak_soft) whatever it did: each loss in
    the library has one, and the record names no method that is not a loss."""
    losses = {m["name"] for m in describe() if m["stage"] == "loss"}
    assert set(LOSS_RECORD) == losses
