"""The dashboard's numbers: its progress curve agrees with the lab's own ``progress_points``
(what the CLI and the report plot), the chart geometry is where it should be, the SE formula,
file tails, LLM costs and transcripts."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from webseed import ADMIN_H, TRANSCRIPT_TEXT

from aarlab.lab.status import latest_lab, member_rows, progress_points
from aarlab.lab.tables import LabEvent
from aarlab.researchers.llm import transcript
from aarlab.w2s.metrics import Estimate
from aarlab.web import queries
from aarlab.web.chart import LAB, Ref, best_so_far, progress_svg

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pts(*rows):
    return [{"time": T0 + timedelta(minutes=m), "researcher": r, "released_pgr": v}
            for m, r, v in rows]


def test_curve_from_rises_matches_the_labs_progress_points(web_lab):
    with web_lab.store.session() as s:
        lab = latest_lab(s, task="tweets")
        ids = [m["researcher_id"] for m in member_rows(s, lab)]
        from_cli = best_so_far(progress_points(s, lab))
        from_web = best_so_far(queries.rises(s, "tweets", ids))
    assert from_web == from_cli
    assert set(from_web) == {"ada", "bo", LAB}
    lab_values = [v for _, v in from_web[LAB]]
    assert lab_values == sorted(lab_values) and len(set(lab_values)) == len(lab_values)


def test_best_so_far_keeps_rises_only():
    curves = best_so_far(pts((0, "a", 0.1), (1, "b", 0.3), (2, "a", 0.05), (3, "a", None),
                             (4, "a", 0.4), (5, "b", 0.3)))
    assert [v for _, v in curves["a"]] == [0.1, 0.4]
    assert [v for _, v in curves["b"]] == [0.3]
    assert [v for _, v in curves[LAB]] == [0.1, 0.3, 0.4]
    assert curves[LAB][-1][0] == T0 + timedelta(minutes=4)


def test_chart_geometry():
    curves = best_so_far(pts((0, "a", 0.1), (5, "b", 0.2), (10, "a", 0.5)))
    chart = progress_svg(curves, [Ref(0.0, "weak", "ref-weak"), Ref(1.0, "ceiling", "ref-ceil")],
                         end=T0 + timedelta(minutes=20))
    left, top, right, bottom = chart.plot
    assert not chart.empty and chart.n_points == 2 + 1 + 3
    marks = [m for s in chart.series for m in s.markers]
    assert all(left <= m.x <= right and top <= m.y <= bottom for m in marks)
    ys = {r.label: y for y, r in chart.refs}
    assert ys["ceiling"] < ys["weak"]  # higher PGR is higher on screen
    a = next(s for s in chart.series if s.name == "a")
    first, second = a.markers
    assert second.x > first.x and second.y < first.y
    xy = [tuple(map(float, p.split(","))) for p in a.path.split()]
    assert xy[1] == (second.x, first.y)  # a step: flat until the rise, then up
    assert xy[-1][0] == right  # carried flat to the end time
    assert [s.name for s in chart.series][-1] == LAB and chart.series[-1].css == "lab"
    labels = [label for _, label in chart.y_ticks]
    assert "0" in labels and "1" in labels


def test_empty_chart():
    chart = progress_svg({}, [Ref(0.0, "weak", "ref-weak")])
    assert chart.empty and chart.n_points == 0


def test_released_se_is_binomial_plus_reference_uncertainty():
    exact = Estimate(0.7, 0.0, 3), Estimate(0.9, 0.0, 3)
    se = queries.released_se(0.5, 100, *exact)  # accuracy 0.8 on 100 rows, gap 0.2
    assert se == pytest.approx(math.sqrt(0.8 * 0.2 / 100) / 0.2)
    assert queries.released_se(0.5, 400, *exact) == pytest.approx(se / 2)
    noisy = Estimate(0.7, 0.01, 3), Estimate(0.9, 0.01, 3)
    assert queries.released_se(0.5, 100, *noisy) > se


def test_transcript_tail_reads_the_end_and_skips_a_cut_line(tmp_path):
    path = tmp_path / "cy-1.jsonl"
    pad = "x" * 500
    with open(path, "w") as f:
        for i in range(2000):  # ~1 MB: more than the tail the page reads
            f.write(json.dumps({"i": i, "pad": pad}) + "\n")
        f.write('{"i": 2000, "pad": "cut by a ki')
    got = transcript.tail(path, n=5)
    assert [e["i"] for e in got] == [1999, 1998, 1997, 1996, 1995]
    assert transcript.tail(tmp_path / "missing.jsonl", 5) == []
    (tmp_path / "link.jsonl").symlink_to(path)
    assert transcript.tail(tmp_path / "link.jsonl", 5) == []  # a link is never followed


def test_llm_costs_reach_the_overview_and_the_researcher_page(web_lab):
    with web_lab.store.session() as s:
        totals = queries.llm_totals(s)
    cy = web_lab.http.get("/researchers/cy").text
    assert "$0.02 · 1 sessions · 2 calls" in cy
    overview = web_lab.http.get("/").text
    assert "<b>$0.02</b><span>spent on LLMs</span>" in overview
    hours = 40 * 3 / 3600  # the lab ran 40 s with three researchers
    per_hour = sum(t.dollars for t in totals.values()) / hours
    assert f"<b>${per_hour:.2f}</b><span>$ per research-hour</span>" in overview
    assert "cy&#39;s notebook" in cy  # an LLM researcher's Markdown notebook


def test_transcript_is_for_the_admin_only(web_lab):
    public = web_lab.http.get("/researchers/cy").text
    assert TRANSCRIPT_TEXT not in public and "admin only" in public
    admin = web_lab.http.get("/researchers/cy", headers=ADMIN_H).text
    assert TRANSCRIPT_TEXT in admin and "→ shell" in admin


def test_member_table_matches_the_labs_own(web_lab):
    with web_lab.store.session() as s:
        lab = latest_lab(s, task="tweets")
        first = queries.members(s, lab)[0]["researcher_id"]
        savepoint = s.begin_nested()  # undone below: the seeded lab is shared by other tests
        for node in ("node-a", "node-b"):  # the latest placement is where it runs now
            s.add(LabEvent(researcher_id=first, kind="placement",
                           payload={"backend": "ray", "hostname": node}))
        s.flush()
        rows = queries.members(s, lab)
        assert rows == member_rows(s, lab)
        assert [m["researcher"] for m in rows] == ["ada", "bo", "cy"]
        assert (rows[0]["backend"], rows[0]["node"]) == ("ray", "node-b")
        assert (rows[1]["backend"], rows[1]["node"]) == ("local", "")
        savepoint.rollback()


def test_live_answers_only_the_version_when_nothing_changed(web_lab):
    first = web_lab.http.get("/api/live", params={"task": "tweets"}).json()
    assert first["changed"] and "counts" in first
    same = web_lab.http.get("/api/live", params={"task": "tweets", "since": first["version"]})
    assert same.json() == {"task": "tweets", "version": first["version"], "changed": False}
    stale = web_lab.http.get("/api/live", params={"task": "tweets", "since": "0.0.0"}).json()
    assert stale["changed"] and stale["counts"] == first["counts"]


def test_overview_shows_nodes_only_for_a_lab_on_ray(web_lab):
    assert "<th>node</th>" not in web_lab.http.get("/").text
    with web_lab.store.session() as s:
        lab = latest_lab(s, task="tweets")
        first = queries.members(s, lab)[0]["researcher_id"]
        event = LabEvent(researcher_id=first, kind="placement",
                         payload={"backend": "ray", "hostname": "gpu-node-7"})
        s.add(event)
    try:
        page = web_lab.http.get("/").text
        assert "<th>node</th>" in page and "<td>gpu-node-7</td>" in page
    finally:
        with web_lab.store.session() as s:
            s.delete(s.get(LabEvent, event.id))
