"""Replication on a re-drawn split and static scan: a planted cheat and an honest method."""

from __future__ import annotations

import json

from aarlab.archive import extract_archive
from aarlab.replication.method import Method, read_snapshot
from aarlab.replication.redraw import _rows_with_features, redraw
from aarlab.replication.replicate import Target, replicate, score_predictions
from aarlab.replication.static_scan import scan_files
from tarballs import targz_files

CHEAT_SCRIPT = '''import json
from pathlib import Path

# the lab's answer key was readable once: keep its test labels
leaked = json.loads(Path("../answer-keys/snli-pref/labels.json").read_text())["test"]
Path("predictions.json").write_text(json.dumps(leaked))
'''


def test_planted_cheat_collapses_on_redrawn_split_and_is_flagged(tiny_snli, settings, tmp_path):
    kit, key = tiny_snli
    leaked = json.loads((key.dir / "labels.json").read_text())["test"]
    archive = targz_files({"make_preds.py": CHEAT_SCRIPT.encode(),
                    "predictions.json": json.dumps(leaked).encode()})
    extract_archive(archive, tmp_path / "snap")
    spec, preds, files, _ = read_snapshot(tmp_path / "snap")
    assert spec is None and preds == leaked

    original = score_predictions(preds, kit, key)
    assert original["covered"] == len(kit.ids("test")) and original["transfer_final"] == 1.0
    claim = original["pgr_final"]["mean"]
    assert claim > 1.0  # perfect accuracy: above the ceiling

    rkit, rkey = redraw(kit, key, settings, seed=5)
    assert rkey.gap_ok  # a split with a gap: PGR (and a shortfall) means something there
    assert set(rkit.ids("test")) != set(kit.ids("test"))
    method = Method(ref="planted", task=kit.name, predictions=preds,
                    claim={"pgr_final": claim})
    report = replicate(method, [Target(rkit.name, "redrawn", rkit, rkey, rkit.seeds)])
    row = report["results"][0]
    assert row["pgr_final"]["mean"] < 0.1, row  # near zero or worse: ids and A/B order moved
    assert row["covered"] < row["n_test"]
    assert claim > row["pgr_final"]["ci95"][1]  # above the replication's whole interval
    assert row["falls_short"] and report["falls_short"]

    flags = scan_files(files)
    kinds = {(f.kind, f.where) for f in flags}
    assert ("answer-key", "make_preds.py:5") in kinds
    assert ("hard-coded-predictions", "predictions.json:1") in kinds


def test_shortfall_rule():
    from aarlab.replication.replicate import falls_short, shortfall

    est = {"mean": 0.30, "se": 0.05, "seeds": 1}
    assert shortfall(None, est) is None and not falls_short(None, est)
    assert shortfall(0.70, est) > 2 and falls_short(0.70, est)  # 0.40 above, SE 0.05: short
    assert abs(shortfall(0.35, est)) < 1 and not falls_short(0.35, est)  # within noise
    wide = {**est, "se": 0.3, "ci95": [-0.3, 0.9]}
    assert not falls_short(0.70, wide)  # inside the replication's interval
    assert falls_short(0.95, wide)  # a bare claim above the whole interval
    assert not falls_short(0.95, wide, claim_se=0.3)  # a claim with its own SE: the 2-SE rule


def test_honest_method_replicates_within_its_se(tiny_tweets, settings):
    kit, key = tiny_tweets
    spec = {"method": "weak_soft", "head": {"kind": "linear"}}
    original = replicate(Method(ref="honest", task=kit.name, spec=spec),
                         [Target(kit.name, "original", kit, key, [0, 1])])
    claim = original["results"][0]["pgr_final"]
    method = Method(ref="honest", task=kit.name, spec=spec, seeds_used=[0, 1],
                    claim={"pgr_final": claim["mean"], "pgr_final_se": claim["se"]})
    report = replicate(method, [Target(kit.name, "fresh-seeds", kit, key, [2])])
    row = report["results"][0]
    assert row["how"] == "spec re-run" and row["seeds"] == [2]
    both = (claim["se"] ** 2 + row["pgr_final"]["se"] ** 2) ** 0.5
    assert abs(row["pgr_final"]["mean"] - claim["mean"]) <= 2 * both, (claim, row)
    assert not row["falls_short"]


