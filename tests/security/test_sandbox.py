"""Attacks from inside a researcher's sandbox. Each is really attempted; each must fail, and the
host-side target must be untouched afterwards.

The lab home here is real: an answer key and a SQLite store at their usual places under
AARLAB_HOME, a task kit, and two researchers' workspaces. Runs wherever bubblewrap works and is
skipped (with bubblewrap's own reason) only where it cannot run at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Request

import aarlab
from aarlab.config import Settings
from aarlab.sandbox import (
    BubblewrapSandbox,
    SandboxError,
    SandboxPathError,
    SandboxSpec,
    make_sandbox,
    sandbox_available,
)
from aarlab.sandbox.base import code_paths

BWRAP_OK, BWRAP_REASON = sandbox_available()
pytestmark = pytest.mark.skipif(not BWRAP_OK, reason=BWRAP_REASON)

SECRET = f"SECRET-{uuid.uuid4().hex}"


class Lab:
    """A lab home on disk, two sandboxes in it, and what each host file looked like."""

    def __init__(self, root: Path):
        self.settings = Settings(home=root / "home")
        home = self.settings.home
        self.answer_key = self.settings.answer_keys_dir / "x" / "labels.json"
        self.answer_key.parent.mkdir(parents=True)
        self.answer_key.write_text(json.dumps({"test": {"row-1": "positive"}, "tag": SECRET}))
        self.db = home / "aarlab.db"
        with sqlite3.connect(self.db) as con:
            con.execute("create table submissions (token text)")
            con.execute("insert into submissions values (?)", (SECRET,))
        self.kit = self.settings.kits_dir / "x"
        (self.kit / "features" / "m").mkdir(parents=True)
        (self.kit / "manifest.json").write_text(json.dumps(
            {"name": "x", "format": "binary", "strong_model": "m", "weak_seeds": 1}))
        np.save(self.kit / "features" / "m" / "test.npy", np.ones((4, 3), np.float32))
        self.ws1 = home / "workspaces" / "r1"
        self.ws2 = home / "workspaces" / "r2"
        self.ws2.mkdir(parents=True)
        (self.ws2 / "r2-private-notes.txt").write_text(SECRET)
        # short path: AF_UNIX paths are limited to 108 bytes
        self.sock_dir = Path(tempfile.mkdtemp(prefix="aarlab-sock-"))
        self.sock = self.sock_dir / "lab.sock"

    def sandbox(self, name: str, workspace: Path, **fields) -> BubblewrapSandbox:
        spec = SandboxSpec(name=name, workspace=workspace, kit=self.kit,
                           env={"AARLAB_TOKEN": f"tok-{name}"}, **fields)
        sb = make_sandbox(spec, settings=self.settings)  # the real factory, checks included
        assert isinstance(sb, BubblewrapSandbox) and sb.sandboxed
        return sb

    def fingerprint(self) -> dict[str, tuple[str, int]]:
        """Content hash and mtime of every host file under the lab home."""
        out = {}
        for p in sorted(self.settings.home.rglob("*")):
            if p.is_file() and "workspaces/r1" not in str(p):
                out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        return out


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    for p in lab.sock_dir.iterdir():
        p.unlink()
    lab.sock_dir.rmdir()


@pytest.fixture
def r1(lab):
    return lab.sandbox("r1", lab.ws1)


def run_py(sb, code: str, *args: str, **kw):
    return sb.exec(["python", "-c", textwrap.dedent(code), *args], **kw)


def host_pids_with(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def wait_until(pred, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


# Tries to read each path and reports what happened, without ever crashing.
READ_ALL = """
import json, os, sys
out = {}
for p in json.loads(sys.argv[1]):
    try:
        with open(p, 'rb') as f:
            out[p] = 'READ ' + f.read().decode('latin-1')
    except OSError as e:
        out[p] = 'denied ' + type(e).__name__
