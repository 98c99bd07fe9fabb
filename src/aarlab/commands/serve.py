"""``aarlab serve`` (the lab's HTTP server) and ``aarlab admin`` (researchers and tokens).

A sandbox is given ``--sandbox-socket`` (one each, when it is repeated), which serves the
researcher API only; the dashboard and the admin API are on TCP and ``--socket``, for a person
(roles: ``aarlab.server.app``).
"""

from __future__ import annotations

import ipaddress
import os
import socket as pysocket
import stat
from collections.abc import Callable
from pathlib import Path

import typer

from aarlab.config import Settings, get_settings
from aarlab.errors import AarlabError

from .ui import console, print_json

admin_app = typer.Typer(help="Register and revoke researchers.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(admin_app, name="admin")


def _settings(db: str | None) -> Settings:
    settings = get_settings()
    return settings.model_copy(update={"db_url": db}) if db else settings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unix_socket(path: Path) -> pysocket.socket:
    """A listening Unix socket at ``path``, owner-only; a stale socket file is replaced, a live
    one (a server answers on it: this one's other listener, or another lab's) never is."""
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise AarlabError(f"--socket: {path} exists and is not a socket",
                              hint="pick another path")
        probe = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            pass  # nobody listens: stale
        else:
            raise AarlabError(f"--socket: {path} is in use by a running server",
                              hint="stop that server, or pick another path")
        finally:
            probe.close()
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    return sock


def _resolved(path: Path) -> Path:
    """Where a socket at ``path`` would be: its directory resolved, its own name kept."""
    return Path(os.path.realpath(path.parent)) / path.name


def tcp_socket(host: str, port: int) -> pysocket.socket:
    family = pysocket.AF_INET6 if ":" in host else pysocket.AF_INET
    sock = pysocket.socket(family, pysocket.SOCK_STREAM)
    sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        raise AarlabError(f"--port: cannot listen on {host}:{port}: {e.strerror}",
                          hint="pick a free port") from None
    return sock


def serve(
    db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL (default: SQLite in HOME)."),
    host: str = typer.Option("127.0.0.1", help="TCP address; loopback only unless --allow-remote."),
    port: int | None = typer.Option(None, help="TCP port (default 8400 when no socket is given)."),
    socket: Path | None = typer.Option(
        None, "--socket", help="Unix socket for a person or the admin CLI: API and dashboard. "
                               "Never give it to a sandbox (use --sandbox-socket)."),
    sandbox_socket: list[Path] = typer.Option(
        None, "--sandbox-socket", help="Unix socket for sandboxes: the researcher API only, "
                                       "no dashboard and no admin route. Repeat it to give each "
                                       "sandbox one of its own: a sandbox that holds all of its "
                                       "listener's connections then blocks no other."),
    allow_remote: bool = typer.Option(False, help="Allow a non-loopback --host."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Run the lab server: API and dashboard on TCP/--socket, researcher API on --sandbox-socket."""
    import threading

    import uvicorn

    from aarlab import redact
    from aarlab.forum.tables import holds_snapshot
    from aarlab.scoring.service import ScoringService
    from aarlab.server.app import create_app
    from aarlab.server.connections import ListenerTag, guarded_h11
    from aarlab.store.db import Store

    if not _is_loopback(host) and not allow_remote:
        raise AarlabError(f"--host: {host} is not a loopback address",
                          hint="the scoring server holds the labels; pass --allow-remote to "
                               "expose it anyway")
    sandbox_sockets = list(sandbox_socket or [])
    # The same file however spelt (``..``, a symlinked directory such as /var/run -> /run).
    resolved = [_resolved(p) for p in sandbox_sockets]
    if socket is not None and _resolved(socket) in resolved:
        raise AarlabError("--sandbox-socket: must differ from --socket",
                          hint="a sandbox's socket serves the researcher API only")
    if len(set(resolved)) < len(resolved):
        raise AarlabError("--sandbox-socket: each must be a path of its own",
                          hint="one socket per sandbox, each listed once")
    settings = _settings(db)
    redact.register(settings.admin_token, "AARLAB_ADMIN_TOKEN")
    if not settings.admin_token:
        console.print("[yellow]no admin token configured (AARLAB_ADMIN_TOKEN): the admin API "
                      "is disabled[/]")
    store = Store(settings.database_url)
    scoring = ScoringService(settings, store, holds_snapshot)  # one for both apps

    apps: dict[str, object] = {}
    http = guarded_h11(settings.listener_connections, settings.request_timeout_s)

    def server(role: str, socks: list, name: str) -> tuple[uvicorn.Server, list]:
        """One listener (its own connection cap and token-less bucket) over ``socks``."""
        if role not in apps:
            apps[role] = create_app(settings, store, role=role)
            apps[role].state.scoring = scoring
        return uvicorn.Server(uvicorn.Config(ListenerTag(apps[role], name), http=http,
                                             log_level=log_level, access_log=False)), socks

    servers, where, person = [], [], []
    for path in sandbox_sockets:
        servers.append(server("researcher", [unix_socket(path)], str(path)))
        where.append(f"researcher API (for sandboxes) on unix:{path}")
    if socket is not None:
        person.append(unix_socket(socket))
        where.append(f"API and dashboard on unix:{socket}")
    if port is not None or (socket is None and not sandbox_sockets):
        person.append(tcp_socket(host, port if port is not None else 8400))
        where.append(f"API and dashboard on http://{host}:{port or 8400}/")
    if person:
        servers.append(server("all", person, "person"))
    else:
        where.append("no dashboard (add --port to serve it on loopback)")
    console.print(f"aarlab serving {'; '.join(where)} "
                  f"(store: {settings.database_url.split('://', 1)[0]})")
    # The last server runs here (it gets Ctrl-C); the other runs in a thread that stops with it.
    (main, main_socks), others = servers[-1], servers[:-1]
    threads = [threading.Thread(target=srv.run, kwargs={"sockets": socks}, daemon=True,
                                name="aarlab-serve") for srv, socks in others]
    for t in threads:
        t.start()
    try:
        main.run(sockets=main_socks)
    finally:
        for srv, _ in others:
            srv.should_exit = True
        for t in threads:
            t.join(timeout=10)
        for path in (socket, *sandbox_sockets):
            if path is not None and path.exists():
                path.unlink()


def _client(url: str | None, sock: str | None, settings: Settings):
    from aarlab.client import LabClient

    if not settings.admin_token:
        raise AarlabError("no admin token", hint="set AARLAB_ADMIN_TOKEN")
    return LabClient(base_url=url, socket=sock, token=settings.admin_token)


_URL = typer.Option(None, "--url", envvar="AARLAB_URL", help="Talk to this server…")
_SOCK = typer.Option(None, "--socket", envvar="AARLAB_SOCKET", help="…or this Unix socket.")
_DB = typer.Option(None, "--db", help="Without a server address: write to this store directly.")


def _admin_action(url: str | None, sock: str | None, db: str | None,
                  remote: Callable, local: Callable) -> dict:
    """Ask a running server (``remote(client)``), or write the store itself when no address is
    given (``local(session)``, whose audit row lands in the same transaction)."""
    settings = _settings(db)
    if url or sock:
        with _client(url, sock, settings) as c:
            return remote(c)
    from aarlab.server.app import open_store

    store = open_store(settings)
    with store.session() as s:
        return local(s)


@admin_app.command("add-researcher")
def add_researcher_cmd(
    name: str = typer.Argument(..., help="Lowercase name, unique in the lab."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    url: str | None = _URL, sock: str | None = _SOCK, db: str | None = _DB,
) -> None:
    """Register a researcher and print its id and bearer token (shown only once)."""
    from aarlab.store import audit
    from aarlab.store.identity import add_researcher

    def local(s) -> dict:
        r, token = add_researcher(s, name)
        audit.append(s, "researcher_added", r.id, name=r.name, via="cli")
        return {"id": r.id, "name": r.name, "token": token}

    out = _admin_action(url, sock, db, lambda c: c.add_researcher(name), local)
    if as_json:
        print_json(out)
    else:
        console.print(f"researcher {out['name']} (id {out['id']}); token (shown once):")
        print(out["token"])


@admin_app.command("revoke")
def revoke_cmd(
    ref: str = typer.Argument(..., help="Researcher name or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    url: str | None = _URL, sock: str | None = _SOCK, db: str | None = _DB,
) -> None:
    """Revoke a researcher's token; its submissions and posts stay."""
    from aarlab.store import audit
    from aarlab.store.identity import revoke

    def local(s) -> dict:
        r = revoke(s, ref)
        audit.append(s, "researcher_revoked", r.id, name=r.name, via="cli")
        return r.as_dict()

    out = _admin_action(url, sock, db, lambda c: c.revoke(ref), local)
    if as_json:
        print_json(out)
    else:
        console.print(f"revoked {out['name']} (id {out['id']})")


if __name__ == "__main__":
    # `python -m aarlab.commands.serve ...`: the server alone, without importing every command
    # group of the full CLI (the task commands pull in torch: seconds of start-up).
    typer.run(serve)