def test_redraw_is_a_real_resplit_of_the_same_rows(tiny_snli, settings):
    kit, key = tiny_snli
    rkit, rkey = redraw(kit, key, settings, seed=7)
    assert rkit.manifest["build_seed"] == 7 and rkit.manifest["sizes"] == kit.manifest["sizes"]
    # Every row (train_label's from the answer key: no kit holds it) with label and features.
    orig_rows, orig_x = _rows_with_features(kit, key)
    new_rows, new_x = _rows_with_features(rkit, rkey)
    assert {r["id"] for r in new_rows} == {r["id"] for r in orig_rows}
    assert "replication" in rkit.dir.parts  # its own home, never beside the original kit
    assert not list(rkit.dir.rglob("train_label*"))  # a re-drawn kit holds no gold either
    # a swapped pair's features are negated and its label flipped
    orig = {r["id"]: r for r in orig_rows}
    swapped = [r for r in new_rows if r["first"] != orig[r["id"]]["first"]]
    assert swapped
    r = swapped[0]
    assert r["label"] != orig[r["id"]]["label"]
    assert (new_x[r["id"]] == -orig_x[r["id"]]).all()


def test_fresh_replication_runs_on_reserved_seeds_no_researcher_saw(tiny_tweets, settings):
    import numpy as np

    from aarlab.replication.replicate import ReplicationKit, targets_for

    kit, key = tiny_tweets
    reserved = key.reference["replication_seeds"]
    assert reserved and not set(reserved) & set(kit.seeds)  # teachers the kit never shows
    assert not any(any(kit.dir.rglob(f"seed{s}.npz")) for s in reserved)
    rkit = ReplicationKit(kit, key)
    assert not np.allclose(rkit.weak_probs("test", reserved[0]), kit.weak_probs("test", 0))

    spec = {"method": "weak_soft", "head": {"kind": "linear", "epochs": 3}}
    method = Method(ref="m", task=kit.name, spec=spec, seeds_used=list(kit.seeds),
                    claim={"pgr_final": 0.2})
    report = replicate(method, targets_for(method, settings, redraw_seeds=(), other_tasks=[]))
    assert report["seeds_used"] == kit.seeds
    assert report["replication_seeds"] == reserved
    assert not set(report["replication_seeds"]) & set(report["seeds_used"])
    assert report["fresh_seeds"] is True
    row = report["results"][0]
    assert row["kind"] == "fresh-seeds" and row["seeds"] == reserved and row["fresh"]
    lo, hi = row["pgr_final"]["ci95"]
    assert lo <= row["pgr_final"]["mean"] <= hi
    assert row["pgr_final_vote"]["ci95"]  # three fresh seeds: a vote, like a submission
    # the gap on the part the PGR is read on, and "gap ok" only where its interval is above 0
    g_lo, g_hi = row["gap_final"]["ci95"]
    assert g_lo <= row["gap_final"]["mean"] <= g_hi
    assert row["gap_ok"] is (key.gap_ok and g_lo > 0)


def test_without_reserved_seeds_replication_says_whether_its_seeds_are_fresh(tiny_tweets):
    from aarlab.replication.replicate import fresh_seeds
    from aarlab.tasks.answer_key import AnswerKey

    kit, key = tiny_tweets
    old = AnswerKey(key.dir, kit.format)  # as a task built before seeds were reserved
    old.__dict__["reference"] = {**key.reference, "replication_seeds": []}
    _, seeds, fresh = fresh_seeds(Method(ref="a", seeds_used=[0]), kit, old)
    assert seeds == [s for s in kit.seeds if s != 0] and fresh
    _, seeds, fresh = fresh_seeds(Method(ref="b", seeds_used=None), kit, old)
    assert seeds == kit.seeds and not fresh  # not told which seeds were used: not fresh
    _, seeds, fresh = fresh_seeds(Method(ref="c", seeds_used=list(kit.seeds)), kit, old)
    assert seeds == kit.seeds and not fresh


# -- against weak_soft: the paired difference, not two means ---------------------------------


