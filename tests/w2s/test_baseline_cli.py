"""``aarlab methods`` and ``aarlab baseline``: the CLI contract and its error messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from typer.testing import CliRunner

from aarlab.cli import app
from aarlab.w2s.methods import METHODS

runner = CliRunner()
FAST_HEAD = ["--head", "epochs=3", "--head", "min_steps=10"]


def test_methods_json_lists_every_method_with_parameters():
    out = runner.invoke(app, ["methods", "--json"])
    assert out.exit_code == 0, out.output
    listed = json.loads(out.stdout)
    assert {m["name"] for m in listed} == set(METHODS)
    logconf = next(m for m in listed if m["name"] == "logconf")
    aux = next(p for p in logconf["params"] if p["name"] == "aux_coef")
    assert aux["default"] == 0.75 and aux["min"] == 0 and aux["max"] == 1
    table = runner.invoke(app, ["methods"])
    assert table.exit_code == 0 and "confidence_filter" in table.stdout


def test_baseline_json_contract(tiny_tweets):
    out = runner.invoke(app, ["baseline", "--task", "tweets", "--method", "confidence_filter",
                              "--param", "threshold=0.8", "--seeds", "2", "--json", *FAST_HEAD])
    assert out.exit_code == 0, out.output
    r = json.loads(out.stdout)
    for field in ("transfer", "weak", "ceiling"):
        assert set(r[field]) == {"mean", "se", "seeds"}, field
    for field in ("pgr", "pgr_feedback", "pgr_final"):  # PGR: test rows and seeds resampled
        assert set(r[field]) == {"mean", "se", "ci95", "n_rows", "seeds"}, field
        lo, hi = r[field]["ci95"]
        assert lo <= r[field]["mean"] <= hi
    assert "vote" not in r  # two seeds: no 3-seed vote to compare with a researcher's
    assert r["transfer"]["seeds"] == 2 and r["seconds"] > 0
    assert r["spec"]["steps"][0]["params"]["threshold"] == 0.8
    assert r["method"] == "confidence_filter(threshold=0.8) [head epochs=3,min_steps=10]"


def test_baseline_all_is_ordered_by_feedback_with_final_intervals(tiny_snli):
    out = runner.invoke(app, ["baseline", "--task", "snli-pref", "--all", "--seeds", "3",
                              "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert sorted(r["spec"]["steps"][0]["method"] for r in rows) == sorted(METHODS)
    feedback = [r["vote"]["pgr_feedback"]["mean"] for r in rows]
    assert feedback == sorted(feedback, reverse=True)  # chosen on feedback, never on final
    assert [r.get("chosen", False) for r in rows] == [True] + [False] * (len(rows) - 1)
    n_final = len(tiny_snli[1].parts["final"])
    for r in rows:
        assert r["vote"]["seeds"] == [0, 1, 2]
        for est in (r["pgr_final"], r["vote"]["pgr_final"]):
            lo, hi = est["ci95"]
            assert lo <= est["mean"] <= hi and est["n_rows"] == n_final
    table = runner.invoke(app, ["baseline", "--task", "snli-pref", "--spec",
                                '{"steps": [{"method": "consistency"}, {"method": "logconf"}]}',
                                "--seeds", "1", *FAST_HEAD])
    assert table.exit_code == 0, table.output
    assert "PGR" in table.stdout and "consistency+logconf" in table.stdout


def test_baseline_tuned_row(tiny_snli, tmp_path, monkeypatch):
    """``--tuned``: the tuned baseline's row, final PGR with its interval and how it was tuned."""
    from aarlab.lab import baselines, tuned
    from aarlab.w2s.spec import parse_spec

    kit, key = tiny_snli  # a copy: the session's task keeps its own cache
    shutil.copytree(kit.dir, tmp_path / "home" / "tasks" / "snli-pref" / "kit")
    shutil.copytree(key.dir, tmp_path / "home" / "answer-keys" / "snli-pref")
    monkeypatch.setenv("AARLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AARLAB_BASELINE_GRID", "one-at-a-time")  # tests default to "defaults"
    fast = {"head": {"epochs": 3, "min_steps": 10}}
    specs = [parse_spec({"method": m, **fast}) for m in ("weak_soft", "logconf")]
    monkeypatch.setattr(baselines, "default_specs", lambda: specs[:1])
    monkeypatch.setattr(tuned, "candidate_specs", lambda: specs)
    out = runner.invoke(app, ["baseline", "--task", "snli-pref", "--tuned", "--json"])
    assert out.exit_code == 0, out.output
    r = json.loads(out.stdout)
    assert r["method"].startswith("tuned: ") and r["tuning"]["candidates"] == 2
    lo, hi = r["vote"]["pgr_final"]["ci95"]
    assert lo <= r["vote"]["pgr_final"]["mean"] <= hi
    assert (tmp_path / "home" / "answer-keys" / "snli-pref" / "baselines.npz").exists()


CASES = [
    (["--method", "confidence_filter", "--param", "threshold=1.5"],
     "params.threshold: must be in [0, 1], got 1.5"),
    (["--method", "nope"], "method: unknown method 'nope'"),
    (["--method", "probe_filter", "--param", "k=many"], "params.k: expected an integer"),
    (["--method", "weak_soft", "--param", "threshold"], "--param: expected KEY=VALUE"),
    (["--method", "weak_soft", "--head", "kind=cnn"], "head.kind: must be one of"),
    (["--method", "weak_soft", "--seeds", "9"],
     "--seeds: task 'tweets' has weak labels for 3 seeds, got 9"),
    (["--all", "--method", "weak_soft"], "--method, --spec, --all: give exactly one"),
    (["--spec", "@/nonexistent/spec.json"], "--spec: no file"),
]


def test_user_mistakes_are_one_line_errors_naming_the_field(tiny_tweets, monkeypatch, capsys):
    from aarlab.cli import main

    for args, message in CASES:
        monkeypatch.setattr(sys, "argv", ["aarlab", "baseline", "--task", "tweets", *args])
        try:
            main()
        except SystemExit as e:
            code = e.code
        else:
            code = 0
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2, (args, err)
        assert message in err, (args, err)
        assert "Traceback" not in err


def test_entry_point_prints_the_error_without_traceback(tiny_tweets, lab_home):
    env = {**os.environ, "AARLAB_HOME": str(lab_home)}
    proc = subprocess.run([sys.executable, "-m", "aarlab.cli", "baseline", "--task", "tweets",
                           "--method", "confidence_filter", "--param", "threshold=1.5"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert "params.threshold: must be in [0, 1], got 1.5" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
