"""Page data for the dashboard: read-only queries over the store, one function per page.

Every function takes ``admin``. Only when it is true does a function read final-part scores,
probe flags, hidden posts or audit details: a public page cannot show them by a template
mistake, because they are never in its data. Where a service already answers a question (the
scoring leaderboard, forum search, the lab's member table) we call it, so the dashboard, the API
and the CLI agree.

No function here opens a file a sandbox can write: a researcher's notebook is what it published
to the lab (``aarlab.lab.notebooks``, checked and kept in the store), never its workspace.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aarlab.clock import as_utc
from aarlab.forum import search, service, snapshots
from aarlab.forum.service import Viewer
from aarlab.forum.tables import Finding, FindingTag
from aarlab.kits.kit import TaskKit
from aarlab.lab import notebooks
from aarlab.lab.status import latest_lab
from aarlab.lab.tables import LabEvent, LabMember, LabRun
from aarlab.researchers.llm import accounting, transcript
from aarlab.researchers.llm.tables import LlmSession
from aarlab.scoring.service import (
    ScoringService,
    UnknownTask,
    admin_extra,
    is_built,
    kit_dir,
    public_view,
)
from aarlab.scoring.tables import RELEASED_PGR, Submission
from aarlab.store import audit
from aarlab.store.identity import Researcher
from aarlab.w2s.metrics import Estimate
from aarlab.web.chart import LAB, Ref, best_so_far

RECENT = 8
TIMELINE = 200
NOTEBOOK_TAIL = 30
TRANSCRIPT_TAIL = 60


# --- science ----------------------------------------------------------------------------------


def released_se(pgr: float, n: int, weak: Estimate, ceiling: Estimate) -> float:
    """Standard error of one released feedback-part PGR.

    The accuracy behind ``pgr`` is binomial over the ``n`` feedback rows; like
    ``aarlab.w2s.metrics.pgr_estimate``, the SEs of the weak and ceiling reference means are
    propagated with the delta method on (t - w) / (c - w).
    """
    gap = ceiling.mean - weak.mean
    acc = min(1.0, max(0.0, weak.mean + pgr * gap))
    base = math.sqrt(acc * (1 - acc) / max(1, n)) / abs(gap)
    d_weak = (acc - ceiling.mean) / gap**2
    d_ceil = -(acc - weak.mean) / gap**2
    return math.sqrt(base**2 + (d_weak * weak.se) ** 2 + (d_ceil * ceiling.se) ** 2)


# --- scope: which task, which lab, whose work -------------------------------------------------


@dataclass
class Scope:
    task: str | None
    lab: LabRun | None
    ids: list[int] | None  # the lab's researchers; None = everyone
    # The served build's fingerprint: a rebuilt task's old submissions were scored on other
    # rows, so they are not shown against this build's references (None: task not served).
    build: str | None = None

    def where(self, column) -> list:  # noqa: ANN001
        return [] if self.ids is None else [column.in_(self.ids)]

    def on_task(self) -> list:
        """Conditions for this task's submissions of the served build, by these researchers."""
        return [Submission.task == self.task, *self.where(Submission.researcher_id),
                *([Submission.build_fingerprint == self.build] if self.build else [])]


def task_names(s: Session, scoring: ScoringService) -> list[str]:
    seen = set(scoring.served_names())
    seen.update(s.scalars(select(Submission.task).distinct()))
    return sorted(seen)


def pick_task(s: Session, scoring: ScoringService, requested: str | None) -> str | None:
    """The requested task, else the latest lab's, else the first one with a kit or scores."""
    if requested:
        return requested
    lab = latest_lab(s)
    if lab is not None:
        return lab.task
    names = task_names(s, scoring)
    return names[0] if names else None


def _served_build(scoring: ScoringService, task: str) -> str | None:
    try:
        return scoring.task(task).fingerprint
    except UnknownTask:  # scores stored, task not served here: no build to tell apart
        return None


