"""The Ray backend: each researcher is a Ray actor whose sandbox runs on the node it lands on.

The lab (this process) keeps everything else: the orchestrator's loop, the LLM loops, the
scoring server, forum and store. Nodes reach the server over TCP through a forwarding socket in
each actor (see ``forward``); kits reach nodes through the server's kit API or a shared path.

Failures: an actor is created with Ray's ``max_restarts``, so Ray itself brings back an actor
that crashed, was killed, or lost its node (elsewhere, if the node is gone). The call in flight
fails; ``RemoteSandbox`` turns that into a failed exec, the orchestrator counts a restart and
starts the researcher again, exactly as when a local sandbox dies. An actor Ray will not bring
back is replaced by a new one. Nothing acknowledged is lost: it is in the lab's store already.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket as socketlib
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from aarlab.config import Settings
from aarlab.errors import AarlabError
from aarlab.lab.backends.base import Backend, BackendOptions
from aarlab.sandbox.base import Launch, Sandbox
from aarlab.sandbox.errors import SandboxError
from aarlab.sandbox.runner import ExecResult
from aarlab.sandbox.spec import SandboxSpec

NAMESPACE = "aarlab"
_READY_S = 180.0  # how long a researcher waits for a node with room (and its kit download)
_CALL_GRACE_S = 60.0  # beyond an exec's own timeout, before the actor is taken for lost
_CLOSE_S = 10.0  # how long the end of a lab waits for its actors to close themselves


def import_ray():
    _use_ray_token()  # before the import: Ray reads its auth mode once, when it loads
    try:
        import ray
    except ImportError:
        raise AarlabError("--backend ray: Ray is not installed",
                          hint="pip install 'aarlab[ray]' (ray==2.60.0)") from None
    return ray


def cluster_reachable(address: str | None) -> bool:
    """For ``--backend auto``: is there a Ray cluster to join (``RAY_ADDRESS`` or a local one)?"""
    try:
        ray = import_ray()
    except AarlabError:
        return False
    if ray.is_initialized():
        return True
    found = find_cluster(address or "auto")
    if found is None:
        return False
    try:
        _check_reachable(found)
    except AarlabError:
        return False
    return True


def find_cluster(address: str | None) -> str | None:
    """``address``, or for ``auto`` the cluster Ray itself would join: ``RAY_ADDRESS``, else
    the one the last ``ray start`` on this machine recorded. None when there is none."""
    if address not in (None, "auto"):
        return address
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    recorded = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    with contextlib.suppress(OSError):
        return recorded.read_text().strip() or None
    return None


class RayBackend(Backend):
    name = "ray"

    def __init__(self, options: BackendOptions, settings: Settings, *,
                 allow_unsandboxed: bool = False):
        self.ray = import_ray()
        self.options, self.settings = options, settings
        self.allow_unsandboxed = allow_unsandboxed
        self._owns_ray = False
        self._actors: dict[str, object] = {}
        self._info: dict[str, dict] = {}
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()
        self.host: str | None = None
        self._ports: dict[str, int] = {}  # member -> the TCP listener its forwarder reaches
        self.task: str | None = None
        self.lab_tag = "lab"

    # -- lifecycle -----------------------------------------------------------------------------
    def connect(self, researchers: int) -> None:
        ray, opts = self.ray, self.options
        if self.host is not None:
            return  # connected already (the CLI connects before it creates the lab)
        if not ray.is_initialized():
            # Ray's INFO lines would scroll the live table away; its warnings still show.
            kwargs: dict = {"namespace": NAMESPACE, "log_to_driver": False,
                            "logging_level": logging.WARNING}
            if opts.address is None:  # a Ray of our own, on this machine
                kwargs |= {"num_cpus": opts.ray_cpus or max(
                    researchers * math.ceil(opts.cpus_per_researcher), 1),
                    # Only small results cross it: Ray's default (30% of RAM) would be wasted.
                    "object_store_memory": 256 << 20, "include_dashboard": False}
            address = opts.address
            if address is not None:  # a cluster to join: fail fast when nothing answers there
                address = find_cluster(address)
                if address is None:
                    raise AarlabError("--address auto: no Ray cluster was started on this "
                                      "machine and RAY_ADDRESS is not set",
                                      hint="start one with `ray start --head`, or give its "
                                           "address")
                _check_reachable(address)
            try:
                # "local": a Ray of our own even when `ray start` left a cluster running here;
                # that one is joined only when asked for (--address auto).
                ray.init(address=address or "local", **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise AarlabError(f"--address: cannot join the Ray cluster at "
                                  f"{opts.address!r}: {e}",
                                  hint="start one with `ray start --head`, or drop --address "
                                       "to start Ray on this machine") from None
            self._owns_ray = True
        self.host = opts.advertise_host or ray.util.get_node_ip_address()

    def tcp_listeners(self, members: Sequence[str] = ()) -> list[tuple[str, int]]:
        """A listener per member: every node's forwarder reaches only its own researcher's, so
        a sandbox that holds all of its listener's connections blocks no other (the local
        backend's socket per sandbox, over TCP)."""
        first = self.options.server_port
        if first and first + len(members) - 1 > 65535:
            raise AarlabError(f"--server-port: {first} leaves no room for {len(members)} "
                              "researchers' listeners (researcher i listens on port + i)",
                              hint=f"use a port at most {65536 - len(members)}, or 0 for free "
                                   "ones")
        ports: list[int] = []
        for i in range(len(members)):
            port = first + i if first else _free_port(self.host)
            while port in ports:  # a port the kernel handed out twice in a row
                port = _free_port(self.host)
            ports.append(port)
        self._ports = dict(zip(members, ports, strict=True))
        return [(self.host, port) for port in ports]

    @property
    def ports(self) -> dict[str, int]:
        """Each member's TCP listener on the lab server (what its node's forwarder reaches)."""
        return dict(self._ports)

    def start(self, lab_dir: Path, task: str) -> None:
        self.task = task
        self.lab_tag = f"lab{lab_dir.name}"

    def close(self) -> None:
        handles = list(self._actors.values())
        # Each actor closes first (its sandbox, its forwarder, its socket directory); one
        # that does not answer in time is killed anyway, and the next claim on its node
        # sweeps what it left.
        with contextlib.suppress(Exception):
            closing = [h.close.remote() for h in handles]
            self.ray.wait(closing, num_returns=len(closing), timeout=_CLOSE_S)
        for handle in handles:
            with contextlib.suppress(Exception):
                self.ray.kill(handle)
        self._actors.clear()
        if self._owns_ray:
            self.ray.shutdown()

    # -- researchers ---------------------------------------------------------------------------
    def sandbox(self, member: str, spec: SandboxSpec, token: str) -> Sandbox:
        """The member's actor (created, or brought back by Ray) wrapped as a sandbox."""
        with self._lock:
            handle = self._actors.get(member)
        if handle is not None:
            try:
                return self._ready(member, handle)
            except AarlabError:
                raise
            except Exception:  # noqa: BLE001 - Ray will not restart it: a new actor replaces it
                with contextlib.suppress(Exception):
                    self.ray.kill(handle)
        handle = self._create(member, spec, token)
        return self._ready(member, handle)

    def placement(self, member: str) -> dict:
        info = self._info.get(member, {})
        return {"backend": self.name, **{k: info[k] for k in ("node_id", "node_ip", "hostname",
                                                              "pid", "gpus") if k in info}}

    def actor(self, member: str):
        """The member's actor handle (for tests and tools that kill one on purpose)."""
        return self._actors.get(member)

    def _create(self, member: str, spec: SandboxSpec, token: str):
        from aarlab.lab.backends.actor import ResearcherNode

        opts, ray = self.options, self.ray
        if member not in self._ports:
            raise AarlabError(f"researcher {member!r} has no listener on the lab server",
                              hint="the lab asks tcp_listeners(members) before any sandbox")
        gen = self._generation[member] = self._generation.get(member, 0) + 1
        node_settings = {"home": str(self.settings.home)}
        if self.settings.answer_key_root is not None:
            node_settings["answer_key_root"] = str(self.settings.answer_key_root)
        actor_class = ray.remote(ResearcherNode).options(
            name=f"{self.lab_tag}-{member}-{gen}", namespace=NAMESPACE,
            num_cpus=opts.cpus_per_researcher, num_gpus=opts.gpus_per_researcher,
            max_restarts=opts.max_actor_restarts, max_task_retries=0,
            max_concurrency=8,  # terminate() must run while exec() is in flight
            scheduling_strategy="SPREAD")
        handle = actor_class.remote(
            spec.model_dump(mode="json", exclude={"kit", "socket"}), token,
            (self.host, self._ports[member]), self.task, node_settings, opts.kit_url,
            self.allow_unsandboxed)
        with self._lock:
            self._actors[member] = handle
        return handle

    def _ready(self, member: str, handle) -> RemoteSandbox:
        """Wait until the actor is up (Ray may be restarting it or looking for room)."""
        ray = self.ray
        deadline = time.monotonic() + _READY_S
        while True:
            try:
                info = ray.get(handle.info.remote(), timeout=max(1.0, deadline - time.monotonic()))
                break
            except ray.exceptions.ActorUnavailableError:  # restarting: ask again shortly
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
            except ray.exceptions.GetTimeoutError:
                raise AarlabError(
                    f"researcher {member}: no Ray node took its actor within {_READY_S:.0f} s",
                    hint=f"it needs {self.options.cpus_per_researcher} CPU and "
                         f"{self.options.gpus_per_researcher} GPU; cluster has "
                         f"{ray.cluster_resources()}") from None
            except ray.exceptions.RayTaskError as e:  # the actor's __init__ failed on its node
                cause = e.cause if isinstance(e.cause, Exception) else e
                message = getattr(cause, "message", None) or str(cause)
                raise SandboxError(f"researcher {member}: its actor could not start: "
                                   f"{message}") from None
        self._info[member] = info
        return RemoteSandbox(handle, info, ray)