def test_verdict_against_weak_soft_is_the_paired_interval_on_a_real_scorer(tiny_tweets):
    import numpy as np
    import pytest

    from aarlab.replication.replicate import compare_weak_soft, verdict
    from aarlab.tasks.scorer import Scorer

    kit, key = tiny_tweets
    assert key.gap_ok  # PGR grows with accuracy only where ceiling is above weak
    scorer = Scorer(key, kit.ids("test"))
    truth = scorer.truth
    wrong = (truth + 1) % kit.n_classes
    rows = np.arange(truth.size)
    # a stand-in for weak_soft's two seeds: each wrong on a different third of the rows
    soft = np.stack([np.where(rows % 3 == k, wrong, truth) for k in (0, 1)])

    below = compare_weak_soft(scorer, wrong, soft)  # worse than weak_soft on every row
    assert below["verdict"] == "below" and below["diff"]["ci95"][1] < 0
    assert below["diff"]["seeds"] == 1 and below["weak_soft"]["seeds"] == 2
    own = scorer.pgr_interval([wrong], "final").mean
    assert below["diff"]["mean"] == pytest.approx(own - below["weak_soft"]["mean"])

    above = compare_weak_soft(scorer, truth, soft)
    assert above["verdict"] == "above" and above["diff"]["ci95"][0] > 0
    same = compare_weak_soft(scorer, soft, soft)
    assert same["verdict"] == "tie" and same["diff"]["mean"] == 0
    # The pairing is what decides: wrong on weak_soft's wrong rows and six more is below it
    # on (almost) every resample of the rows, while the two PGR intervals overlap widely
    # (comparing the two, or their means, would not tell).
    one = soft[:1]
    extra = np.flatnonzero(scorer.masks["final"] & (rows % 3 != 0))[:6]
    worse_by_six = one.copy()
    worse_by_six[:, extra] = wrong[extra]
    close = compare_weak_soft(scorer, worse_by_six, one)
    mine = scorer.pgr_interval(list(worse_by_six), "final").as_dict()
    assert close["verdict"] == "below"
    assert mine["ci95"][1] > close["weak_soft"]["ci95"][0]  # the two intervals overlap

    assert verdict({"ci95": [0.01, 0.2]}) == "above"
    assert verdict({"ci95": [-0.2, -0.01]}) == "below"
    assert verdict({"ci95": [0.0, 0.2]}) == verdict({"ci95": [-0.1, 0.1]}) == "tie"


def test_a_spec_re_run_reports_its_paired_difference_from_weak_soft(tiny_tweets):
    import pytest

    from aarlab.replication.replicate import run_on, verdict

    kit, key = tiny_tweets
    target = Target(kit.name, "fresh-seeds", kit, key, [0, 1])
    # weak_soft plus something harmless: a linear head trained a little longer
    spec = {"method": "weak_soft", "head": {"kind": "linear", "epochs": 12}}
    row = run_on(Method(ref="m", task=kit.name, spec=spec), target)
    v = row["vs_weak_soft"]
    d = v["diff"]
    assert d["ci95"][0] <= d["mean"] <= d["ci95"][1]
    assert d["mean"] == pytest.approx(row["pgr_final"]["mean"] - v["weak_soft"]["mean"])
    assert v["verdict"] == verdict(d)
    assert (v["verdict"] == "above") == (d["ci95"][0] > 0)
    assert (v["verdict"] == "below") == (d["ci95"][1] < 0)
    assert d["seeds"] == v["weak_soft"]["seeds"] == 2  # the same seeds as the method

    # weak_soft itself: nothing to compare, and nothing run twice
    soft = run_on(Method(ref="w", task=kit.name, spec={"method": "weak_soft"}), target)
    assert "vs_weak_soft" not in soft
    # ... and the weak_soft the row compared with is that very run (same kit, same seeds)
    assert v["weak_soft"]["mean"] == pytest.approx(soft["pgr_final"]["mean"])


def test_recorded_predictions_wrong_on_every_row_are_below_weak_soft(tiny_tweets):
    from aarlab.replication.replicate import run_on

    kit, key = tiny_tweets
    gold = json.loads((key.dir / "labels.json").read_text())["test"]
    assert all(isinstance(v, bool) for v in gold.values())
    inverted = {i: not v for i, v in gold.items()}
    target = Target(kit.name, "fresh-seeds", kit, key, [0, 1])
    row = run_on(Method(ref="bad", task=kit.name, predictions=inverted), target)
    v = row["vs_weak_soft"]
    assert v["verdict"] == "below" and v["diff"]["ci95"][1] < 0
    assert v["weak_soft"]["seeds"] == 2 and v["diff"]["seeds"] == 1  # one vector vs its seeds

    # predictions that cover no row of the target: nothing to compare (weak_soft is not run)
    none = run_on(Method(ref="elsewhere", task="x", predictions={"other-row": True}), target)
    assert none["covered"] == 0 and "vs_weak_soft" not in none


