"""The real sandbox: bubblewrap (Debian package ``bubblewrap``).

Each exec runs in fresh user, PID, network, IPC, UTS and cgroup namespaces with no capabilities,
no way to make further user namespaces, and a read-only root built from nothing:

    /usr, /bin, /lib*        the system, read-only
    /etc                     only loader and time-zone files, plus a passwd/group/hosts written here
    <python>, <venv>, <src>  the interpreter, the lab's virtualenv and aarlab's source, read-only,
                             at their host paths (the venv refers to them by absolute path)
    /kit                     the task kit, read-only
    /suite/<task>            a suite lab's other task kits, read-only
    /workspace               the researcher's own directory, writable, kept on the host
    /run/aarlab.sock         the lab's Unix socket: the only way out (the network namespace has
                             only a loopback that is down)
    /tmp                     a private size-limited tmpfs
    /proc, /dev              this sandbox's own processes; a minimal /dev, read-only but for
                             /dev/shm, a size-limited tmpfs

Nothing else of the host exists inside: not AARLAB_HOME, the answer keys, the store, other
workspaces, the repository or /root. ``--die-with-parent`` ties the sandbox to the lab process.

A lab running as root starts bwrap as an unprivileged uid of the sandbox's own (see
``hostuser``): inside it is uid 1000, on the host never root. That uid may not be able to reach
the host paths (AARLAB_HOME or a checkout under a 0700 home), so the lab opens each mounted path
itself and hands bwrap the fd (``--bind-fd``), and makes the lab socket connectable by the
sandbox group only.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
from pathlib import Path

from aarlab.sandbox.base import Launch, Sandbox, code_paths
from aarlab.sandbox.errors import SandboxError
from aarlab.sandbox.hostuser import sandbox_ids
from aarlab.sandbox.runner import STAGE_ROOT, Confine, child_setup
from aarlab.sandbox.spec import Limits, SandboxSpec

WORKSPACE = "/workspace"
KIT = "/kit"
SUITE = "/suite"
SOCKET = "/run/aarlab.sock"
INSIDE_UID = 1000

_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives")
_TOP_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def _namespace_flags(hostname: str) -> list[str]:
    return [
        "--unshare-all", "--unshare-user", "--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID),
        "--disable-userns", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
        "--hostname", hostname,
    ]


def _system_mounts() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _TOP_LINKS:
        host = Path("/") / name
        if host.is_symlink():  # merged /usr: /lib -> usr/lib
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    for name in _ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def _under_usr(p: Path) -> bool:
    return p == Path("/usr") or Path("/usr") in p.parents


def host_sources(spec: SandboxSpec, code: list[Path]) -> list[tuple[Path, str, bool]]:
    """(host path, path inside, writable) of every host path bind-mounted into the sandbox."""
    out = [(p, str(p), False) for p in [*code, *spec.extra_ro] if not _under_usr(p)]
    if spec.kit is not None:
        out.append((spec.kit.resolve(), KIT, False))
    out += [(p.resolve(), f"{SUITE}/{task}", False) for task, p in sorted(spec.suite.items())]
    out.append((spec.workspace.resolve(), WORKSPACE, True))
    if spec.socket is not None:
        out.append((spec.socket, SOCKET, False))  # connect() works on a read-only mount
    return out


def bwrap_argv(spec: SandboxSpec, cmd: list[str], cwd: str, code: list[Path],
               data_fds: dict[str, int], tmp_bytes: int,
               staged: dict[str, str] | None = None) -> list[str]:
    """The whole bwrap command line for one exec (pure: no I/O but reading /bin etc. links).

    ``staged`` maps a path inside to where its host path is staged (see ``runner._stage``).
    """
    staged = staged or {}
    lim = spec.limits
    args = [_bwrap_path(), *_namespace_flags(spec.name), *_system_mounts(),
            # The private /tmp first: binds below may live under the host's /tmp (a checkout
            # or venv in /tmp) and must land on top of it, not be hidden by it.
            "--proc", "/proc", "--dev", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    for dest, fd in data_fds.items():
        args += ["--ro-bind-data", str(fd), dest]
    for host, inside, writable in host_sources(spec, code):
        args += ["--bind" if writable else "--ro-bind", staged.get(inside, str(host)), inside]
    for dev in spec.devices:  # e.g. the GPU a Ray actor was given; nothing else of /dev
        args += ["--dev-bind", str(dev), str(dev)]
    # bwrap's /dev is an unbounded tmpfs: make it read-only, with only /dev/shm writable
    # (Python's multiprocessing needs it), size-capped like /tmp.
    args += ["--size", str(lim.shm_bytes), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    args += ["--remount-ro", "/", "--chdir", cwd, "--", *cmd]
    return args


# bwrap's --die-with-parent has a window while its inner init starts (it loses the parent-death
# signal when it switches uid), so a lab killed then would leave an orphaned sandbox. The
# lifeline closes it: the lab alone holds a pipe's write end; a watcher in the sandbox reads the
# read end and, at EOF (the lab is gone), kills everything in the sandbox's PID namespace (and
# only there: ``kill -1`` never leaves a namespace). bash, since sh cannot read fds above 9;
# ``env -u SHLVL`` so that the command's environment stays exactly the one we built.
_WATCH = '{{ read -r -u {fd} _; kill -KILL -1; }} & exec {fd}<&- /usr/bin/env -u SHLVL "$@"'


def lifeline_wrap(cmd: list[str], fd: int) -> list[str]:
    """``cmd`` run by bash that first starts the lifeline watcher on ``fd``; exec keeps the pid."""
    return ["/bin/bash", "-c", _WATCH.format(fd=fd), "aarlab-exec", *cmd]


def _etc_data(name: str) -> dict[str, bytes]:
    uid = INSIDE_UID
    return {
        "/etc/passwd": f"researcher:x:{uid}:{uid}:{name}:{WORKSPACE}:/bin/sh\n".encode(),
        "/etc/group": f"researcher:x:{uid}:\n".encode(),
        "/etc/hosts": f"127.0.0.1 localhost {name}\n".encode(),
    }


@functools.cache
def _bwrap_path() -> str:
    return shutil.which("bwrap") or "bwrap"


@functools.cache
def sandbox_available() -> tuple[bool, str]:
    """Whether bubblewrap can build our sandbox here, and if not, why (its own words)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False, "bwrap not found on PATH (Debian: apt-get install -y bubblewrap)"
    argv = [exe, *_namespace_flags("probe"), *_system_mounts(), "--proc", "/proc", "--dev",
            "/dev", "--tmpfs", "/tmp", "--remount-ro", "/", "--", "/usr/bin/true"]
    ids = sandbox_ids("probe")  # as the uid sandboxes will run as: it may lack user namespaces
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={},
                           preexec_fn=child_setup(Limits(), Confine(ids=ids)) if ids else None)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"bwrap did not run: {e}"
    if r.returncode != 0:
        why = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
        who = f" as an unprivileged uid ({ids[0]})" if ids else ""
        return False, f"bwrap cannot create the sandbox here{who}: {why}"
    return True, f"bubblewrap works ({exe})"


