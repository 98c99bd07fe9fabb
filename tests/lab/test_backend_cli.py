"""``aarlab run --backend …``: a wrong backend setting is one line naming the flag, fast."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aarlab.errors import AarlabError
from aarlab.lab.backends import BackendOptions, make_backend
from aarlab.lab.backends.local import LocalBackend
from aarlab.sandbox.bwrap import sandbox_available


@pytest.fixture
def home_env(tmp_path, tiny_tweets, settings) -> dict[str, str]:
    kit, key = tiny_tweets
    home = tmp_path / "home"
    shutil.copytree(kit.dir, home / "tasks" / "tweets" / "kit")
    shutil.copytree(key.dir, home / "answer-keys" / "tweets")
    return {**os.environ, "AARLAB_HOME": str(home),
            "AARLAB_SOURCES_ROOT": str(settings.sources_dir), "RAY_ADDRESS": ""}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aarlab.cli", "run", "--task", "tweets",
                           "--budget", "20s", *args], env=env, capture_output=True, text=True,
                          timeout=400)  # a safety net, not a time limit: CI under load took 138 s


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, names", [
    (["--backend", "kubernetes"], "--backend"),
    (["--address", "127.0.0.1:6379"], "--address"),
    (["--backend", "ray", "--address", "no-port-here"], "--address"),
    (["--backend", "ray", "--address", f"127.0.0.1:{_closed_port()}"], "nothing answers"),
])
def test_bad_backend_settings_are_one_line(home_env, args, names):
    t0 = time.monotonic()
    r = _run(home_env, *args)
    assert r.returncode == 2, r.stderr[-2000:]
    assert names in r.stderr and "Traceback" not in r.stderr
    # Ray itself would wait minutes for a cluster that is not there.
    assert time.monotonic() - t0 < 90
    # Refused before a lab row existed: nothing is left for a later --resume to pick up.
    db = Path(home_env["AARLAB_HOME"]) / "aarlab.db"
    if db.exists():
        with sqlite3.connect(db) as con:
            tables = {r[0] for r in con.execute("select name from sqlite_master")}
            assert "lab_runs" not in tables or not con.execute(
                "select count(*) from lab_runs").fetchone()[0]


def test_without_ray_installed_the_message_says_how(monkeypatch, settings):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    with pytest.raises(AarlabError) as e:
        make_backend(BackendOptions(kind="ray"), settings)
    assert "Ray is not installed" in e.value.message and "aarlab[ray]" in e.value.hint
    # auto falls back to this machine when Ray cannot be used at all.
    assert isinstance(make_backend(BackendOptions(kind="auto"), settings), LocalBackend)


def test_auto_without_a_cluster_runs_locally(monkeypatch, tmp_path, settings):
    pytest.importorskip("ray")
    import ray

    if ray.is_initialized():
        pytest.skip("a Ray cluster is joined in this process")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")  # stale: nothing there
    t0 = time.monotonic()
    assert isinstance(make_backend(BackendOptions(kind="auto"), settings), LocalBackend)
    assert time.monotonic() - t0 < 30


@pytest.mark.skipif(not sandbox_available()[0], reason="bubblewrap cannot run here")
def test_run_on_a_ray_of_its_own(home_env):
    """`aarlab run --backend ray` with no address starts Ray here, and stops it at the end."""
    pytest.importorskip("ray")
    r = _run(home_env, "--backend", "ray", "--researchers", "1", "--max-experiments", "2",
             "--max-submissions", "1", "--json", "--no-replicate")
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["experiments"] >= 1 and summary["sandboxed"] is True
    home = Path(home_env["AARLAB_HOME"])
    with sqlite3.connect(home / "aarlab.db") as con:
        kinds = [json.loads(p)["backend"] for (p,) in con.execute(
            "select payload from lab_events where kind = 'placement'")]
    assert kinds and set(kinds) == {"ray"}
    assert list((home / "cache" / "node-kits").glob("tweets-*/kit/manifest.json"))
    assert not (home / "replication").exists()  # --no-replicate: left for `aarlab replicate`


@pytest.mark.skipif(not sandbox_available()[0], reason="bubblewrap cannot run here")
def test_auto_joins_a_cluster_started_with_ray_start(home_env):
    """`ray start --head`, as a person would; `--backend auto` finds and joins it."""
    pytest.importorskip("ray")
    ray_cli = str(Path(sys.executable).parent / "ray")
    port = _closed_port()
    started = subprocess.run([ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "2",
                              "--include-dashboard", "false", "--disable-usage-stats"],
                             env=home_env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        r = _run(home_env, "--backend", "auto", "--researchers", "1", "--max-experiments", "1",
                 "--max-submissions", "0", "--json", "--no-replicate")
        assert r.returncode == 0, r.stderr[-3000:]
        with sqlite3.connect(Path(home_env["AARLAB_HOME"]) / "aarlab.db") as con:
            placed = [json.loads(p) for (p,) in con.execute(
                "select payload from lab_events where kind = 'placement'")]
        # It ran on that cluster's node, not on a Ray of its own.
        nodes = subprocess.run([sys.executable, "-c", "import ray; ray.init(address='auto'); "
                                "print(' '.join(n['NodeID'] for n in ray.nodes()))"],
                               env=home_env | {"RAY_AUTH_MODE": "token"}, capture_output=True,
                               text=True, timeout=120)
        assert placed and placed[0]["backend"] == "ray"
        assert placed[0]["node_id"] in nodes.stdout.split(), nodes.stderr[-2000:]
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=home_env, capture_output=True,
                       timeout=120)