def scope_for(s: Session, task: str | None, scoring: ScoringService | None = None) -> Scope:
    build = _served_build(scoring, task) if task and scoring is not None else None
    lab = latest_lab(s, task=task) if task else None
    if lab is None:
        return Scope(task, None, None, build)
    ids = s.scalars(select(LabMember.researcher_id).where(LabMember.lab_id == lab.id)
                    .order_by(LabMember.id))
    return Scope(task, lab, list(ids), build)


def members(s: Session, lab: LabRun) -> list[dict]:
    """``aarlab.lab.status.member_rows`` (the CLI's live table) in five grouped queries.

    ``member_rows`` asks three questions per member; with twenty researchers and ten thousand
    submissions that alone is most of a page's time budget. A test checks both agree.
    """
    rows = s.execute(select(LabMember, Researcher.name).join(
        Researcher, Researcher.id == LabMember.researcher_id).where(
        LabMember.lab_id == lab.id).order_by(LabMember.id)).all()
    ids = [m.researcher_id for m, _ in rows]
    exps = dict(s.execute(select(LabEvent.researcher_id, func.count()).where(
        LabEvent.researcher_id.in_(ids), LabEvent.kind == "experiment")
        .group_by(LabEvent.researcher_id)).all())
    subs = {rid: (n, best) for rid, n, best in s.execute(
        select(Submission.researcher_id, func.count(), func.max(RELEASED_PGR))
        .where(Submission.researcher_id.in_(ids), Submission.task == lab.task)
        .group_by(Submission.researcher_id))}
    ideas, placed = (_latest_payloads(s, ids, kind) for kind in ("idea", "placement"))
    return [{
        "researcher": name, "researcher_id": m.researcher_id, "direction": m.direction,
        "policy": m.policy, "status": m.status, "restarts": m.restarts,
        "sandboxed": m.sandboxed, "experiments": exps.get(m.researcher_id, 0),
        "submissions": subs.get(m.researcher_id, (0, None))[0],
        "best_released_pgr": subs.get(m.researcher_id, (0, None))[1],
        "current_idea": (ideas.get(m.researcher_id) or {}).get("spec", ""),
        "backend": placed.get(m.researcher_id, {}).get("backend", "local"),
        "node": (placed.get(m.researcher_id, {}).get("hostname")
                 or placed.get(m.researcher_id, {}).get("node_ip") or ""),
    } for m, name in rows]


def _latest_payloads(s: Session, ids: list[int], kind: str) -> dict[int, dict]:
    """Each researcher's latest event payload of ``kind``, in one query."""
    latest = (select(func.max(LabEvent.id)).where(LabEvent.researcher_id.in_(ids),
                                                   LabEvent.kind == kind)
              .group_by(LabEvent.researcher_id))
    return {rid: payload or {} for rid, payload in s.execute(
        select(LabEvent.researcher_id, LabEvent.payload).where(LabEvent.id.in_(latest)))}


# --- shared pieces ----------------------------------------------------------------------------


def references(scoring: ScoringService, task: str | None, admin: bool = False) -> dict | None:
    """Weak and ceiling reference accuracies, the feedback part's size and the best baseline.

    ``None`` when the task has no answer key here (scores stored, task not served).
    """
    if not task:
        return None
    try:
        t = scoring.task(task)
    except UnknownTask:
        return None
    # The public sees the feedback half only: with the test means and both sizes beside it,
    # the final half's weak and ceiling accuracies were one subtraction away.
    parts = ("test", "feedback", "final") if admin else ("feedback",)
    out = {"n_feedback": int(t.scorer.masks["feedback"].sum()), "n_test": t.n,
           "weak": {p: t.scorer.weak[p] for p in parts},
           "ceiling": {p: t.scorer.ceiling[p] for p in parts},
           "baseline": None, "baselines": []}
    path = t.scorer.key.dir / "baselines.json"  # written by `aarlab baseline`; never made here
    try:
        text = path.read_text()
    except OSError:  # none yet
        text = ""
    out["baselines"] = _baselines(text, admin)
    out["baseline"] = out["baselines"][0] if out["baselines"] else None
    return out


