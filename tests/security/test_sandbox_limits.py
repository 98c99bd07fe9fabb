"""Attacks on the host through a sandbox's own resources, each really attempted in bubblewrap.

A setuid file left on the host, a fork bomb, a memory hog, a full /dev, a full workspace. Each
must be bounded by the sandbox's limits, stopped and recorded (``ExecResult.limit``), and while
it runs another researcher's sandbox must still reach the lab's server and get its answer.
Caps are small (64 pids, 160 MiB, 64 MiB of disk) so that each test is quick on a small machine.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from aarlab.config import Settings
from aarlab.sandbox import (
    BubblewrapSandbox,
    Limits,
    SandboxSpec,
    limits_report,
    make_sandbox,
    sandbox_available,
)
from aarlab.sandbox.hostuser import privileged
from aarlab.sandbox.spec import MiB
from aarlab.sandbox.workspace import FORBIDDEN_BITS

BWRAP_OK, BWRAP_REASON = sandbox_available()
REPORT = limits_report()
pytestmark = pytest.mark.skipif(not BWRAP_OK, reason=BWRAP_REASON)
needs_cgroups = pytest.mark.skipif(
    "pids" not in REPORT["controllers"],
    reason=f"no pids cgroup here (limits_report says so): {REPORT['warning']}")


class Lab:
    """Sandboxes in a lab home, and a server on the lab socket that answers /score."""

    def __init__(self, root: Path):
        self.settings = Settings(home=root / "home")
        self.sock_dir = Path(tempfile.mkdtemp(prefix="aarlab-sock-"))  # AF_UNIX: short path
        self.sock = self.sock_dir / "lab.sock"
        app = FastAPI()
        self.scored = 0

        @app.get("/score")
        def score() -> dict:
            self.scored += 1
            return {"pgr": 0.5}

        self.server = uvicorn.Server(uvicorn.Config(app, uds=str(self.sock),
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        end = time.monotonic() + 10
        while not self.server.started and time.monotonic() < end:
            time.sleep(0.02)
        assert self.server.started

    def sandbox(self, name: str, **limits) -> BubblewrapSandbox:
        spec = SandboxSpec(name=name, workspace=self.settings.home / "workspaces" / name,
                           socket=self.sock, env={"AARLAB_TOKEN": f"tok-{name}"},
                           limits=Limits(timeout_s=60, **limits))
        sb = make_sandbox(spec, settings=self.settings)
        assert isinstance(sb, BubblewrapSandbox)
        return sb

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        for p in self.sock_dir.iterdir():
            p.unlink()
        self.sock_dir.rmdir()


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    lab.close()


SCORE = """
from aarlab.client.base import BaseClient
with BaseClient() as c:
    print(c.get('/score')['pgr'])
"""


def while_attacking(lab: Lab, attacker: BubblewrapSandbox, attack: str, **kw):
    """Run ``attack`` (Python) in ``attacker``; meanwhile another researcher gets scored.

    Returns the attack's result and how long the bystander's scoring took (seconds).
    """
    out: list = []
    t = threading.Thread(target=lambda: out.append(
        attacker.exec(["python", "-c", textwrap.dedent(attack)], **kw)))
    t.start()
    time.sleep(1.0)  # the attack is under way
    bystander = lab.sandbox("r2")
    t0 = time.monotonic()
    r = bystander.exec(["python", "-c", SCORE], timeout=60)
    took = time.monotonic() - t0
    assert r.ok and r.stdout.strip() == "0.5", (r.stdout, r.stderr)
    t.join(90)
    assert not t.is_alive()
    return out[0], took


def host_entries(root: Path) -> list[tuple[str, os.stat_result]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            out.append((str(p.relative_to(root)), p.lstat()))
    return out


def test_limits_are_reported():
    assert set(REPORT) >= {"cgroups", "controllers", "host_uid", "ok", "warning"}
    assert REPORT["ok"] == (REPORT["cgroups"] is not None)
    assert (REPORT["warning"] is None) == REPORT["ok"]


def test_no_setuid_or_root_owned_file_is_left_on_the_host(lab):
    sb = lab.sandbox("r1")
    ws = sb.spec.workspace
    attack = ("cp /usr/bin/id suid && chmod 4755 suid && cp /usr/bin/id sgid && chmod 2755 sgid "
              "&& mkdir -p d && chmod 3777 d && echo x > d/open && chmod 0777 d/open "
              "&& ls -ln suid && sleep 3")
    result: list = []
    t = threading.Thread(target=lambda: result.append(sb.exec(["sh", "-c", attack])))
    t.start()
    try:
        end = time.monotonic() + 10
        while not (ws / "suid").exists() and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.3)
        # While it runs: the copy is not root's, and no other local user reaches the workspace.
        assert (ws / "suid").lstat().st_uid != 0
        st = ws.lstat()
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid != 0 or not privileged()
        if privileged():
            peek = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534",
                                   "--clear-groups", "ls", str(ws)], capture_output=True)
            assert peek.returncode != 0 and b"suid" not in peek.stdout
    finally:
        t.join(30)
    assert result[0].ok, result[0].stderr
    # Afterwards: nothing setuid/setgid/sticky, writable or executable by others, or root's.
    entries = host_entries(ws)
    assert {name for name, _ in entries} >= {"suid", "sgid", "d", "d/open"}
    for name, st in entries:
        assert not st.st_mode & FORBIDDEN_BITS, (name, oct(st.st_mode))
        if privileged():
            assert st.st_uid != 0 and st.st_gid != 0, (name, st.st_uid)
    # The researcher keeps using its own files.
    assert sb.exec(["sh", "-c", "./suid -u && cat d/open"]).stdout.split() == ["1000", "x"]


def test_files_the_lab_writes_stay_the_researchers_own(lab):
    sb = lab.sandbox("r1")
    sb.write_file("notes/plan.md", "from the lab\n")
    r = sb.exec(["sh", "-c", "echo more >> notes/plan.md && mv notes notes2 && cat notes2/plan.md"])
    assert r.ok, r.stderr
    assert r.stdout.split() == ["from", "the", "lab", "more"]


FORK_BOMB = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""


@needs_cgroups
def test_a_fork_bomb_is_bounded_and_stopped(lab):
    r1 = lab.sandbox("r1", pids=64)
    t0 = time.monotonic()
    result, took = while_attacking(lab, r1, FORK_BOMB)
    assert result.limit and "process" in result.limit, result
    assert time.monotonic() - t0 < 30  # stopped, not left to its 60 s timeout
    assert "[aarlab] the sandbox stopped this command" in result.stderr
    assert took < 20
    assert not result.ok


MEMORY_HOG = """
import multiprocessing as mp, time