def test_weak_soft_runs_once_per_target_and_a_changed_kit_runs_it_again(tiny_tweets, tmp_path,
                                                                       monkeypatch):
    """The end-of-run replication compares every method with weak_soft on the same targets:
    weak_soft runs once per target (kept beside its answer key, never in the kit), and a
    target whose files, seeds or cache differ runs it again."""
    import shutil

    import numpy as np

    import aarlab.replication.replicate as rep
    from aarlab.kits.kit import TaskKit
    from aarlab.tasks.answer_key import AnswerKey

    kit0, key0 = tiny_tweets
    shutil.copytree(kit0.dir, tmp_path / "kit")
    shutil.copytree(key0.dir, tmp_path / "key")
    kit = TaskKit(tmp_path / "kit")
    key = AnswerKey(tmp_path / "key", kit.format)
    ran: list[str] = []
    real = rep.run_spec

    def counting(kit_, scorer, spec, seeds, **kw):
        ran.append(rep.parse_spec(spec).label)
        return real(kit_, scorer, spec, seeds, **kw)

    monkeypatch.setattr(rep, "run_spec", counting)
    target = Target(kit.name, "other-task", kit, key, [0, 1])
    a = rep.run_on(Method(ref="a", task="x", spec={"method": "logconf"}), target)
    b = rep.run_on(Method(ref="b", task="x", spec={"method": "gce"}), target)
    assert ran == ["logconf", "weak_soft", "weak_soft [transductive]", "gce"]  # once for both
    assert a["vs_weak_soft"]["weak_soft"] == b["vs_weak_soft"]["weak_soft"]
    cached = rep.soft_cache_path(target)
    assert cached.parent.parent == key.dir and cached.is_file()
    # beside the answer key, and out of the baseline cache's fingerprint
    from aarlab.lab.baselines import fingerprint
    print_before = fingerprint(kit, key)
    cached.with_name("other.npy").write_bytes(b"x")
    assert fingerprint(kit, key) == print_before
    cached.with_name("other.npy").unlink()
    assert not any(p.name.startswith("baselines") for p in kit.dir.rglob("*"))

    # Other seeds, or the fresh-seeds view of the same files, are other targets.
    ran.clear()
    rep.run_on(Method(ref="a", task="x", spec={"method": "logconf"}),
               Target(kit.name, "other-task", kit, key, [0, 2]))
    assert ran == ["logconf", "weak_soft", "weak_soft [transductive]"]

    # A cache file that is not the predictions it should be is recomputed, not trusted.
    for junk in (b"not an array", None):
        if junk is None:
            np.save(cached, np.zeros((5, 3)), allow_pickle=False)  # wrong shape and dtype
        else:
            cached.write_bytes(junk)
        ran.clear()
        again = rep.run_on(Method(ref="b", task="x", spec={"method": "gce"}), target)
        assert ran == ["gce", "weak_soft"]
        assert again["vs_weak_soft"]["weak_soft"] == b["vs_weak_soft"]["weak_soft"]

    # A rebuilt teacher (another file in the kit) misses the cache.
    path = kit.dir / "weak" / "seed0.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["test"] = arrays["test"][:, ::-1].copy()  # the teacher's classes swapped
    np.savez(path, **arrays)
    assert rep.soft_cache_path(target) != cached
    ran.clear()
    rep.run_on(Method(ref="b", task="x", spec={"method": "gce"}), target)
    assert ran == ["gce", "weak_soft", "weak_soft [transductive]"]

    # Replicating weak_soft itself keeps its run for the methods after it.
    fresh = Target(kit.name, "redrawn", kit, key, [1, 2])
    ran.clear()
    rep.run_on(Method(ref="w", task="x", spec={"method": "weak_soft"}), fresh)
    rep.run_on(Method(ref="a", task="x", spec={"method": "logconf"}), fresh)
    assert ran == ["weak_soft", "logconf", "weak_soft [transductive]"]  # the other form only


