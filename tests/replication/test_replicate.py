"""Replication on a re-drawn split and static scan: a planted cheat and an honest method."""

from __future__ import annotations

import json

from aarlab.forum.archive import extract_archive
from aarlab.replication.method import Method, read_snapshot
from aarlab.replication.redraw import redraw
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

    rkit, rkey = redraw(kit, key, settings, seed=7)
    assert set(rkit.ids("test")) != set(kit.ids("test"))
    method = Method(ref="planted", task=kit.name, predictions=preds,
                    claim={"pgr_final": claim})
    report = replicate(method, [Target(rkit.name, "redrawn", rkit, rkey, rkit.seeds)])
    row = report["results"][0]
    assert row["pgr_final"]["mean"] < 0.1, row  # near zero or worse: ids and A/B order moved
    assert row["covered"] < row["n_test"]
    assert row["falls_short"] and report["falls_short"]

    flags = scan_files(files)
    kinds = {(f.kind, f.where) for f in flags}
    assert ("answer-key", "make_preds.py:5") in kinds
    assert ("hard-coded-predictions", "predictions.json:1") in kinds


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
    all_ids = {i for s in ("train_label", "train_unlabel", "test") for i in kit.ids(s)}
    assert {i for s in ("train_label", "train_unlabel", "test") for i in rkit.ids(s)} == all_ids
    assert "replication" in rkit.dir.parts  # its own home, never beside the original kit
    # a swapped pair's features are negated and its label flipped
    orig = {r["id"]: r for r in kit.rows("train_label")}
    new = {r["id"]: (r, v) for r, v in zip(rkit.rows("train_label"),
                                          rkit.features("train_label"), strict=True)}
    swapped = [i for i in orig if i in new and new[i][0]["first"] != orig[i]["first"]]
    assert swapped
    i = swapped[0]
    assert new[i][0]["label"] != orig[i]["label"]
    x_orig = kit.features("train_label")[kit.ids("train_label").index(i)]
    assert (new[i][1] == -x_orig).all()