def _baselines(text: str, admin: bool) -> list[dict]:
    """The default-parameter rows ``aarlab baseline`` caches (``lab.baselines.BaselineCache``;
    never made here), best feedback-half PGR first; each row's PGR is its feedback half's (the
    final half only for the admin). A cache in a form this page does not know shows none: it
    must never take a page down (the ``{"best", "all"}`` form read here before made every page
    of a task with a cache a 500)."""
    try:
        rows = (json.loads(text).get("defaults") or []) if text else []
        out = [{"method": str(r["method"]), "pgr": r["pgr_feedback"]}
               | ({"pgr_final": r.get("pgr_final")} if admin else {})
               for r in rows if isinstance(r.get("pgr_feedback"), dict)
               and isinstance(r["pgr_feedback"].get("mean"), int | float)]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    return sorted(out, key=lambda r: -r["pgr"]["mean"])


def chart_refs(refs: dict | None) -> list[Ref]:
    lines = [Ref(0.0, "weak floor (PGR 0)", "ref-weak"), Ref(1.0, "ceiling (PGR 1)", "ref-ceil")]
    if refs and refs["baseline"]:
        b = refs["baseline"]
        lines.append(Ref(b["pgr"]["mean"], f"best classical: {b['method']} (feedback PGR)",
                         "ref-base"))
    return lines


def rises(s: Session, task: str, ids: list[int] | None, build: str | None = None) -> list[dict]:
    """Submissions that raised their author's released PGR, in time order.

    Same shape as ``aarlab.lab.status.progress_points`` and, fed to ``best_so_far``, the same
    curves (a test checks it), but it reads only the rows where a curve moves, so the overview
    stays fast with many thousands of submissions.
    """
    q = (select(Submission.created_at, Researcher.name, Submission.released_pgr, Submission.id)
         .join(Researcher, Researcher.id == Submission.researcher_id)
         .where(Submission.task == task, Submission.new_best)
         .order_by(Submission.created_at, Submission.id))
    if ids is not None:
        q = q.where(Submission.researcher_id.in_(ids))
    if build is not None:  # the served build's only (``Scope.build``)
        q = q.where(Submission.build_fingerprint == build)
    return [{"time": t, "researcher": name, "released_pgr": v, "submission_id": i,
             "is_probe": False} for t, name, v, i in s.execute(q)]


def llm_totals(s: Session, ids: list[int] | None = None) -> dict:
    """``{researcher_id: Totals}`` from the LLM researchers' ledger."""
    return accounting.totals(s, ids)


def llm_sessions(s: Session, researcher_id: int) -> list:
    return list(s.scalars(select(LlmSession).where(LlmSession.researcher_id == researcher_id)
                          .order_by(LlmSession.id.desc()).limit(20)))


def _recent_submissions(s: Session, sc: Scope, admin: bool, limit: int = RECENT) -> list[dict]:
    q = (select(Submission, Researcher.name).join(Researcher)
         .where(*sc.on_task()).order_by(Submission.id.desc()).limit(limit))
    return [_sub_view(sub, name, admin) for sub, name in s.execute(q)]


def _sub_view(sub: Submission, name: str, admin: bool) -> dict:
    v = public_view(sub, name) | {"created_at": as_utc(sub.created_at)}
    return v | (admin_extra(sub) if admin else {})


def _recent_findings(s: Session, sc: Scope, admin: bool, limit: int = RECENT) -> list[dict]:
    q = (select(Finding.id, Finding.kind, Finding.title, Finding.created_at, Researcher.name,
                Finding.hidden)
         .join(Researcher, Researcher.id == Finding.author_id)
         .where(*sc.where(Finding.author_id))
         .order_by(Finding.id.desc()).limit(limit))
    if not admin:
        q = q.where(Finding.hidden.is_(False))
    return [{"id": i, "kind": k, "title": t, "created_at": as_utc(c), "author": a, "hidden": h}
            for i, k, t, c, a, h in s.execute(q)]