print(json.dumps(out))
"""


def read_attempts(sb, paths: list[str]) -> dict[str, str]:
    r = sb.exec(["python", "-c", READ_ALL, json.dumps(paths)])
    assert r.ok, r.stderr
    return json.loads(r.stdout)


def escape_routes(host_path: Path, ws: Path) -> list[str]:
    """Every way we know to name a host file from inside: absolute, via /proc roots, via ../"""
    p = str(host_path)
    routes = [p, f"/proc/1/root{p}", f"/proc/self/root{p}", f"/proc/1/cwd/../../..{p}",
              "../" * 20 + p.lstrip("/"), os.path.relpath(p, ws), f"/workspace/../{p}"]
    routes += [f"/proc/{pid}/root{p}" for pid in range(2, 8)]
    return routes


def test_reading_the_answer_key_or_the_store_fails(lab, r1):
    before = lab.fingerprint()
    for target in (lab.answer_key, lab.db, lab.ws2 / "r2-private-notes.txt"):
        results = read_attempts(r1, escape_routes(target, lab.ws1))
        assert all(v.startswith("denied") for v in results.values()), results
        assert SECRET not in json.dumps(results)
    # sqlite itself, from inside, on the store's host path
    r = run_py(r1, f"import sqlite3; print(sqlite3.connect({str(lab.db)!r}).execute("
                   "'select * from submissions').fetchall())")
    assert r.returncode != 0 and SECRET not in r.stdout
    assert lab.fingerprint() == before


def test_nothing_private_is_anywhere_in_the_sandbox_filesystem(lab, r1):
    names = ["labels.json", "aarlab.db", "r2-private-notes.txt", "answer-keys", "r2"]
    match = " -o ".join(f"-name {n}" for n in names)
    r = r1.exec(["sh", "-c", f"find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune "
                             f"-o \\( {match} \\) -print; echo END; ls -A /"], timeout=120)
    assert r.stdout.startswith("END\n"), r.stdout  # find printed no hit
    assert str(lab.settings.home) not in r.stdout
    # the root holds the system, the kit, the workspace, and the first component of each code
    # path (interpreter, venv, source): nothing else of the host
    code_tops = {p.parts[1] for p in code_paths()}
    system = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "proc",
              "tmp"}
    assert set(r.stdout.split("END\n")[1].split()) <= system | code_tops | {"kit", "workspace"}


def test_writing_outside_the_workspace_fails(lab, r1):
    # Only files this test owns are overwritten; elsewhere (/usr, /etc, the repo, the venv) it
    # tries to create new, uniquely named files, so a broken sandbox fails the test without
    # damaging the machine running it.
    src = Path(aarlab.__file__).resolve().parent
    tag = uuid.uuid4().hex[:12]
    planted = [lab.kit / f"planted-{tag}", Path(f"/usr/planted-{tag}"),
               Path(f"/etc/planted-{tag}"), src / f"planted_{tag}.py",
               src.parent.parent / f"PLANTED-{tag}", Path(sys.prefix) / f"planted-{tag}",
               Path(f"/planted-{tag}"), lab.answer_key.parent / f"planted-{tag}"]
    owned = [lab.kit / "manifest.json", lab.answer_key, lab.db,
             lab.ws2 / "r2-private-notes.txt", Path(f"/proc/1/root{lab.answer_key}")]
    host_tmp_marker = Path(tempfile.gettempdir()) / f"aarlab-escape-{tag}"
    before = lab.fingerprint()
    try:
        r = run_py(r1, """
            import json, sys
            out = {}
            for p in json.loads(sys.argv[1]):
                try:
                    with open(p, 'a') as f:
                        f.write('pwned')
                    out[p] = 'WROTE'
                except OSError as e:
                    out[p] = 'denied ' + type(e).__name__
            open(sys.argv[2], 'w').write('only in the private /tmp')
            print(json.dumps(out))
        """, json.dumps([str(t) for t in owned + planted]), str(host_tmp_marker))
        assert r.ok, r.stderr
        results = json.loads(r.stdout)
        # Inside, /tmp is the sandbox's own tmpfs: when the repo sits under the host's /tmp (a
        # CI clone), its folder exists there too and a write lands in that private tmpfs. Such
        # a write must stay private (checked on the host below); everything else is denied.
        private_tmp = Path(tempfile.gettempdir()).resolve()
        escaped = {p: v for p, v in results.items() if not v.startswith("denied")
                   and not (Path(p).is_relative_to(private_tmp) and not Path(p).exists())}
        assert not escaped, escaped
        assert lab.fingerprint() == before
        assert not [p for p in planted if p.exists()]
        assert not host_tmp_marker.exists()  # /tmp inside is its own tmpfs
        assert r1.exec(["sh", "-c", "echo ok > /workspace/mine && cat mine"]).stdout == "ok\n"
    finally:
        for p in [*planted, host_tmp_marker]:
            p.unlink(missing_ok=True)


def _host_ip() -> str | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing address
        return s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()


def test_opening_a_tcp_connection_fails(r1):
    accepted: list = []
    srv = socket.create_server(("0.0.0.0", 0))
    port = srv.getsockname()[1]
    srv.settimeout(0.2)
    stop = threading.Event()

    def accept_loop():
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except TimeoutError:
                continue

    t = threading.Thread(target=accept_loop, daemon=True)
    t.start()
    try:
        ips = ["127.0.0.1"] + [ip for ip in [_host_ip()] if ip and ip != "127.0.0.1"]
        r = run_py(r1, f"""
            import socket
            for ip in {ips!r}:
                try:
                    socket.create_connection((ip, {port}), timeout=3).send(b'hi')
                    print('CONNECTED', ip)
                except OSError as e:
                    print('denied', ip, type(e).__name__)
            print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))
        """)
        assert r.ok, r.stderr
        assert "CONNECTED" not in r.stdout and r.stdout.count("denied") == len(ips)
        assert r.stdout.strip().endswith("['lo']")  # no interface but a loopback of its own
        time.sleep(0.3)
        assert accepted == []
        socket.create_connection(("127.0.0.1", port), timeout=3).close()  # the listener is real
        assert wait_until(lambda: len(accepted) == 1)
    finally:
        stop.set()
        t.join()
        for c in accepted:
            c.close()
        srv.close()


def _ppid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


# Kills named host pids, then every pid it can see, but sweeps only after checking that it is in
# a PID namespace of its own (its pid is tiny there). A broken sandbox must fail this test, not
# kill every process on the machine running it.
SIGNAL_ALL = """
import json, os, signal, sys
for pid in json.loads(sys.argv[1]):
    try:
        os.kill(pid, signal.SIGKILL)
        print('SENT', pid)
    except OSError as e:
        print('denied', pid, type(e).__name__)
