"""One exec's sandbox-wide limits: its cgroup, the workspace quota, and what is said about them.

``ExecGuard`` is made for each exec, hands ``run_limited`` a ``Confine`` (uid, cgroups to join,
a watchdog), and afterwards records which limit stopped the exec (``ExecResult.limit`` and a
line on its stderr, which the lab keeps as the restart reason) and scrubs the workspace.

The workspace quota is enforced by measuring: RLIMIT_FSIZE bounds each file, and the watchdog
walks the workspace (every 0.2 s, or ten times as long as a walk takes) and stops the exec once
it holds more than ``workspace_bytes``. A writer can overshoot by what it writes between two
walks; ``tests/security/test_sandbox_limits.py`` measures it.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from aarlab.sandbox import cgroups, workspace
from aarlab.sandbox.errors import SandboxError
from aarlab.sandbox.hostuser import privileged
from aarlab.sandbox.runner import Confine, ExecResult
from aarlab.sandbox.spec import Limits

_MIN_WALK_INTERVAL_S = 0.2
_REPAIR_S = 2.0  # an exec in an unmeasurable workspace: time to remove the excess
_UNMEASURABLE_FILE_BYTES = 1 << 20
_LOOK_INTERVAL_S = 0.05
# Sandboxes run a little nicer than the lab, so that on a busy machine its server still
# answers and its watchdog still looks in time.
SANDBOX_NICE = 5


class ExecGuard:
    def __init__(self, name: str, root: Path, limits: Limits, ids: tuple[int, int] | None):
        self.root, self.limits, self.ids = root, limits, ids
        sup = cgroups.support()
        try:
            self.cgroup = cgroups.ExecCgroup(sup, name, limits) if sup.version else None
        except OSError as e:
            raise SandboxError(f"cannot make the sandbox's cgroup ({sup.version}): {e}",
                               hint="see aarlab.sandbox.limits_report()") from None
        # A workspace already over its quota may shrink but not grow (else it never recovers).
        unmeasurable = False
        try:
            start = workspace.usage(root, 4 * limits.workspace_files)
            self.max_bytes = max(limits.workspace_bytes, start.bytes)
            self.max_files = max(limits.workspace_files, start.files)
        except workspace.WalkLimit:
            # Too deep or too many entries to measure. Never "no limit" (a directory chain
            # deeper than the walk once made that permanent): this exec's files stay small
            # (RLIMIT_FSIZE 1 MiB: bwrap itself writes a few) and it is stopped once
            # `_REPAIR_S` pass with the workspace still unmeasurable, saying why; a repair
            # (`rm -rf` of the excess) fits in that time.
            self.max_bytes, self.max_files = limits.workspace_bytes, limits.workspace_files
            unmeasurable = True
        self.unmeasurable = unmeasurable
        self._started = time.monotonic()
        self._next_walk = time.monotonic() + _MIN_WALK_INTERVAL_S
        self._next_look = 0.0

    @property
    def confine(self) -> Confine:
        # Without a pids cgroup, a uid of the sandbox's own still caps its processes.
        nproc = self.limits.pids if self.cgroup is None and self.ids is not None else None
        return Confine(ids=self.ids, join_fds=self.cgroup.join_fds if self.cgroup else (),
                       nproc=nproc, watch=self.check, nice=SANDBOX_NICE,
                       file_bytes=_UNMEASURABLE_FILE_BYTES if self.unmeasurable else None)

    def check(self, force: bool = False) -> str | None:
        """Why the exec must stop now, or None. Cheap except every so often (the walk)."""
        now = time.monotonic()
        if now < self._next_look and not force:
            return None  # called once per chunk of output: look at most every 0.05 s
        self._next_look = now + _LOOK_INTERVAL_S
        if self.cgroup is not None:
            why = self.cgroup.breach()
            if why:
                return why
        if self.max_bytes is None or (now < self._next_walk and not force):
            return None
        try:
            used = workspace.usage(self.root, self.max_files)
        except workspace.WalkLimit as e:
            if self.unmeasurable and now - self._started < _REPAIR_S:
                return None  # unmeasurable from the start: time for a repair first
            return f"workspace quota: {e}"
        took = time.monotonic() - now
        self._next_walk = time.monotonic() + max(_MIN_WALK_INTERVAL_S, 10 * took)
        if used.bytes > self.max_bytes:
            return f"workspace quota: {used.bytes} bytes used, the limit is {self.max_bytes}"
        return None

    def finish(self, result: ExecResult) -> ExecResult:
        """The result with the limit it hit (checked once more now it is over)."""
        limit = result.limit
        if limit is None and not result.cancelled:
            limit = self.check(force=True)
        if limit is None and self.unmeasurable:
            try:
                workspace.usage(self.root, self.max_files)
            except workspace.WalkLimit as e:
                limit = (f"workspace quota: {e}, so files were capped at "
                         f"{_UNMEASURABLE_FILE_BYTES} bytes in this command; remove the excess "
                         "(rm -rf) to write again")
        if limit is not None:
            note = f"\n[aarlab] the sandbox stopped this command: {limit}\n"
            result = dataclasses.replace(result, limit=limit, stderr=result.stderr + note)
        return result

    def close(self) -> None:
        if self.cgroup is not None:
            self.cgroup.close()
        # Whatever the exec left, nothing on the host stays setuid, a device, or root's.
        workspace.scrub(self.root, self.ids, 4 * self.limits.workspace_files)


def limits_report() -> dict:
    """What confines a sandbox on this host, for the run output and the dashboard.

    ``ok`` is False when sandboxes are not bounded as a whole (no cgroups); ``warning`` then
    says so in one line.
    """
    sup = cgroups.support()
    report = {
        "cgroups": sup.version,
        "controllers": list(sup.controllers),
        "host_uid": "a uid of its own per sandbox" if privileged() else "the lab's own (not "
                                                                        "root)",
        "tmpfs_caps": True,
        "workspace_quota": "measured (watchdog) + RLIMIT_FSIZE per file",
        "ok": sup.version is not None,
        "warning": None,
    }
    if sup.version is None:
        fallback = ("processes are capped per sandbox uid (RLIMIT_NPROC)" if privileged()
                    else "processes are not capped at all")
        report["warning"] = (f"sandbox limits are per process only: {sup.reason}. Memory and "
                             f"CPU of a sandbox as a whole are unbounded; {fallback}.")
    return report
