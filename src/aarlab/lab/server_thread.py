"""The lab's servers, run in threads of the lab process: they die with the lab, by design.

Two apps over one store. The researcher API (``role="researcher"``) listens on the Unix sockets
the sandboxes are given (their only way out; one each, so that a sandbox that fills its own
listener, ``aarlab.server.connections``, blocks no other) and on the TCP addresses the nodes of
a Ray backend use (one per researcher, for the same reason): no dashboard page and no admin
route there. The dashboard with the admin API
(``role="all"``) listens apart, for a person: on its own Unix socket, which no sandbox mounts,
and optionally on loopback TCP for a browser.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from aarlab.config import Settings
from aarlab.forum.tables import holds_snapshot
from aarlab.scoring.service import ScoringService
from aarlab.server.app import create_app
from aarlab.server.connections import ListenerTag, guarded_h11
from aarlab.store.db import Store


class ServerThread:
    def __init__(self, settings: Settings, store: Store, socket: Path | Sequence[Path],
                 tcp: list[tuple[str, int]] = (), dashboard_socket: Path | None = None,
                 dashboard_tcp: list[tuple[str, int]] = ()):
        """``socket``: the researcher API's Unix socket, or one per sandbox."""
        sockets = [socket] if isinstance(socket, Path) else list(socket)
        self.socket = sockets[0]
        self.dashboard_socket = dashboard_socket
        self.http = guarded_h11(settings.listener_connections, settings.request_timeout_s)
        researcher = create_app(settings, store, role="researcher")
        person = create_app(settings, store, role="all")
        # One scoring service for both: its lock orders a researcher's submissions whichever
        # listener they come through.
        scoring = ScoringService(settings, store, holds_snapshot)
        researcher.state.scoring = person.state.scoring = scoring
        self.servers = [self._unix(researcher, path) for path in sockets]
        for host, port in tcp:  # the nodes of a Ray cluster
            self.servers.append(self._tcp(researcher, host, port))
        if dashboard_socket is not None:
            self.servers.append(self._unix(person, dashboard_socket))
        for host, port in dashboard_tcp:  # a person's browser or CLI
            self.servers.append(self._tcp(person, host, port))
        self.threads = [threading.Thread(target=s.run, daemon=True, name="lab-server")
                        for s in self.servers]

    def _unix(self, app, path: Path) -> uvicorn.Server:  # noqa: ANN001
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()  # left by a lab that was killed
        return uvicorn.Server(uvicorn.Config(ListenerTag(app, str(path)), uds=str(path),
                                             http=self.http,
                                             log_level="error", access_log=False))

    def _tcp(self, app, host: str, port: int) -> uvicorn.Server:  # noqa: ANN001
        return uvicorn.Server(uvicorn.Config(ListenerTag(app, f"{host}:{port}"), host=host,
                                             port=port, http=self.http,
                                             log_level="error", access_log=False))

    def start(self, timeout: float = 30) -> None:
        for t in self.threads:
            t.start()
        t0 = time.monotonic()
        while not all(s.started for s in self.servers):
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("the lab server did not start")
            time.sleep(0.05)
        if self.dashboard_socket is not None:
            self.dashboard_socket.chmod(0o600)  # uvicorn leaves it 0666: a person's, not anyone's

    def stop(self) -> None:
        for s in self.servers:
            s.should_exit = True
        for t in self.threads:
            t.join(timeout=10)