def _count(s: Session, column, *where) -> int:  # noqa: ANN001
    return int(s.scalar(select(func.count()).select_from(column.table).where(*where)) or 0)


# --- pages ------------------------------------------------------------------------------------


def version(s: Session) -> str:
    """Changes whenever a submission, finding or telemetry event is added (three index reads)."""
    return ".".join(str(s.scalar(select(func.max(c))) or 0)
                    for c in (Submission.id, Finding.id, LabEvent.id))


def live(s: Session, sc: Scope, admin: bool, since: str | None = None) -> dict:
    """Counts, the lab's best and the latest activity: what the overview polls for.

    With ``since`` equal to the current version nothing changed, and only that is answered:
    a page left open all day costs the server three index reads per poll.
    """
    now = version(s)
    if since == now:
        return {"task": sc.task, "version": now, "changed": False}
    subs = _count(s, Submission.id, *sc.on_task())
    # Every finding posted, hidden ones included (as the lab report counts them): the count
    # comes from the author index alone, and the audit page already says how many were hidden.
    findings = _count(s, Finding.id, *sc.where(Finding.author_id))
    experiments = _count(s, LabEvent.id, LabEvent.kind == "experiment",
                         *sc.where(LabEvent.researcher_id))
    best = s.scalar(select(func.max(RELEASED_PGR)).where(*sc.on_task()))
    out = {"task": sc.task, "version": now, "changed": True,
           "counts": {"experiments": experiments, "submissions": subs, "findings": findings},
           "best_released_pgr": best,
           "submissions": _recent_submissions(s, sc, admin=False),
           "findings": _recent_findings(s, sc, admin)}
    if admin:
        out["counts"]["probes"] = _count(s, Submission.id, Submission.is_probe, *sc.on_task())
    return out


def progress(s: Session, scoring: ScoringService, sc: Scope, admin: bool) -> dict:
    """The progress curves and their reference lines (the chart alone, for live refreshes)."""
    refs = references(scoring, sc.task, admin)
    curves = best_so_far(rises(s, sc.task, sc.ids, sc.build)) if sc.task else {}
    return {"refs": refs, "chart_refs": chart_refs(refs), "curves": curves}


def overview(s: Session, scoring: ScoringService, task: str | None, admin: bool) -> dict:
    sc = scope_for(s, task, scoring)
    data = live(s, sc, admin) | progress(s, scoring, sc, admin)
    curves = data["curves"]
    team = members(s, sc.lab) if sc.lab is not None else []
    hours = wall_h = None
    if sc.lab is not None:
        wall_h = sc.lab.elapsed_s / 3600
        hours = wall_h * max(1, len(team))  # researcher-hours: each member ran that long
    costs = llm_totals(s, sc.ids)
    dollars = None if costs is None else sum(c.dollars for c in costs.values())
    return data | {
        "lab": sc.lab, "members": team, "research_hours": hours, "wall_hours": wall_h,
        "dollars": dollars,
        "dollars_per_hour": dollars / hours if dollars is not None and hours else None,
        "lab_best": curves[LAB][-1][1] if LAB in curves else None,
    }


def leaderboard(s: Session, scoring: ScoringService, task: str, admin: bool) -> dict:
    """The scoring service's own leaderboard (admin adds final PGR and gap), with SEs."""
    board = scoring.leaderboard(s, task, admin=admin)
    refs = references(scoring, task)
    for row in (*board["by_researcher"], *board["by_method"]):
        row["se"] = (released_se(row["best_released_pgr"], refs["n_feedback"],
                                 refs["weak"]["feedback"], refs["ceiling"]["feedback"])
                     if refs else None)
    return board | {"refs": refs}


