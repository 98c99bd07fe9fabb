"""Fuzz every operation in the published OpenAPI document against a real server: no 5xx, ever.

Hypothesis draws an operation, path parameters (including traversal and odd unicode), query
parameters, a body (random JSON, or a valid submission with one mutation) and a credential
(none, garbage, a researcher's, the admin's). Whatever it sends, the answer is below 500.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

UNLIMITED = {"AARLAB_SUBMISSIONS_PER_HOUR": "1000000", "AARLAB_SUBMISSIONS_TOTAL": "1000000",
             "AARLAB_MAX_BODY_BYTES": "200000"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4),
    max_leaves=12)
path_values = st.one_of(st.text(max_size=30), st.sampled_from(
    ["tweets", "snli-pref", "1", "0", "-1", "99999999999999999999", "..", "../../etc/passwd",
     "alice", "%00", "tweets/../tweets"]), st.integers().map(str))


@pytest.fixture
def target(spawn_server, tiny_tweets, admin_headers):
    server = spawn_server(**UNLIMITED)
    with server.client(admin_headers["Authorization"].split()[1]) as admin:
        token = admin.add_researcher("fuzzer")["token"]
        doc = admin.get("/openapi.json")
    kit, _ = tiny_tweets
    valid = {i: True for i in kit.ids("test")}
    http = httpx.Client(transport=httpx.HTTPTransport(uds=str(server.sock)),
                        base_url="http://lab", timeout=30)
    creds = [None, "garbage", "aar_" + "x" * 43, token, admin_headers["Authorization"].split()[1]]
    ops = [(m.upper(), path, spec) for path, item in doc["paths"].items()
           for m, spec in item.items()]
    yield http, ops, creds, valid
    http.close()


def mutated_submission(valid: dict):
    keys = sorted(valid)
    return st.tuples(st.sampled_from(["drop", "add", "value", "none", "method", "snapshot"]),
                     st.sampled_from(keys), json_values).map(
        lambda t: _mutate(dict(valid), *t))


def _mutate(preds: dict, kind: str, key: str, value):
    body = {"predictions": preds}
    if kind == "drop":
        preds.pop(key)
    elif kind == "add":
        preds[f"{key}-extra"] = value
    elif kind == "value":
        preds[key] = value
    elif kind == "method":
        body["method"] = value
    elif kind == "snapshot":
        body["snapshot_id"] = value
    return body


def test_no_request_gets_a_5xx(target):
    http, ops, creds, valid = target

    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def fuzz(data):
        method, path, spec = data.draw(st.sampled_from(ops))
        url = path
        for p in spec.get("parameters", []):
            v = data.draw(path_values if p["in"] == "path" else st.one_of(
                st.text(max_size=10), st.integers().map(str)))
            if p["in"] == "path":
                url = url.replace("{" + p["name"] + "}", quote(v, safe="") or "x")
        query = {p["name"]: data.draw(st.text(max_size=10) | st.integers().map(str))
                 for p in spec.get("parameters", []) if p["in"] == "query"
                 and data.draw(st.booleans())}
        token = data.draw(st.sampled_from(creds))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs = {}
        if method == "POST":
            body = data.draw(st.one_of(json_values, mutated_submission(valid)))
            kwargs["content"] = data.draw(st.sampled_from([json.dumps(body).encode(),
                                                           json.dumps(body).encode()[:-1]]))
            headers["Content-Type"] = "application/json"
        r = http.request(method, url, params=query, headers=headers, **kwargs)
        assert r.status_code < 500, (method, url, r.status_code, r.text[:300])
        # A redirect (e.g. of a trailing slash) has no body; every JSON answer is checked.
        is_json = r.headers.get("content-type", "").startswith("application/json")
        if token != creds[-1] and path != "/openapi.json" and is_json:
            assert not any("final" in k for k in _keys(r.json())), r.text[:300]

    fuzz()


def _keys(obj) -> list[str]:
    """Every key of every object nested in a JSON value."""
    if isinstance(obj, dict):
        return [k.lower() for k in obj] + [k for v in obj.values() for k in _keys(v)]
    if isinstance(obj, list):
        return [k for v in obj for k in _keys(v)]
    return []
