"""The pure release, probe and budget rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from aarlab.scoring.budgets import budget_state
from aarlab.scoring.ladder import PairedLadder
from aarlab.scoring.probes import ProbeIndex, pack, threshold, unpack
from aarlab.scoring.tables import Submission
from aarlab.store.db import Store
from aarlab.store.identity import add_researcher


def test_paired_ladder_releases_a_gain_above_safety_ses_and_the_step():
    lad = PairedLadder(n=100, weak_acc=0.8, gap=0.1, safety=3.0, min_step_se=0.5)
    assert lad.step == pytest.approx(0.5 * 0.04) and lad.grid == pytest.approx(0.2)
    best = np.zeros(100, int)
    # all-gain flips of m rows pass only when m > safety**2 * (1 - m/n): 8 do not, 9 do
    for m, passes in ((8, False), (9, True)):
        new = best.copy()
        new[:m] = 1
        v = lad.compare(new, best)
        assert v.released is passes and v.diff == pytest.approx(m / 100)
    # 30 rows differ, 18 gained and 12 lost: +6 rows is about 1.1 SE, not released
    new, old = np.zeros(100, int), np.zeros(100, int)
    new[:18], old[18:30] = 1, 1
    assert not lad.compare(new, old).released
    assert not lad.compare(best, best).released  # identical on feedback: se 0, never released
    assert lad.round(0.4567) == 0.4
    with pytest.raises(ValueError, match="expected 100 feedback rows"):
        lad.compare(np.zeros(99), np.zeros(99))
    with pytest.raises(ValueError):
        PairedLadder(n=100, weak_acc=0.8, gap=0.0)


def test_coin_flip_rows_pass_at_about_p_z_above_the_safety_factor():
    """The analysis behind the safety factor: with coin-flip rows the pass rate is about
    P(Z > k) whatever the number of flipped rows, so k = 1 lets 1,000 queries climb."""
    rng = np.random.default_rng(0)
    n, trials = 400, 4000
    for k, expected in ((1.0, 0.16), (2.0, 0.023)):
        lad = PairedLadder(n=n, weak_acc=0.8, gap=0.1, safety=k, min_step_se=0.01)
        for m in (40, 120):
            hits = 0
            for _ in range(trials):
                best = np.zeros(n, int)
                new = best.copy()
                gained = rng.random(m) < 0.5
                new[:m][gained], best[:m][~gained] = 1, 1
                hits += lad.compare(new, best).released
            assert hits / trials == pytest.approx(expected, abs=0.025), (k, m)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 160, 10_000])
def test_pack_roundtrip_and_distances_match_brute_force(n):
    rng = np.random.default_rng(n)
    vecs = rng.integers(0, 2, (50, n))
    idx = ProbeIndex(n)
    for i, v in enumerate(vecs):
        assert np.array_equal(unpack(pack(v), n), v)
        idx.add(100 + i, pack(v))
    q = vecs[17].copy()
    q[: min(3, n)] ^= 1
    m = idx.nearest(pack(q))
    brute = (vecs != q).sum(axis=1)
    assert m.distance == brute.min() and m.submission_id == 100 + int(brute.argmin())
    assert idx.size == 50


def test_probe_index_rejects_a_vector_of_the_wrong_length():
    idx = ProbeIndex(160)
    with pytest.raises(ValueError, match="expected 3"):
        idx.add(1, pack(np.zeros(300, int)))


def test_threshold_is_rows_or_fraction_whichever_is_larger():
    assert threshold(160, 10, 0.01) == 10
    assert threshold(10_000, 10, 0.01) == 100
    assert threshold(10_000, 10, 0.0) == 10


def test_budget_counts_a_sliding_hour_and_a_total(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'b.db'}")
    store.create_all()
    now = datetime.now(UTC)
    with store.session() as s:
        r, _ = add_researcher(s, "alice")
        other, _ = add_researcher(s, "bob")
        for minutes, who in [(90, r), (50, r), (20, r), (10, other)]:
            s.add(Submission(researcher_id=who.id, task="t", created_at=now - timedelta(
                minutes=minutes), n_rows=1, predictions=b"\0" * 8, acc_test=0, acc_feedback=0,
                acc_final=0, pgr_test=0, pgr_feedback=0, pgr_final=0))
    with store.session() as s:
        b = budget_state(s, r.id, per_hour=2, total=10, now=now)
        assert (b.used_hour, b.used_total, b.hour_remaining, b.total_remaining) == (2, 3, 0, 7)
        assert b.exhausted
        # the submission 50 minutes ago leaves the window in 10 minutes
        assert b.retry_after == pytest.approx(600, abs=2)
        assert not budget_state(s, r.id, per_hour=3, total=10, now=now).exhausted
        assert budget_state(s, r.id, per_hour=60, total=3, now=now).exhausted


def test_group_commit_hands_each_job_its_own_result_or_error():
    import threading

    from aarlab.scoring.writer import GroupCommitter

    batches = []

    def process(jobs):
        batches.append(len(jobs))
        for j in jobs:
            if j.payload < 0:
                j.error = ValueError(f"negative {j.payload}")
            else:
                j.result = j.payload * 2

    gc = GroupCommitter(process)
    out, errors = {}, {}

    def call(x):
        try:
            out[x] = gc.run(x)
        except ValueError as e:
            errors[x] = str(e)

    threads = [threading.Thread(target=call, args=(x,)) for x in range(-5, 40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == {x: 2 * x for x in range(40)}
    assert errors == {x: f"negative {x}" for x in range(-5, 0)}
    assert sum(batches) == 45


def test_group_commit_failure_reaches_every_job_of_the_batch():
    from aarlab.scoring.writer import GroupCommitter

    def process(jobs):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        GroupCommitter(process).run(1)