def forum(s: Session, query: search.Query, admin: bool) -> dict:
    items, total = service.list_findings(s, Viewer(is_admin=admin), query)
    # The filters list only what the viewer may see: a hidden finding's author, task and tags
    # are the admin's to know.
    shown = Finding.id.is_not(None) if admin else ~Finding.hidden
    authors = s.scalars(select(Researcher.name).where(
        Researcher.id.in_(select(Finding.author_id).where(shown).distinct()))
        .order_by(Researcher.name))
    tasks = s.scalars(select(Finding.task).where(Finding.task.is_not(None), shown).distinct())
    tags = s.execute(select(FindingTag.tag, func.count())
                     .where(FindingTag.finding_id.in_(select(Finding.id).where(shown)))
                     .group_by(FindingTag.tag)
                     .order_by(func.count().desc(), FindingTag.tag).limit(30))
    return {"findings": items, "total": total, "authors": list(authors),
            "tasks": sorted(tasks), "tags": [t for t, _ in tags]}


def finding(s: Session, finding_id: int, admin: bool) -> dict:
    detail = service.get_finding(s, Viewer(is_admin=admin), finding_id)
    sub = submission(s, detail.submission_id, admin) if detail.submission_id else None
    snap = (snapshots.views(s, [snapshots.get(s, detail.snapshot_id)])[0]
            if detail.snapshot_id else None)
    return {"f": detail, "submission": sub, "snapshot": snap}


def submission(s: Session, submission_id: int, admin: bool) -> dict | None:
    row = s.execute(select(Submission, Researcher.name).join(Researcher)
                    .where(Submission.id == submission_id)).first()
    if row is None:
        return None
    cited = select(Finding.id, Finding.title).where(Finding.submission_id == submission_id)
    if not admin:
        cited = cited.where(Finding.hidden.is_(False))
    return _sub_view(*row, admin) | {"findings": [{"id": i, "title": t}
                                                  for i, t in s.execute(cited)]}


def researchers(s: Session, admin: bool) -> list[dict]:
    subs = {rid: (n, best) for rid, n, best in s.execute(
        select(Submission.researcher_id, func.count(), func.max(RELEASED_PGR))
        .group_by(Submission.researcher_id))}
    posts = select(Finding.author_id, func.count()).group_by(Finding.author_id)
    if not admin:
        posts = posts.where(Finding.hidden.is_(False))
    findings = dict(s.execute(posts).all())
    exps = dict(s.execute(select(LabEvent.researcher_id, func.count())
                          .where(LabEvent.kind == "experiment")
                          .group_by(LabEvent.researcher_id)).all())
    latest = select(func.max(LabMember.id)).group_by(LabMember.researcher_id)
    members = {m.researcher_id: m for m in s.scalars(select(LabMember).where(
        LabMember.id.in_(latest)))}
    rows = []
    for r in s.scalars(select(Researcher).order_by(Researcher.name)):
        m = members.get(r.id)
        n, best = subs.get(r.id, (0, None))
        rows.append({"name": r.name, "active": r.active, "submissions": n,
                     "best_released_pgr": best, "findings": findings.get(r.id, 0),
                     "experiments": exps.get(r.id, 0),
                     "direction": m.direction if m else None,
                     "status": m.status if m else None, "policy": m.policy if m else None})
    return rows