class RemoteSandbox(Sandbox):
    """A ``Sandbox`` whose commands and files are on the actor's node.

    The contract is the local one; an actor that dies mid-call (crash, kill, lost node) makes
    the exec fail with exit -9 and the reason on stderr, as a killed local sandbox would.
    """

    def __init__(self, handle, info: dict, ray):
        self.handle, self.info, self.ray = handle, info, ray
        self.sandboxed = bool(info["sandboxed"])

    @property
    def workspace_path(self) -> str:
        return self.info["workspace_path"]

    @property
    def kit_path(self) -> str | None:
        return self.info["kit_path"]

    @property
    def socket_path(self) -> str | None:
        return self.info["socket_path"]

    @property
    def python(self) -> str:
        return self.info["python"]

    def exec(self, cmd: list[str], *, input: str | bytes | None = None, cwd: str | None = None,
             env: dict[str, str] | None = None, timeout: float | None = None) -> ExecResult:
        ref = self.handle.exec.remote(cmd, input=input, cwd=cwd, env=env, timeout=timeout)
        wait = None if timeout is None else timeout + _CALL_GRACE_S
        t0 = time.monotonic()
        try:
            return self._get(ref, wait)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError) as e:
            where = self.info.get("hostname", "?")
            return ExecResult(returncode=-9, stdout="",
                              stderr=f"the researcher's Ray actor on {where} was lost: "
                                     f"{type(e).__name__}: {str(e)[:500]}\n",
                              duration_s=time.monotonic() - t0)

    def read_file(self, path: str, text: bool = True, max_bytes: int | None = None
                  ) -> str | bytes:
        return self._get(self.handle.read_file.remote(path, text=text, max_bytes=max_bytes),
                         _CALL_GRACE_S)

    def write_file(self, path: str, contents: str | bytes) -> None:
        self._get(self.handle.write_file.remote(path, contents), _CALL_GRACE_S)

    def terminate(self) -> None:
        with contextlib.suppress(Exception):
            self.handle.terminate.remote()

    def _get(self, ref, timeout: float | None):
        try:
            return self.ray.get(ref, timeout=timeout)
        except self.ray.exceptions.RayTaskError as e:
            # The node's own exception (FileNotFoundError, SandboxPathError…), not Ray's wrapper.
            if isinstance(e.cause, Exception):
                raise e.cause from None
            raise

    def _command(self, cmd: list[str], cwd: str) -> Launch:  # pragma: no cover - never local
        raise NotImplementedError("a remote sandbox runs its commands on its node")


def _use_ray_token() -> None:
    """Send this user's Ray token when joining a cluster. Ray turns token auth on by itself for
    a Ray it starts, but not when joining a given address, and a `ray start` cluster checks it."""
    if "ray" in sys.modules:
        return  # too late (Ray has read its mode), and this process's Ray is set up already
    token_file = Path.home() / ".ray" / "auth_token"  # where `ray start` keeps it
    if "RAY_AUTH_MODE" not in os.environ and (os.environ.get("RAY_AUTH_TOKEN")
                                              or token_file.is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"


def _check_reachable(address: str) -> None:
    """Fail in seconds on a wrong address: ``ray.init`` itself waits minutes for a GCS."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise AarlabError(f"--address: expected auto, HOST:PORT or ray://HOST:PORT, got "
                          f"{address!r}")
    try:
        socketlib.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise AarlabError(f"--address: nothing answers at {hostport} ({e.strerror or e})",
                          hint="start a cluster with `ray start --head`, and give the address "
                               "it prints") from None


def _free_port(host: str) -> int:
    with socketlib.socket(socketlib.AF_INET, socketlib.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