def hog(_):
    block = bytearray(60 << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(5)
    return len(block)

if __name__ == '__main__':
    with mp.get_context('fork').Pool(6) as pool:
        print('ALL', sum(pool.map(hog, range(6))) >> 20, 'MiB')
"""


@pytest.mark.skipif(REPORT["cgroups"] is None or "memory" not in REPORT["controllers"],
                    reason=f"no memory cgroup here: {REPORT['warning']}")
def test_a_memory_hog_is_bounded_and_stopped(lab):
    # Each process stays under its own 1 GiB; together 360 MiB, over the sandbox's 160 MiB.
    r1 = lab.sandbox("r1", memory_bytes=1 << 30, sandbox_memory_bytes=160 * MiB)
    result, took = while_attacking(lab, r1, MEMORY_HOG)
    assert "ALL" not in result.stdout
    assert result.limit and "memory" in result.limit, result
    assert took < 20


def test_dev_is_read_only_and_dev_shm_is_capped(lab):
    sb = lab.sandbox("r1", shm_bytes=8 * MiB)
    r = sb.exec(["python", "-c", textwrap.dedent("""
        import os
        for path in ('/dev/fill', '/dev/shm/fill', '/dev/pts/fill'):
            n = 0
            try:
                with open(path, 'wb') as f:
                    for _ in range(64):
                        f.write(b'x' * (1 << 20))
                        f.flush()
                        n += 1 << 20
            except OSError as e:
                print(path, n, type(e).__name__, e.errno)
            else:
                print(path, n, 'WROTE', 0)
    """)])
    assert r.ok, r.stderr
    got = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()}
    assert got["/dev/fill"][0] == "0" and got["/dev/fill"][1] == "OSError"
    assert int(got["/dev/shm/fill"][0]) <= 8 * MiB and got["/dev/shm/fill"][1] == "OSError"
    assert got["/dev/pts/fill"][0] == "0"
    # /dev still works as /dev: null, zero, urandom, and shared memory for multiprocessing
    r = sb.exec(["python", "-c", "import multiprocessing as mp; l = mp.Lock(); "
                 "open('/dev/null','w').write('x'); print(len(open('/dev/urandom','rb').read(8)))"])
    assert r.ok and r.stdout.strip() == "8", r.stderr


FILL_DISK = """
import os
chunk = os.urandom(1 << 20)
for i in range(1024):  # 1 GiB in 4 MiB files, past a 64 MiB quota
    with open(f'fill-{i}', 'wb') as f:
        for _ in range(4):
            f.write(chunk)
print('WROTE ALL')
"""


def test_filling_the_workspace_is_stopped_at_the_quota(lab):
    cap = 64 * MiB
    r1 = lab.sandbox("r1", workspace_bytes=cap, file_bytes=8 * MiB)
    result, took = while_attacking(lab, r1, FILL_DISK)
    assert "WROTE ALL" not in result.stdout
    assert result.limit and result.limit.startswith("workspace quota"), result
    used = sum(st.st_blocks * 512 for _, st in host_entries(r1.spec.workspace))
    print(f"workspace quota {cap >> 20} MiB: stopped at {used / MiB:.0f} MiB "
          f"(overshoot {(used - cap) / MiB:.0f} MiB)")
    # The overshoot is what it writes between two checks: 35-400 MiB here, on 2 busy cores.
    assert used < 12 * cap < 1 << 30
    assert took < 20
    # Past its quota it may still clean up (and then write again).
    r = r1.exec(["sh", "-c", "rm -f fill-* && echo small > kept && cat kept"])
    assert r.ok and r.limit is None and r.stdout == "small\n", r.stderr


def test_one_file_past_file_bytes_fails_at_once(lab):
    sb = lab.sandbox("r1", file_bytes=4 * MiB)
    r = sb.exec(["sh", "-c", "head -c 8M /dev/zero > big; echo rc=$?; stat -c %s big"])
    assert "rc=0" not in r.stdout and r.stdout.split()[-1] == str(4 * MiB)


def test_without_cgroups_the_lab_says_so(monkeypatch):
    import io

    from rich.console import Console

    from aarlab.sandbox import cgroups, factory

    monkeypatch.setattr(cgroups, "support",
                        lambda: cgroups.Support(None, reason="no cgroup for this test"))
    report = limits_report()
    assert not report["ok"] and "no cgroup for this test" in report["warning"]
    buf = io.StringIO()
    factory._warned.clear()
    assert factory.warn_if_unbounded(Console(file=buf, width=200)) == report["warning"]
    assert "per process only" in buf.getvalue() and "SANDBOX LIMITS" in buf.getvalue()