def researcher(s: Session, scoring: ScoringService, name: str, admin: bool) -> dict | None:
    r = s.scalar(select(Researcher).where(Researcher.name == name))
    if r is None:
        return None
    member = s.scalar(select(LabMember).where(LabMember.researcher_id == r.id)
                      .order_by(LabMember.id.desc()).limit(1))
    lab = s.get(LabRun, member.lab_id) if member else None
    subs = [_sub_view(sub, r.name, admin) for sub in s.scalars(
        select(Submission).where(Submission.researcher_id == r.id)
        .order_by(Submission.id.desc()).limit(TIMELINE))]
    events = [{"kind": e.kind, "created_at": as_utc(e.created_at), "payload": e.payload}
              for e in s.scalars(select(LabEvent).where(LabEvent.researcher_id == r.id)
                                 .order_by(LabEvent.id.desc()).limit(TIMELINE))]
    timeline = sorted([{"type": "submission", "at": x["created_at"], "sub": x} for x in subs]
                      + [{"type": "event", "at": e["created_at"], "event": e} for e in events],
                      key=lambda x: x["at"], reverse=True)[:TIMELINE]
    posts = select(Finding).where(Finding.author_id == r.id).order_by(Finding.id.desc())
    if not admin:
        posts = posts.where(Finding.hidden.is_(False))
    task = lab.task if lab else (subs[0]["task"] if subs else None)
    costs = llm_totals(s, [r.id])
    sessions = llm_sessions(s, r.id)
    books = notebooks.latest(s, r.id)
    jl, md = books.get("notebook.jsonl"), books.get("notebook.md")
    return {
        "r": r, "member": member, "lab": lab, "task": task, "timeline": timeline,
        "n_submissions": _count(s, Submission.id, Submission.researcher_id == r.id),
        "n_experiments": _count(s, LabEvent.id, LabEvent.researcher_id == r.id,
                                LabEvent.kind == "experiment"),
        "findings": list(s.scalars(posts.limit(20))),
        "budget": scoring.budget(s, r.id),
        "notebook": notebooks.entries(jl.text, NOTEBOOK_TAIL) if jl else [],
        "notebook_md": md.text if md else None,
        "notebook_at": max((as_utc(b.updated_at) for b in books.values()), default=None),
        "curves": best_so_far(rises(s, task, [r.id])) if task else {},
        "llm": None if costs is None else costs.get(r.id),
        "sessions": sessions,
        # The conversation itself stays with the admin: it holds the lab's prompts.
        "transcript": (transcript.tail(sessions[0].transcript_path, TRANSCRIPT_TAIL)
                       if admin and sessions and sessions[0].transcript_path else []),
    }


def audit_page(s: Session, scoring: ScoringService, kind: str | None, admin: bool) -> dict:
    kinds = dict(s.execute(select(audit.AuditEvent.kind, func.count())
                           .group_by(audit.AuditEvent.kind)).all())
    if not admin:
        return {"kinds": kinds}  # how much happened, never to whom or what
    names = dict(s.execute(select(Researcher.id, Researcher.name)).all())
    events = [{"e": e, "who": names.get(e.researcher_id), "evidence": evidence(e, names)}
              for e in audit.events(s, kind, limit=TIMELINE)]
    at_budget = []
    for rid in s.scalars(select(Submission.researcher_id).distinct()):
        b = scoring.budget(s, rid)
        if b.exhausted:
            at_budget.append({"who": names.get(rid), "budget": b})
    restarts = [{"who": names.get(m.researcher_id), "restarts": m.restarts, "status": m.status,
                 "sandboxed": m.sandboxed}
                for m in s.scalars(select(LabMember).where(
                    (LabMember.restarts > 0) | LabMember.sandboxed.is_(False)))]
    errors = [{"who": names.get(e.researcher_id), "at": as_utc(e.created_at), "payload": e.payload}
              for e in s.scalars(select(LabEvent).where(LabEvent.kind == "error")
                                 .order_by(LabEvent.id.desc()).limit(20))]
    return {"kinds": kinds, "events": events, "at_budget": at_budget, "restarts": restarts,
            "errors": errors}


def evidence(e: audit.AuditEvent, names: dict[int, str]) -> list[tuple[str, str]]:
    """Links to what an audit event is about: (text, dashboard path)."""
    d, links = e.details or {}, []
    for key, text in (("submission_id", "submission"), ("probe_of", "probe of submission")):
        if isinstance(d.get(key), int):
            links.append((f"{text} {d[key]}", f"/submissions/{d[key]}"))
    if isinstance(d.get("finding_id"), int):
        links.append((f"finding {d['finding_id']}", f"/forum/{d['finding_id']}"))
    if e.researcher_id in names:
        links.append((names[e.researcher_id], f"/researchers/{names[e.researcher_id]}"))
    return links


def task_page(scoring: ScoringService, name: str, admin: bool) -> dict | None:
    if not is_built(scoring.settings, name):
        return None
    kit = TaskKit(kit_dir(scoring.settings, name))
    return {"name": name, "manifest": kit.manifest, "refs": references(scoring, name, admin)}
