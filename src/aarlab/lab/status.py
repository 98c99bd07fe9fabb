"""Read-only queries over the store that describe a lab: who is doing what, how well.

Used by the live table, the report and (later) the dashboard, so all three agree.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aarlab.lab.tables import LabEvent, LabMember, LabRun
from aarlab.researchers.llm.accounting import member_costs
from aarlab.scoring.tables import RELEASED_PGR, Submission
from aarlab.store.identity import Researcher


def member_rows(s: Session, lab: LabRun) -> list[dict]:
    rows = []
    for m, name in s.execute(select(LabMember, Researcher.name).join(
            Researcher, Researcher.id == LabMember.researcher_id).where(
            LabMember.lab_id == lab.id).order_by(LabMember.id)):
        experiments = s.scalar(select(func.count()).select_from(LabEvent).where(
            LabEvent.researcher_id == m.researcher_id, LabEvent.kind == "experiment")) or 0
        subs = s.execute(select(func.count(), func.max(RELEASED_PGR)).where(
            Submission.researcher_id == m.researcher_id, Submission.task == lab.task)).one()
        idea = s.scalar(select(LabEvent.payload).where(
            LabEvent.researcher_id == m.researcher_id, LabEvent.kind == "idea").order_by(
            LabEvent.id.desc()).limit(1))
        placed = s.scalar(select(LabEvent.payload).where(
            LabEvent.researcher_id == m.researcher_id, LabEvent.kind == "placement").order_by(
            LabEvent.id.desc()).limit(1)) or {}
        rows.append({
            "researcher": name, "researcher_id": m.researcher_id, "direction": m.direction,
            "policy": m.policy, "status": m.status, "restarts": m.restarts,
            "sandboxed": m.sandboxed, "experiments": experiments, "submissions": subs[0],
            "best_released_pgr": subs[1], "current_idea": (idea or {}).get("spec", ""),
            "backend": placed.get("backend", "local"),
            "node": placed.get("hostname") or placed.get("node_ip") or "",
        })
    return rows


def progress_points(s: Session, lab: LabRun) -> list[dict]:
    """Every released score of the lab's researchers in time order (for the progress curve)."""
    ids = select(LabMember.researcher_id).where(LabMember.lab_id == lab.id)
    q = select(Submission, Researcher.name).join(Researcher).where(
        Submission.researcher_id.in_(ids), Submission.task == lab.task).order_by(
        Submission.created_at)
    # Only the Ladder's own releases: an answer that repeats the lab's best is not a rise.
    return [{"time": sub.created_at, "researcher": name,
             "released_pgr": sub.released_pgr if sub.new_best else None,
             "submission_id": sub.id, "is_probe": sub.is_probe}
            for sub, name in s.execute(q)]


def lab_submissions(s: Session, lab: LabRun, tasks: list[str] | None = None
                    ) -> list[Submission]:
    """The members' submissions on the lab's task (or ``tasks``), detached, less exact copies
    of predictions first submitted outside the lab (``foreign_copies``)."""
    ids = select(LabMember.researcher_id).where(LabMember.lab_id == lab.id)
    subs = list(s.scalars(select(Submission).where(
        Submission.researcher_id.in_(ids), Submission.task.in_(tasks or [lab.task]))))
    for x in subs:
        s.expunge(x)
    foreign = foreign_copies(s, subs, set(s.scalars(ids)))
    return [x for x in subs if x.id not in foreign]


def foreign_copies(s: Session, subs: list[Submission], members: set[int]) -> set[int]:
    """Ids of ``subs`` that are exact copies of predictions first submitted by no member.

    Copy detection spans the store, and a copy is answered with its original's score: a later
    lab's sandbox downloaded an earlier lab's best predictions from its forum snapshot,
    resubmitted them under a label of its own, and became this lab's pick at that lab's score.
    They are not this lab's work. A copy of another member's is fair reuse and stays."""
    out = set()
    for x in subs:
        if x.probe_of is None or x.is_probe:
            continue  # not an exact copy
        ref, seen = s.get(Submission, x.probe_of), {x.id}
        while (ref is not None and ref.probe_of is not None and not ref.is_probe
               and ref.id not in seen):  # a copy of a copy: to the first of those predictions
            seen.add(ref.id)
            ref = s.get(Submission, ref.probe_of)
        if ref is None or ref.researcher_id not in members:
            out.add(x.id)
    return out


def latest_lab(s: Session, task: str | None = None, status: str | None = None) -> LabRun | None:
    q = select(LabRun).order_by(LabRun.id.desc()).limit(1)
    if task:
        q = q.where(LabRun.task == task)
    if status:
        q = q.where(LabRun.status == status)
    return s.scalar(q)


def lab_costs(s: Session, lab_id: int) -> list[dict]:
    """One row per LLM researcher of a lab: its policy and its totals (for tables and JSON)."""
    members = s.execute(select(LabMember.researcher_id, LabMember.policy, Researcher.name)
                        .join(Researcher, Researcher.id == LabMember.researcher_id)
                        .where(LabMember.lab_id == lab_id, LabMember.policy.like("llm:%"))
                        .order_by(LabMember.id)).all()
    return member_costs(s, [tuple(m) for m in members])