class BubblewrapSandbox(Sandbox):
    """A researcher's sandbox built by bubblewrap; see the module docstring for what is inside."""

    sandboxed = True

    def __init__(self, spec: SandboxSpec):
        super().__init__(spec)
        self._code = code_paths()
        if self.host_ids is not None:  # what it is shown, its uid must be able to read
            for p in [*([spec.kit] if spec.kit is not None else []), *spec.extra_ro,
                      *spec.suite.values()]:
                share_with_sandboxes(p.resolve(), self.host_ids[1])

    def _host_ids(self) -> tuple[int, int] | None:
        return sandbox_ids(self.spec.name)

    @property
    def workspace_path(self) -> str:
        return WORKSPACE

    @property
    def kit_path(self) -> str | None:
        return KIT if self.spec.kit is not None else None

    @property
    def socket_path(self) -> str | None:
        return SOCKET if self.spec.socket is not None else None

    @property
    def suite_paths(self) -> dict[str, str]:
        return {task: f"{SUITE}/{task}" for task in self.spec.suite}

    def _command(self, cmd: list[str], cwd: str) -> Launch:
        if self.spec.socket is not None and not self.spec.socket.exists():
            raise SandboxError(f"the lab socket {self.spec.socket} does not exist",
                               hint="start the lab server before running researchers")
        if self.spec.socket is not None and self.host_ids is not None:
            _open_socket_to(self.spec.socket, self.host_ids[1])
        stage: list[tuple[str, str]] = []
        staged: dict[str, str] = {}
        if self.host_ids is not None:  # the sandbox uid may not reach them by name
            for i, (host, inside, _) in enumerate(host_sources(self.spec, self._code)):
                staged[inside] = f"{STAGE_ROOT}/{i}"
                stage.append((str(host), staged[inside]))
        opened: list[int] = []
        try:
            data_fds: dict[str, int] = {}
            for dest, data in _etc_data(self.spec.name).items():
                r, w = os.pipe()  # a few bytes: fits in the pipe buffer, no reader needed yet
                opened += [r, w]
                os.write(w, data)
                os.close(w)
                opened.remove(w)
                data_fds[dest] = r
            life_r, life_w = os.pipe()
            opened += [life_r, life_w]
        except BaseException:
            for fd in opened:
                os.close(fd)
            raise
        argv = bwrap_argv(self.spec, lifeline_wrap(cmd, life_r), cwd, self._code, data_fds,
                          self.spec.limits.tmp_bytes, staged)
        return Launch(argv=argv, pass_fds=(*data_fds.values(), life_r),
                      hold_fds=(life_w,), stage=tuple(stage))


def _open_socket_to(sock: Path, gid: int) -> None:
    """Let the sandbox group, and it alone besides the lab, connect to the lab socket."""
    st = sock.lstat()
    if not stat.S_ISSOCK(st.st_mode):
        raise SandboxError(f"the lab socket {sock} is not a socket")
    if st.st_gid != gid:
        os.chown(sock, -1, gid, follow_symlinks=False)
    if stat.S_IMODE(st.st_mode) != 0o660:
        os.chmod(sock, 0o660)


def share_with_sandboxes(top: Path, gid: int) -> None:
    """Make a read-only mount (the task kit, ``extra_ro``) readable by the sandbox group.

    A lab with umask 077 writes its kits 0600. What is mounted is what researchers may see
    (``check_mounts`` keeps answer keys and the store out); nothing becomes writable, and
    what is readable by everyone already is left alone.
    """
    for _, dirnames, filenames, dfd in os.fwalk(top, follow_symlinks=False):
        for name in [".", *dirnames, *filenames]:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            need_other = stat.S_IROTH | (stat.S_IXOTH if is_dir else 0)
            if st.st_mode & need_other == need_other:
                continue  # readable by everyone already
            want = stat.S_IMODE(st.st_mode) | stat.S_IRGRP | (stat.S_IXGRP if is_dir else 0)
            if st.st_gid != gid:
                os.chown(name, -1, gid, dir_fd=dfd, follow_symlinks=False)
            os.chmod(name, want, dir_fd=dfd)
