"""The lab's server, run in a thread of the lab process: it dies with the lab, by design.

It listens on a Unix socket (the only way out of a local sandbox) and optionally on TCP: loopback
for a person's browser or the CLI, a cluster address for the nodes of a Ray backend.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn

from aarlab.config import Settings
from aarlab.server.app import create_app
from aarlab.store.db import Store


class ServerThread:
    def __init__(self, settings: Settings, store: Store, socket: Path,
                 tcp: list[tuple[str, int]] = ()):
        self.socket = socket
        app = create_app(settings, store)
        socket.parent.mkdir(parents=True, exist_ok=True)
        if socket.exists():
            socket.unlink()  # left by a lab that was killed
        self.servers = [uvicorn.Server(uvicorn.Config(app, uds=str(socket), log_level="warning",
                                                      access_log=False))]
        for host, port in tcp:  # a person's browser, or the nodes of a Ray cluster
            self.servers.append(uvicorn.Server(uvicorn.Config(
                app, host=host, port=port, log_level="warning", access_log=False)))
        self.threads = [threading.Thread(target=s.run, daemon=True, name="lab-server")
                        for s in self.servers]

    def start(self, timeout: float = 30) -> None:
        for t in self.threads:
            t.start()
        t0 = time.monotonic()
        while not all(s.started for s in self.servers):
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("the lab server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        for s in self.servers:
            s.should_exit = True
        for t in self.threads:
            t.join(timeout=10)
