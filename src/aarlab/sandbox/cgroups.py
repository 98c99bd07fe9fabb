"""Limits for a whole sandbox, not per process: one cgroup per exec (pids, memory, cpu).

rlimits bound each process; a fork bomb or a hundred 4 GiB processes are bounded only by a
cgroup around all of them. Each exec gets its own cgroup, created below the lab's own cgroup
(so whatever already bounds the lab bounds its sandboxes too), joined by the child between fork
and exec (before bwrap runs, so nothing of the sandbox ever runs outside it), watched for
limit events while it runs, and emptied and removed afterwards.

cgroup v2 is used when the lab's cgroup can delegate pids and memory; else the v1 hierarchies
(a hybrid host: v2 mounted without controllers, v1 ones writable); else nothing, said loudly
by ``limits_report``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aarlab.sandbox.spec import Limits

WANTED = ("pids", "memory", "cpu")
_PERIOD_US = 100_000
_names = itertools.count()


@dataclass(frozen=True)
class Support:
    """What this host lets the lab do: ``version`` "v2", "v1" or None, and per controller the
    directory (the lab's own cgroup) under which sandbox cgroups are made."""

    version: str | None
    bases: dict[str, Path] = field(default_factory=dict)
    reason: str = ""

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(c for c in WANTED if c in self.bases)


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of each cgroup file system."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fstype, _source, opts = (right.split(" ") + ["", ""])[:3]
            if fstype in ("cgroup", "cgroup2"):
                out.append((left.split(" ")[4], fstype, set(opts.split(","))))
    return out


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under "" the v2 one."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in (ctrls.split(",") if ctrls else [""]):
                out[c] = path
    return out


def _writable_dir(p: Path) -> bool:
    probe = p / f"aarlab-probe-{os.getpid()}-{next(_names)}"
    try:
        probe.mkdir()
    except OSError:
        return False
    with contextlib.suppress(OSError):
        probe.rmdir()
    return True


def _try_v2(mounts, own) -> Support | None:
    mnt = next((m for m, t, _ in mounts if t == "cgroup2"), None)
    if mnt is None or "" not in own:
        return None
    base = Path(mnt) / own[""].lstrip("/")
    try:
        have = set((base / "cgroup.controllers").read_text().split())
    except OSError:
        return None
    if not {"pids", "memory"} <= have:
        return Support(None, reason=f"cgroup v2 at {base} offers {sorted(have) or 'nothing'}, "
                                    "not pids and memory")
    enable = [c for c in WANTED if c in have]
    try:
        enabled = set((base / "cgroup.subtree_control").read_text().split())
        missing = [c for c in enable if c not in enabled]
        if missing:
            (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
    except OSError as e:
        return Support(None, reason=f"cgroup v2: cannot delegate {enable} below {base} "
                                    f"({e.strerror}); run the lab in a cgroup of its own, e.g. "
                                    "systemd-run --scope -p Delegate=yes aarlab ...")
    if not _writable_dir(base):
        return Support(None, reason=f"cgroup v2: {base} is not writable by the lab")
    return Support("v2", {c: base for c in enable})


def _try_v1(mounts, own) -> Support:
    bases: dict[str, Path] = {}
    for c in WANTED:
        mnt = next((m for m, t, o in mounts if t == "cgroup" and c in o), None)
        if mnt is None or c not in own:
            continue
        base = Path(mnt) / own[c].lstrip("/")
        if _writable_dir(base):
            bases[c] = base
    if not {"pids", "memory"} <= set(bases):
        return Support(None, bases={}, reason="no writable cgroup (v2 or v1) with pids and "
                                              "memory for this process")
    return Support("v1", bases)


@functools.cache
def support() -> Support:
    """Detect once per process what cgroups can do here."""
    mounts, own = _mounts(), _own_paths()
    found = _try_v2(mounts, own)
    if found is None or not found.version:
        v1 = _try_v1(mounts, own)
        found = v1 if v1.version or found is None else Support(
            None, reason=f"{found.reason}; {v1.reason}")
    for base in set(found.bases.values()):
        _sweep(base)
    return found


def _sweep(base: Path) -> None:
    """Remove the empty cgroups a lab that was killed left behind (its pid is gone)."""
    with contextlib.suppress(OSError):
        for d in base.iterdir():
            parts = d.name.rsplit("-", 2)
            if (d.name.startswith("aarlab-") and len(parts) == 3 and parts[1].isdigit()
                    and not Path(f"/proc/{parts[1]}").exists()):
                with contextlib.suppress(OSError):
                    d.rmdir()


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _read_counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


class ExecCgroup:
    """The cgroup(s) of one exec: made with its limits, joined by the child, then removed."""

    def __init__(self, sup: Support, name: str, limits: Limits):
        self.support = sup
        leaf = f"aarlab-{name}-{os.getpid()}-{next(_names)}"
        self.dirs = {c: base / leaf for c, base in sup.bases.items()}
        self._made: list[Path] = []
        self._fds: list[int] = []
        try:
            for d in dict.fromkeys(self.dirs.values()):
                d.mkdir()
                self._made.append(d)
            self._limit(limits)
            for d in self._made:  # opened here as the lab: the child, maybe no longer root,
                self._fds.append(os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        except BaseException:
            self.close()
            raise

    def _limit(self, limits: Limits) -> None:
        d = self.dirs
        v2 = self.support.version == "v2"
        _write(d["pids"] / "pids.max", str(limits.pids))
        mem = str(limits.memory_cap)
        if v2:
            _write(d["memory"] / "memory.max", mem)
            with contextlib.suppress(OSError):  # no swap to spill into past the cap
                _write(d["memory"] / "memory.swap.max", "0")
        else:
            _write(d["memory"] / "memory.limit_in_bytes", mem)
            with contextlib.suppress(OSError):  # memsw exists only with swap accounting
                _write(d["memory"] / "memory.memsw.limit_in_bytes", mem)
        if limits.cpus is not None and "cpu" in d:
            quota = max(1000, int(limits.cpus * _PERIOD_US))
            if v2:
                _write(d["cpu"] / "cpu.max", f"{quota} {_PERIOD_US}")
            else:
                _write(d["cpu"] / "cpu.cfs_period_us", str(_PERIOD_US))
                _write(d["cpu"] / "cpu.cfs_quota_us", str(quota))

    @property
    def join_fds(self) -> tuple[int, ...]:
        """fds of ``cgroup.procs``; the child writes "0" (itself) to each before exec."""
        return tuple(self._fds)

    def breach(self) -> str | None:
        """Which limit the exec has hit, in words, or None."""
        d = self.dirs
        if _read_counter(d["pids"] / "pids.events", "max"):
            return "process limit reached (pids.max)"
        mem = d["memory"]
        if self.support.version == "v2":
            kills = _read_counter(mem / "memory.events", "oom_kill")
        else:
            kills = _read_counter(mem / "memory.oom_control", "oom_kill")
        if kills:
            return "memory limit reached: the kernel killed a process (out of memory)"
        return None

    def _pids(self) -> set[int]:
        out: set[int] = set()
        for dd in self._made:
            with contextlib.suppress(OSError, ValueError):
                out |= {int(x) for x in (dd / "cgroup.procs").read_text().split()}
        return out

    def close(self) -> None:
        """Kill whatever is left in the cgroup and remove it; if that takes more than a
        moment (a loaded machine, processes still exiting), finish in the background."""
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        for d in self._made:  # v2: kills every process at once, forks in flight included
            with contextlib.suppress(OSError):
                (d / "cgroup.kill").write_text("1")
        self._empty(2.0)
        if self._made:
            threading.Thread(target=self._empty, args=(120.0,), daemon=True,
                             name="aarlab-cgroup-cleanup").start()

    def _empty(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self._made and time.monotonic() < end:
            for pid in self._pids():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            for d in list(self._made):
                with contextlib.suppress(OSError):
                    d.rmdir()
                    self._made.remove(d)
            if self._made:
                time.sleep(0.02)
