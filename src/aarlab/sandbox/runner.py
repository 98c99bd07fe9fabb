"""Run one command with rlimits, capped output, and a wall clock that kills its whole group.

The command starts in a new session (so its process group is ours to kill) with rlimits set
between fork and exec, and, when the caller asks (``Confine``), its cgroups joined, its host
paths staged and its uid dropped there too. One ``select`` loop feeds stdin, drains both pipes
(keeping at most ``output_bytes`` of each and discarding the rest so the child never blocks on
a full pipe), watches a pidfd for the leader's exit and asks a watchdog whether a limit was
hit. The leader is never reaped before its group is killed, so the group id cannot have been
reused by an unrelated process when we kill it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import selectors
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aarlab.sandbox.errors import SandboxError
from aarlab.sandbox.spec import Limits

# After the leader exits, how long we keep reading pipes held open by its leftover children.
_DRAIN_GRACE_S = 0.5
_CHUNK = 1 << 16
_POLL_S = 0.2  # how soon a cancel is noticed
_WATCH_POLL_S = 0.05  # how often a watchdog may look


@dataclass(frozen=True)
class ExecResult:
    """What one ``exec`` produced. Output is UTF-8 decoded with invalid bytes replaced."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False
    cancelled: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: float = 0.0
    limit: str | None = None  # a sandbox-wide limit that stopped it, in words

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not (self.timed_out or self.cancelled or self.limit)


@dataclass(frozen=True)
class Confine:
    """What an exec adds to plain rlimits, all set up in the child before it execs.

    ``ids``: the (uid, gid) to drop to (a root lab never runs a sandbox as root);
    ``join_fds``: ``cgroup.procs`` files the child enters; ``nproc``: RLIMIT_NPROC, a per-uid
    process cap for hosts without cgroups (it holds only for a uid of the sandbox's own);
    ``watch``: called while the exec runs; a non-None answer (why) stops it.
    """

    ids: tuple[int, int] | None = None
    join_fds: tuple[int, ...] = ()
    nproc: int | None = None
    watch: Callable[[], str | None] | None = None
    stage: tuple[tuple[str, str], ...] = ()  # (host path, staged path); see _stage
    nice: int = 0  # > 0: yield the CPU to the lab (its server and watchdogs) under load
    file_bytes: int | None = None  # RLIMIT_FSIZE in place of the limits' (0: no file grows)


_libc = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: the child only calls it
_PR_SET_PDEATHSIG = 1
_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
STAGE_ROOT = "/tmp"  # exists everywhere and anyone may traverse it


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _stage(stage: tuple[tuple[str, str], ...]) -> None:
    """In the child, still root: make each host path bwrap needs reachable by an unprivileged
    uid. A private mount namespace (gone with the sandbox, nothing left on the host) gets a
    fresh tmpfs at ``STAGE_ROOT`` and on it a bind mount of each host path: bwrap, no longer
    root, binds those, not paths under a 0700 home it could not traverse. (Paths, not fds the
    lab opened: a mount of another namespace cannot be bound. Each is lab-owned or, for the
    workspace, in a lab-owned directory, so a sandbox cannot swap it.)"""
    _check(_libc.unshare(_CLONE_NEWNS), "unshare")
    _check(_libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
    # Opened before the tmpfs hides them: a source may itself live under STAGE_ROOT.
    fds = [os.open(host, os.O_PATH | os.O_CLOEXEC) for host, _ in stage]
    _check(_libc.mount(b"tmpfs", STAGE_ROOT.encode(), b"tmpfs",
                       _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, b"mode=0711,size=65536"), "tmpfs")
    for fd, (_, path) in zip(fds, stage, strict=True):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.mkdir(path, 0o711)
        else:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        _check(_libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None,
                           _MS_BIND | _MS_REC, None), f"bind {path}")


