"""One researcher's home on a Ray node: its kit, its way to the lab server, its sandbox.

The lab wraps ``ResearcherNode`` in ``ray.remote`` and calls it through ``RemoteSandbox``. When
Ray restarts the actor (after a crash, a kill or a lost node) it runs ``__init__`` again with
the same arguments, so everything here is rebuilt from what the lab handed over: nothing the
researcher acknowledged lives only in this process. Submissions and findings are already in the
lab's store; the workspace (its notebook) is on this node's disk, or on a shared path.

Nothing here ever sees more than the researcher itself may: its own token, the kit (fetched
through the lab server's kit API or copied from a shared kit path, never an answer key), and
a Unix socket that forwards to the lab server.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
from pathlib import Path

from aarlab.config import Settings
from aarlab.lab.backends.forward import SocketForwarder
from aarlab.lab.backends.socket_dir import claim_socket_dir
from aarlab.sandbox.factory import make_sandbox
from aarlab.sandbox.runner import ExecResult
from aarlab.sandbox.spec import SandboxSpec


class ResearcherNode:
    def __init__(self, spec: dict, token: str, server: tuple[str, int], task: str,
                 node_settings: dict, kit_url: str | None = None,
                 allow_unsandboxed: bool = False):
        from aarlab.client import LabClient
        from aarlab.lab.kit_cache import copy_kit, fetch_kit

        settings = Settings(**node_settings)
        # The same directory on every restart of this researcher's actor (socket_dir.py).
        self._socket_dir = claim_socket_dir(token)
        self.forwarder = SocketForwarder(self._socket_dir / "lab.sock", *server)
        socket = self.forwarder.start()
        cache = settings.home / "cache" / "node-kits"
        if kit_url:
            kit = copy_kit(kit_url, cache, settings=settings)
        else:
            with LabClient(socket=socket, token=token) as client:
                kit = fetch_kit(client, task, cache)
        env = dict(spec.get("env") or {})
        devices = _gpu_devices()
        if devices and os.environ.get("CUDA_VISIBLE_DEVICES"):
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]  # Ray's choice
        full = SandboxSpec.model_validate(spec | {"kit": kit, "socket": socket, "env": env,
                                                  "devices": devices})
        self.sandbox = make_sandbox(full, allow_unsandboxed=allow_unsandboxed,
                                    settings=settings)

    def info(self) -> dict:
        import ray

        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                "hostname": platform.node(), "pid": os.getpid(),
                "gpus": [str(g) for g in ray.get_gpu_ids()],
                "sandboxed": self.sandbox.sandboxed, "python": self.sandbox.python,
                "workspace_path": self.sandbox.workspace_path,
                "kit_path": self.sandbox.kit_path, "socket_path": self.sandbox.socket_path,
                "kit_dir": str(self.sandbox.spec.kit)}

    def exec(self, cmd: list[str], input: str | bytes | None = None, cwd: str | None = None,
             env: dict[str, str] | None = None, timeout: float | None = None) -> ExecResult:
        return self.sandbox.exec(cmd, input=input, cwd=cwd, env=env, timeout=timeout)

    def read_file(self, path: str, text: bool = True, max_bytes: int | None = None
                  ) -> str | bytes:
        return self.sandbox.read_file(path, text=text, max_bytes=max_bytes)

    def write_file(self, path: str, contents: str | bytes) -> None:
        self.sandbox.write_file(path, contents)

    def terminate(self) -> None:
        self.sandbox.terminate()

    def close(self) -> None:
        self.sandbox.terminate()
        self.forwarder.stop()
        shutil.rmtree(self._socket_dir, ignore_errors=True)


def _gpu_devices() -> tuple[Path, ...]:
    """The NVIDIA device nodes to show a sandbox, when Ray gave this actor a GPU."""
    try:
        import ray

        if not ray.get_gpu_ids():
            return ()
    except Exception:  # noqa: BLE001 - outside an actor (tests): no GPUs were granted
        return ()
    return tuple(Path(p) for p in sorted(glob.glob("/dev/nvidia*")) if not os.path.isdir(p))
