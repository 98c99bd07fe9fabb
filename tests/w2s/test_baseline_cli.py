"""``aarlab methods`` and ``aarlab baseline``: the CLI contract and its error messages."""

from __future__ import annotations

import json
import os
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
    for field in ("transfer", "pgr", "weak", "ceiling"):
        assert set(r[field]) == {"mean", "se", "seeds"}, field
    assert r["transfer"]["seeds"] == 2 and r["seconds"] > 0
    assert r["spec"]["steps"][0]["params"]["threshold"] == 0.8
    assert r["method"] == "confidence_filter(threshold=0.8) [head epochs=3,min_steps=10]"


def test_baseline_all_is_sorted_by_pgr(tiny_snli):
    out = runner.invoke(app, ["baseline", "--task", "snli-pref", "--all", "--seeds", "2",
                              "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert sorted(r["spec"]["steps"][0]["method"] for r in rows) == sorted(METHODS)
    pgrs = [r["pgr"]["mean"] for r in rows]
    assert pgrs == sorted(pgrs, reverse=True)
    table = runner.invoke(app, ["baseline", "--task", "snli-pref", "--spec",
                                '{"steps": [{"method": "consistency"}, {"method": "logconf"}]}',
                                "--seeds", "1", *FAST_HEAD])
    assert table.exit_code == 0, table.output
    assert "PGR" in table.stdout and "consistency+logconf" in table.stdout


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