def child_setup(limits: Limits, confine: Confine | None = None) -> Callable[[], None]:
    """A ``preexec_fn``: cgroups, rlimits, the host uid, and death with the lab.

    Order matters: the cgroups are joined while still root (and before anything can fork);
    the parent-death signal is set after the uid changes (a uid change clears it), and here
    at all because bwrap's own ``--die-with-parent`` is set only once bwrap runs: a lab killed
    in between would leave an orphaned sandbox.
    """
    parent = os.getpid()
    confine = confine or Confine()
    fsize = limits.file_bytes if confine.file_bytes is None else confine.file_bytes
    values = [
        (resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5)),  # SIGXCPU, then SIGKILL
        (resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes)),
        (resource.RLIMIT_FSIZE, (fsize, fsize)),
        (resource.RLIMIT_CORE, (0, 0)),
    ]
    if confine.nproc is not None:
        values.append((resource.RLIMIT_NPROC, (confine.nproc, confine.nproc)))

    def apply() -> None:
        for fd in confine.join_fds:
            os.write(fd, b"0")  # "0": the writer itself
        if confine.stage:
            _stage(confine.stage)
        for which, lim in values:
            resource.setrlimit(which, lim)
        if confine.nice:
            os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) + confine.nice)
        if confine.ids is not None:
            uid, gid = confine.ids
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the lab died before prctl: do not start at all
            os._exit(1)

    return apply


class _Capped:
    def __init__(self, cap: int):
        self.cap, self.buf, self.truncated = cap, bytearray(), False

    def add(self, data: bytes) -> None:
        room = self.cap - len(self.buf)
        if len(data) > room:
            self.truncated = True
            data = data[:max(room, 0)]
        self.buf += data

    def text(self) -> str:
        return self.buf.decode("utf-8", errors="replace")


def run_limited(argv: Sequence[str], *, env: dict[str, str], cwd: str | None,
                stdin: bytes | None, timeout: float, limits: Limits,
                pass_fds: Sequence[int] = (),
                cancel: threading.Event | None = None,
                confine: Confine | None = None) -> ExecResult:
    """Run ``argv``; see ``Sandbox.exec`` for the contract. Setting ``cancel`` kills it."""
    t0 = time.monotonic()
    watch = confine.watch if confine is not None else None
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
            start_new_session=True, preexec_fn=child_setup(limits, confine),
            pass_fds=tuple(pass_fds), close_fds=True,
        )
    except subprocess.SubprocessError as e:  # our preexec_fn failed: the sandbox, not the cmd
        raise SandboxError(f"cannot start the sandbox: {e}",
                           hint="cgroup or uid setup failed; see aarlab.sandbox.limits_report()"
                           ) from None
    except OSError as e:  # like a shell: a missing program or cwd is exit 127, not a crash
        return ExecResult(returncode=127, stdout="", stderr=f"cannot run {argv[0]!r}: {e}\n",
                          duration_s=time.monotonic() - t0)
    out, err = _Capped(limits.output_bytes), _Capped(limits.output_bytes)
    pidfd = os.pidfd_open(proc.pid)
    sel = selectors.DefaultSelector()
    try:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        sel.register(pidfd, selectors.EVENT_READ, "exit")
        pending = memoryview(stdin) if stdin is not None else None
        if pending is not None:
            if len(pending):
                os.set_blocking(proc.stdin.fileno(), False)
                sel.register(proc.stdin, selectors.EVENT_WRITE, "stdin")
            else:
                proc.stdin.close()
        deadline, exited_at, timed_out, cancelled = t0 + timeout, None, False, False
        limit = None
        while True:
            now = time.monotonic()
            streams_open = any(k.data in (out, err) for k in sel.get_map().values())
            if exited_at is not None and (not streams_open or now - exited_at > _DRAIN_GRACE_S):
                break
            if now >= deadline:
                timed_out = True
                break
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            if watch is not None and exited_at is None:
                limit = watch()
                if limit:
                    break
            for key, _ in sel.select(min(deadline - now, _WATCH_POLL_S if watch else _POLL_S)):
                if key.data == "exit":
                    exited_at = time.monotonic()
                    sel.unregister(pidfd)
                elif key.data == "stdin":
                    try:
                        n = os.write(proc.stdin.fileno(), pending[:_CHUNK])
                        pending = pending[n:]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not len(pending):
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                else:
                    chunk = os.read(key.fileobj.fileno(), _CHUNK)
                    if chunk:
                        key.data.add(chunk)
                    else:
                        sel.unregister(key.fileobj)
        # Whatever is left of the group (children, or everything on timeout) dies now.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        returncode = proc.wait()
    finally:
        sel.close()
        os.close(pidfd)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None and not f.closed:
                f.close()
    return ExecResult(returncode=returncode, stdout=out.text(), stderr=err.text(),
                      timed_out=timed_out, cancelled=cancelled, stdout_truncated=out.truncated,
                      stderr_truncated=err.truncated, duration_s=time.monotonic() - t0,
                      limit=limit or None)