visible = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
print('visible', json.dumps(visible))
if os.getpid() < 100 and len(visible) < 10:
    for pid in visible:
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
else:
    print('NOT-IN-OWN-PID-NAMESPACE', os.getpid())
"""


def test_signalling_another_researchers_process_fails(lab, r1):
    r2 = lab.sandbox("r2", lab.ws2)
    mark = f"{random.randint(10_000, 99_999)}.{random.randint(100, 999)}"
    results = []
    t = threading.Thread(target=lambda: results.append(r2.exec(["sleep", mark])))
    t.start()
    bystander = subprocess.Popen(["sleep", "600"])  # a lab-side process, outside any sandbox
    try:
        def sleeps() -> list[int]:  # the sleep itself, not the bwrap whose argv carries it
            return [p for p in host_pids_with(f"sleep\0{mark}")
                    if Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"sleep\0")]

        assert wait_until(sleeps)
        victim, = sleeps()
        r2_init = _ppid(victim)  # bwrap's pid 1 of r2's namespace, then the outer bwrap
        targets = [victim, r2_init, _ppid(r2_init), bystander.pid]
        for pid in targets[1:3]:  # never aim at anything but r2's own bwrap processes
            assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"bwrap")
        r = r1.exec(["python", "-c", SIGNAL_ALL, json.dumps(targets)])
        assert r.ok, r.stderr
        assert "SENT" not in r.stdout and "NOT-IN-OWN" not in r.stdout, r.stdout
        visible = json.loads(r.stdout.split("visible ", 1)[1].splitlines()[0])
        assert not set(visible) & set(targets)
        time.sleep(0.3)
        assert victim in host_pids_with(f"sleep\0{mark}") and t.is_alive()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        r2.terminate()
        t.join(10)
    assert results and results[0].cancelled


def test_environment_variables_holding_keys_are_absent(lab, monkeypatch):
    secrets = {"ANTHROPIC_API_KEY": f"sk-test-{uuid.uuid4().hex}",
               "OPENAI_API_KEY": f"sk-{uuid.uuid4().hex}",
               "AWS_SECRET_ACCESS_KEY": uuid.uuid4().hex,
               "AARLAB_ADMIN_TOKEN": f"admin-{uuid.uuid4().hex}"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    r1 = lab.sandbox("r1", lab.ws1)
    r = r1.exec(["sh", "-c", "env; cat /proc/*/environ | tr '\\0' '\\n'"])
    assert r.ok, r.stderr
    assert "AARLAB_TOKEN=tok-r1" in r.stdout  # the researcher's own token does get in
    for k, v in secrets.items():
        assert k not in r.stdout and v not in r.stdout
    with pytest.raises(SandboxError, match="ANTHROPIC_API_KEY"):
        r1.exec(["env"], env={"ANTHROPIC_API_KEY": secrets["ANTHROPIC_API_KEY"]})


def test_host_reads_never_follow_a_planted_symlink(lab, r1):
    before = lab.fingerprint()
    rel = os.path.relpath(lab.answer_key, lab.ws1)
    r = r1.exec(["sh", "-c", f"ln -s {lab.answer_key} abs && ln -s {rel} rel && "
                             f"ln -s {lab.answer_key.parent} dir && ln -s /kit kitlink"])
    assert r.ok, r.stderr
    for path in ("abs", "rel", "dir/labels.json", "/workspace/abs", "kitlink/manifest.json"):
        with pytest.raises(SandboxPathError):
            r1.read_file(path)
    r1.write_file("abs", "replaces the link, not its target")
    assert r1.read_file("abs") == "replaces the link, not its target"
    with pytest.raises(SandboxPathError):
        r1.write_file("dir/labels.json", "pwned")
    assert lab.fingerprint() == before


def test_the_lab_socket_is_the_way_out(lab):
    r1 = lab.sandbox("r1", lab.ws1, socket=lab.sock)
    with pytest.raises(SandboxError, match="does not exist"):
        r1.exec(["true"])  # before the server is up: a clear error, not a bwrap message
    app = FastAPI()

    @app.get("/whoami")
    def whoami(request: Request) -> dict:
        return {"auth": request.headers.get("authorization")}

    server = uvicorn.Server(uvicorn.Config(app, uds=str(lab.sock), log_level="warning",
                                           lifespan="off"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    try:
        assert wait_until(lambda: server.started, 10)
        r = run_py(r1, """
            import os
            from aarlab.client.base import BaseClient
            with BaseClient() as c:  # AARLAB_SOCKET and AARLAB_TOKEN from the sandbox env
                print(os.environ['AARLAB_SOCKET'], c.get('/whoami')['auth'])
        """)
        assert r.ok, r.stderr
        assert r.stdout.split() == ["/run/aarlab.sock", "Bearer", "tok-r1"]
    finally:
        server.should_exit = True
        t.join(10)


def test_python_numpy_aarlab_and_the_kit_work_inside(r1):
    r = run_py(r1, """
        import numpy, aarlab, os
        from aarlab.kits.kit import TaskKit
        kit = TaskKit(os.environ['AARLAB_KIT'])
        print(kit.name, kit.features('test').sum(), aarlab.__version__)
    """)
    assert r.ok, r.stderr
    assert r.stdout.split()[:2] == ["x", "12.0"]


def test_nothing_escapes_the_pid_namespace_on_timeout(r1):
    mark = f"{random.randint(10_000, 99_999)}.{random.randint(100, 999)}"
    # setsid and a double fork leave the process group; only the namespace can catch them
    r = r1.exec(["sh", "-c", f"setsid sleep {mark} & (setsid sleep {mark} &); sleep {mark}"],
                timeout=1.0)
    assert r.timed_out
    assert wait_until(lambda: not host_pids_with(f"sleep\0{mark}"))


def test_the_sandbox_dies_with_the_lab(lab):
    mark = f"{random.randint(10_000, 99_999)}.{random.randint(100, 999)}"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from aarlab.sandbox import BubblewrapSandbox, SandboxSpec
        sb = BubblewrapSandbox(SandboxSpec(name="r1", workspace=Path({str(lab.ws1)!r})))
        sb.exec(["sleep", "{mark}"])
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        assert wait_until(lambda: host_pids_with(f"sleep\0{mark}"), 15)
        parent.kill()  # kill -9 of the lab, perhaps before bwrap set its own --die-with-parent
        parent.wait()
        assert wait_until(lambda: not host_pids_with(f"sleep\0{mark}"))
    finally:
        if parent.poll() is None:
            parent.kill()