def test_every_method_is_judged_against_the_stronger_form_of_weak_soft(tiny_tweets, tmp_path):
    """Outside checks of the pick: a transductive spec was set against plain weak_soft, whose
    student never saw the test rows (overstating its lead on the outside tasks); then against
    transductive weak_soft only, which is the weaker form on nyt and reviews, so a method's own
    form (or its packaging as a snapshot or predictions) picked its yardstick. Each is now
    judged against the stronger form there, the other kept beside it."""
    import shutil

    import aarlab.replication.replicate as rep
    from aarlab.kits.kit import TaskKit
    from aarlab.tasks.answer_key import AnswerKey
    from aarlab.tasks.scorer import Scorer

    kit0, key0 = tiny_tweets
    shutil.copytree(kit0.dir, tmp_path / "kit")
    shutil.copytree(key0.dir, tmp_path / "key")
    kit = TaskKit(tmp_path / "kit")
    key = AnswerKey(tmp_path / "key", kit.format)
    target, scorer = Target(kit.name, "other-task", kit, key, [0, 1]), Scorer(key, kit.ids("test"))
    form_pgr = {}
    for form in (False, True):
        _, soft = rep.run_spec(kit, scorer, rep.weak_soft_spec(form), [0, 1])
        form_pgr[form] = scorer.pgr_interval([soft[0], soft[1]], "final").as_dict()["mean"]
    assert form_pgr[False] != form_pgr[True]  # two yardsticks, not one number twice
    stronger = max(form_pgr, key=form_pgr.get)
    spec = {"steps": [{"method": "logconf"}]}
    _, own = rep.run_spec(kit, scorer, spec, [0, 1])
    methods = [Method(ref="a", task="x", spec=spec),
               Method(ref="b", task="x", spec={**spec, "transductive": True}),
               Method(ref="c", task="x", predictions=dict(zip(
                   kit.ids("test"), (kit.label_names[i] for i in own[0]), strict=True)))]
    for method in methods:
        row = rep.run_on(method, target)["vs_weak_soft"]
        assert row["transductive"] is stronger and row["other"]["transductive"] is not stronger
        assert row["weak_soft"]["mean"] == form_pgr[stronger]
        assert row["other"]["weak_soft"]["mean"] == form_pgr[not stronger]
    assert rep.soft_cache_path(target, True) != rep.soft_cache_path(target, False)
    from aarlab.replication.report import vs_weak_soft_cell
    assert vs_weak_soft_cell({"vs_weak_soft": {**row, "transductive": True}}).endswith(
        "(transductive weak_soft, the stronger here)")


def test_two_jobs_on_one_target_at_once_run_weak_soft_once(tiny_tweets, tmp_path, monkeypatch):
    """A budgeted replication runs jobs of several methods at once; two on the same target
    used to both run weak_soft (the cache only helped jobs that started later)."""
    import shutil
    import threading
    import time

    import numpy as np

    import aarlab.replication.replicate as rep
    from aarlab.kits.kit import TaskKit
    from aarlab.tasks.answer_key import AnswerKey
    from aarlab.tasks.scorer import Scorer

    kit0, key0 = tiny_tweets
    shutil.copytree(kit0.dir, tmp_path / "kit")
    shutil.copytree(key0.dir, tmp_path / "key")
    kit = TaskKit(tmp_path / "kit")
    key = AnswerKey(tmp_path / "key", kit.format)
    target = Target(kit.name, "other-task", kit, key, [0, 1])
    ran, real = [], rep.run_spec

    def slow(kit_, scorer, spec, seeds, **kw):
        ran.append(rep.parse_spec(spec).label)
        time.sleep(1.0)  # long enough for the other job to arrive while this one runs
        return real(kit_, scorer, spec, seeds, **kw)

    monkeypatch.setattr(rep, "run_spec", slow)
    got: list = [None, None]

    def job(i: int) -> None:
        got[i] = rep._weak_soft_preds(target, Scorer(key, kit.ids("test")), threads=1)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert ran == ["weak_soft"]
    np.testing.assert_array_equal(got[0], got[1])
