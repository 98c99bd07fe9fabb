"""What the dashboard shows to whom, over real HTTP to the seeded server: no final-part score,
probe flag, hidden post or audit detail without the admin token; the sign-in cookie, CSRF and
redirect rules; researcher-written text escaped; clear messages for bad input."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select
from webseed import ADMIN, ADMIN_H, HOSTILE

from aarlab.config import Settings
from aarlab.store.audit import AuditEvent
from aarlab.web.auth import COOKIE, csrf_token

PUBLIC_PAGES = ["/", "/leaderboard", "/forum", "/researchers", "/researchers/ada",
                "/researchers/bo", "/audit", "/tasks/tweets"]


def fmt(v: float) -> str:
    return f"{v:.3f}"


def pages(lab) -> list[str]:
    subs = [x["id"] for xs in lab.submissions.values() for x in xs]
    return (PUBLIC_PAGES + [f"/forum/{i}" for i in lab.findings.values() if i !=
                            lab.findings["hidden"]] + [f"/submissions/{i}" for i in subs])


def public_numbers(html: str) -> set[str]:
    return set(re.findall(r"-?\d+\.\d{3}\b", html))


def test_no_final_part_score_in_any_public_page(web_lab):
    finals = {fmt(v) for v in web_lab.finals()}
    shown_to_admin: set[str] = set()
    for path in pages(web_lab):
        public = web_lab.http.get(path)
        assert public.status_code == 200, (path, public.text[:300])
        admin = web_lab.http.get(path, headers=ADMIN_H)
        assert admin.status_code == 200
        # A final score may coincide with a public number (a released PGR rounds the same):
        # only the values the admin page adds can be told apart, and none may leak.
        extra = (finals & public_numbers(admin.text)) - public_numbers(public.text)
        shown_to_admin |= extra
        for word in ("final PGR", "final-part", "num final", "probe of", ">feedback PGR<"):
            assert word not in public.text, (path, word)
        assert "Secret zebra plan" not in public.text, path
    assert shown_to_admin, "the admin pages should show final-part scores; the test saw none"


def test_live_json_has_no_final_or_probe_for_the_public(web_lab):
    public = web_lab.http.get("/api/live", params={"task": "tweets"})
    assert public.status_code == 200
    text = public.text
    assert "final" not in text and "probe" not in text and "accuracy" not in text
    body = public.json()
    assert body["counts"]["submissions"] >= 6 and body["version"]
    admin = web_lab.http.get("/api/live", params={"task": "tweets"}, headers=ADMIN_H).json()
    assert admin["counts"]["probes"] >= 1
    assert all("pgr" not in s for s in admin["submissions"])  # the activity list stays public


def test_hidden_finding_and_audit_details_are_admin_only(web_lab):
    hid = web_lab.findings["hidden"]
    assert web_lab.http.get(f"/forum/{hid}").status_code == 404
    assert "Secret zebra plan" in web_lab.http.get(f"/forum/{hid}", headers=ADMIN_H).text
    assert "Secret zebra plan" not in web_lab.http.get("/forum").text
    listed = web_lab.http.get("/forum", params={"hidden": "true"}).text  # ignored for the public
    assert "Secret zebra plan" not in listed
    assert "Secret zebra plan" in web_lab.http.get("/forum", params={"hidden": "true"},
                                                   headers=ADMIN_H).text

    public = web_lab.http.get("/audit").text
    assert "leaks a test id" not in public and "Sign in as admin" in public
    assert re.search(r"<b>\d+</b><span>probe</span>", public)  # counts are public
    admin = web_lab.http.get("/audit", headers=ADMIN_H).text
    assert "leaks a test id" in admin
    assert f'href="/submissions/{web_lab.probe_id}"' in admin  # evidence of the probe
    assert f'href="/forum/{hid}"' in admin
    assert "bo</a>: 0/4 left this hour" in admin  # bo spent his hourly budget


def test_admin_sign_in_sets_a_strict_httponly_cookie(web_lab):
    with httpx.Client(base_url=web_lab.url) as c:
        bad = c.post("/login", data={"token": "nope", "next": "/audit"})
        assert bad.status_code == 401 and "this is not the lab" in bad.text
        assert COOKIE not in bad.headers.get("set-cookie", "")
        ok = c.post("/login", data={"token": ADMIN, "next": "/audit"})
        assert ok.status_code == 303 and ok.headers["location"] == "/audit"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert "leaks a test id" in c.get("/audit").text  # the cookie now signs requests
        out = c.post("/logout")
        assert out.status_code == 303
        assert "leaks a test id" not in c.get("/audit").text


def test_token_in_url_is_exchanged_for_a_cookie_and_redirects_stay_local(web_lab):
    with httpx.Client(base_url=web_lab.url) as c:
        r = c.get("/login", params={"token": ADMIN, "next": "/leaderboard"})
        assert r.status_code == 303 and r.headers["location"] == "/leaderboard"
        assert ADMIN not in r.headers["location"]
        for evil in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
            r = c.post("/login", data={"token": ADMIN, "next": evil})
            assert r.headers["location"] == "/", evil
    with httpx.Client(base_url=web_lab.url) as c:
        r = c.get("/login", params={"token": "aar_forged"})
        assert r.status_code == 401 and COOKIE not in r.headers.get("set-cookie", "")


def test_forged_cookie_or_researcher_token_is_not_admin(web_lab):
    forged = httpx.Client(base_url=web_lab.url, cookies={COOKIE: ADMIN + "x"})
    with forged:
        assert "leaks a test id" not in forged.get("/audit").text
    r = web_lab.http.get("/audit", headers=web_lab.tokens["ada"])
    assert "leaks a test id" not in r.text


def test_hiding_needs_admin_and_csrf(web_lab):
    target = web_lab.post("bo", kind="hypothesis", title="Hide me please")["id"]
    as_researcher = web_lab.http.post(f"/forum/{target}/hide", data={"reason": "x"},
                                      headers=web_lab.tokens["ada"])
    assert as_researcher.status_code == 403
    with httpx.Client(base_url=web_lab.url, cookies={COOKIE: ADMIN}) as admin:
        no_csrf = admin.post(f"/forum/{target}/hide", data={"reason": "spam"})
        assert no_csrf.status_code == 403
        assert web_lab.http.get(f"/forum/{target}").status_code == 200
        ok = admin.post(f"/forum/{target}/hide",
                        data={"reason": "spam", "csrf": csrf_token(Settings(admin_token=ADMIN))})
        assert ok.status_code == 303
    assert web_lab.http.get(f"/forum/{target}").status_code == 404
    with web_lab.store.session() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.kind == "forum.hide")
                       .order_by(AuditEvent.id.desc())).first()
        assert ev.details["finding_id"] == target and ev.details["reason"] == "spam"


def test_researcher_text_is_escaped_and_pages_forbid_inline_script(web_lab):
    page = web_lab.http.get(f"/snapshots/{web_lab.snapshot_id}/files/README.md")
    assert page.status_code == 200
    assert HOSTILE not in page.text and "&lt;script&gt;window.__pwned" in page.text
    post = web_lab.http.get(f"/forum/{web_lab.findings['result']}")
    assert HOSTILE not in post.text and "&lt;img src=x onerror=" in post.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in re.sub(r'<script src="/static/app.js" defer></script>', "",
                                    post.text)


def test_static_serves_only_its_own_files(web_lab):
    assert web_lab.http.get("/static/app.js").status_code == 200
    for path in ("/static/routes.py", "/static/..%2Froutes.py", "/static/%2e%2e/queries.py",
                 "/static/../templates/base.html"):
        r = web_lab.http.get(path)
        assert r.status_code == 404, path
        assert "import" not in r.text


@pytest.mark.parametrize("path, field", [("/forum?kind=nonsense", "kind"),
                                         ("/forum?page=0", "page"),
                                         ("/leaderboard?task=../etc", "task"),
                                         ("/snapshots/not-a-sha", "snapshot_id")])
def test_bad_input_names_the_field(web_lab, path, field):
    r = web_lab.http.get(path)
    assert r.status_code == 422
    assert field in str(r.json()["detail"])


def test_unknown_things_are_clean_404_pages(web_lab):
    for path in ("/forum/999999", "/submissions/999999", "/researchers/nobody",
                 "/tasks/nope", f"/snapshots/{'0' * 64}"):
        r = web_lab.http.get(path)
        assert r.status_code == 404, path
        assert "Traceback" not in r.text and "<h1>Not found</h1>" in r.text


def test_leaderboard_shows_standard_errors(web_lab):
    html = web_lab.http.get("/leaderboard").text
    rows = re.findall(r'<td class="num">(-?\d\.\d{3})</td><td class="num">(\d\.\d{3})</td>',
                      html)
    assert len(rows) >= 2
    assert all(float(se) > 0 for _, se in rows)


def test_every_page_says_so_when_sandboxes_are_bounded_per_process_only(web_lab, monkeypatch):
    from aarlab.web import routes

    monkeypatch.setattr(routes, "_sandbox_warning", lambda: "per process only: no cgroups here")
    for path in ("/", "/leaderboard", "/researchers/ada"):
        html = web_lab.http.get(path).text
        assert "Sandbox limits:</b> per process only: no cgroups here" in html
    monkeypatch.setattr(routes, "_sandbox_warning", lambda: None)
    assert "Sandbox limits:" not in web_lab.http.get("/").text
