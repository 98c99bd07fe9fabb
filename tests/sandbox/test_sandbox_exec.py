"""``exec`` keeps its contract in both kinds of sandbox: output, env, cwd, limits, timeouts."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest

from aarlab.sandbox import Limits, SandboxError, SandboxPathError
from aarlab.sandbox.spec import MiB


def host_pids_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                pids.append(int(entry))
    return pids


def wait_until(pred, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def unique_sleep() -> str:
    return f"{random.randint(10_000, 99_999)}.{random.randint(100, 999)}"


def test_exit_code_output_and_stdin(make):
    sb = make()
    r = sb.exec(["python", "-c", "import sys; d = sys.stdin.read(); print(d.upper()); "
                 "print('to-err', file=sys.stderr); sys.exit(3)"], input="abc")
    assert (r.returncode, r.stdout, r.stderr) == (3, "ABC\n", "to-err\n")
    assert not r.ok and not r.timed_out


def test_environment_is_built_from_nothing(make, monkeypatch):
    monkeypatch.setenv("HOST_ONLY_VARIABLE", "host-value")
    sb = make(env={"AARLAB_TOKEN": "researcher-token"})
    r = sb.exec(["python", "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
                env={"OMP_NUM_THREADS": "1"})
    env = json.loads(r.stdout)
    assert "HOST_ONLY_VARIABLE" not in env
    assert env["HOME"] == env["AARLAB_WORKSPACE"] == sb.workspace_path
    assert env["AARLAB_TOKEN"] == "researcher-token" and env["OMP_NUM_THREADS"] == "1"
    allowed = {"PATH", "HOME", "LANG", "PYTHONUNBUFFERED", "PWD", "AARLAB_WORKSPACE",
               "AARLAB_TOKEN", "OMP_NUM_THREADS"}
    assert set(env) <= allowed


def test_workspace_persists_across_execs_and_restarts(make):
    sb = make()
    assert sb.exec(["sh", "-c", "mkdir -p notes && echo tried-x > notes/log.txt"]).ok
    assert sb.exec(["cat", "notes/log.txt"]).stdout == "tried-x\n"
    restarted = make()  # a new sandbox over the same workspace, as after a researcher restart
    assert restarted.exec(["cat", "notes/log.txt"]).stdout == "tried-x\n"
    assert restarted.read_file("notes/log.txt") == "tried-x\n"


def test_cwd_is_relative_to_the_workspace(make):
    sb = make()
    sb.write_file("sub/x.txt", "in-sub")
    assert sb.exec(["cat", "x.txt"], cwd="sub").stdout == "in-sub"
    with pytest.raises(SandboxPathError, match="'..'"):
        sb.exec(["ls"], cwd="../")


def test_output_is_capped_and_the_rest_drained(make):
    sb = make(limits=Limits(timeout_s=60, output_bytes=4096))
    r = sb.exec(["python", "-c", "import sys; sys.stdout.write('x' * 5_000_000); "
                 "sys.stderr.write('small'); sys.exit(0)"])
    # the child wrote 5 MB through a 64 KiB pipe, so it was drained, not blocked
    assert r.returncode == 0 and not r.timed_out
    assert r.stdout == "x" * 4096 and r.stdout_truncated
    assert r.stderr == "small" and not r.stderr_truncated


def test_timeout_kills_the_whole_process_tree(make):
    sb = make()
    a, b, c = unique_sleep(), unique_sleep(), unique_sleep()
    t0 = time.monotonic()
    r = sb.exec(["sh", "-c", f"sleep {a} & (sleep {b} &) ; sleep {c}"], timeout=1.0)
    assert r.timed_out and not r.ok
    assert time.monotonic() - t0 < 10
    for marker in (a, b, c):
        assert wait_until(lambda m=marker: not host_pids_with(f"sleep\0{m}")), marker


def test_terminate_cancels_a_running_exec(make):
    sb = make()
    mark = unique_sleep()
    results = []
    t = threading.Thread(target=lambda: results.append(sb.exec(["sleep", mark])))
    t.start()
    assert wait_until(lambda: host_pids_with(f"sleep\0{mark}"))
    sb.terminate()
    t.join(10)
    assert not t.is_alive() and results[0].cancelled and not results[0].ok
    assert wait_until(lambda: not host_pids_with(f"sleep\0{mark}"))


def test_memory_limit_stops_a_big_allocation(make):
    sb = make(limits=Limits(timeout_s=60, memory_bytes=1 << 30))
    small = sb.exec(["python", "-c", "import numpy; numpy.ones(100 * 2**20, 'u1'); print('ok')"])
    assert small.stdout == "ok\n"  # the limit leaves room for real work
    big = sb.exec(["python", "-c", "import numpy; numpy.ones(2 * 2**30, 'u1'); print('ok')"])
    assert big.returncode != 0 and "ok" not in big.stdout
    assert "Unable to allocate" in big.stderr or "MemoryError" in big.stderr


def test_cpu_limit_stops_a_busy_loop(make):
    sb = make(limits=Limits(timeout_s=60, cpu_s=1))
    r = sb.exec(["python", "-c", "while True: pass"])
    assert not r.timed_out and r.returncode != 0
    assert r.duration_s < 30


def test_file_size_limit(make):
    sb = make(limits=Limits(timeout_s=60, file_bytes=MiB))
    r = sb.exec(["python", "-c", "open('big', 'wb').write(b'x' * (2 * 2**20))"])
    assert r.returncode != 0 and "File too large" in r.stderr
    assert len(sb.read_file("big", text=False)) <= MiB


def test_missing_program_is_a_result_not_a_crash(make):
    r = make().exec(["no-such-program-xyz"])
    assert r.returncode != 0 and "no-such-program-xyz" in r.stderr


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"cmd": "ls -la"}, "cmd: expected a non-empty list"),
    ({"cmd": []}, "cmd: expected a non-empty list"),
    ({"cmd": ["ls"], "env": {"ANTHROPIC_API_KEY": "sk"}}, "ANTHROPIC_API_KEY is not allowed"),
    ({"cmd": ["ls"], "env": {"AARLAB_ADMIN_TOKEN": "t"}}, "AARLAB_ADMIN_TOKEN must never"),
    ({"cmd": ["ls"], "timeout": 0}, "timeout: expected seconds > 0"),
])
def test_bad_arguments_raise_clear_errors(make, kwargs, match):
    with pytest.raises(SandboxError, match=match):
        make().exec(**kwargs)
