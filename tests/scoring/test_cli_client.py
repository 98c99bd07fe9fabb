"""The ``aarlab admin`` / ``aarlab serve`` commands and ``LabClient``'s error mapping."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aarlab.cli import app
from aarlab.client import AuthError, InvalidRequest, LabClient, LabError, NotFound
from aarlab.store.db import Store
from aarlab.store.identity import authenticate

runner = CliRunner()


def test_admin_add_researcher_json_then_revoke(tmp_path):
    db = f"sqlite:///{tmp_path / 'lab.db'}"
    r = runner.invoke(app, ["admin", "add-researcher", "alice", "--json", "--db", db])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["name"] == "alice" and out["id"] == 1 and out["token"].startswith("aar_")
    store = Store(db)
    with store.session() as s:
        assert authenticate(s, out["token"]).name == "alice"
        # Only the form a token is made in: no padded or truncated spelling of it.
        for other in (out["token"] + "\xa0", " " + out["token"], out["token"][:20],
                      out["token"] + "=", "aar_" + "x" * 300):
            assert authenticate(s, other) is None, other
    r = runner.invoke(app, ["admin", "revoke", "alice", "--json", "--db", db])
    assert r.exit_code == 0 and json.loads(r.stdout)["revoked"] is True
    with store.session() as s:
        assert authenticate(s, out["token"]) is None


@pytest.mark.parametrize("args, needle", [
    (["admin", "add-researcher", "Bad Name", "--db", "sqlite:///{tmp}/x.db"], "not allowed"),
    (["admin", "revoke", "ghost", "--db", "sqlite:///{tmp}/x.db"], "no researcher 'ghost'"),
    (["serve", "--host", "0.0.0.0"], "--host: 0.0.0.0 is not a loopback address"),
])
def test_cli_mistakes_are_one_line_errors(tmp_path, args, needle):
    from aarlab.errors import AarlabError

    r = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert isinstance(r.exception, AarlabError) and needle in str(r.exception)


def test_client_maps_refusals_to_errors_with_the_servers_message(spawn_server, admin_headers,
                                                                 tiny_tweets):
    server = spawn_server()
    admin_token = admin_headers["Authorization"].split()[1]
    with server.client(admin_token) as admin:
        token = admin.add_researcher("carol")["token"]
        with pytest.raises(InvalidRequest, match="already exists") as e:
            admin.add_researcher("carol")
        assert e.value.status == 409
    with server.client(token) as c:
        assert c.me()["name"] == "carol"
        assert {"snli-pref", "tweets"} <= {t["name"] for t in c.tasks()}
        with pytest.raises(NotFound, match="no served task 'nope'"):
            c.submit("nope", {})
        with pytest.raises(InvalidRequest, match="missing 160 of 160 test row ids"):
            c.submit("tweets", {})
    with server.client("aar_wrong") as c, pytest.raises(AuthError, match="unknown or revoked"):
        c.me()
    with pytest.raises(LabError, match="cannot reach the lab"), \
            LabClient(socket=server.sock.with_name("absent.sock")) as c:
        c.health()
