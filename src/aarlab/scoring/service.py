"""Scoring service: validate a submission, score it on both parts, apply probe detection, the
budget and the Ladder, and store everything in one transaction.

Submissions are validated and scored in the request's thread, then recorded by one writer
thread in batches (``writer.GroupCommitter``): the budget count, the Ladder's running best and
the in-memory probe index are only ever touched there, in order, so they always agree with the
database. Run one server process per store (SQLite serialises writers anyway); several workers
on Postgres would each miss the others' recent submissions in their probe index and budgets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aarlab.config import Settings
from aarlab.errors import AarlabError, retry_after_s
from aarlab.kits.kit import TaskKit
from aarlab.scoring.budgets import BudgetState, budget_state
from aarlab.scoring.builds import adopt_legacy, same_build
from aarlab.scoring.ladder import PairedLadder
from aarlab.scoring.probes import ProbeIndex, pack, threshold, unpack
from aarlab.scoring.schemas import SubmissionIn
from aarlab.scoring.tables import RELEASED_PGR, Submission
from aarlab.scoring.writer import GroupCommitter, Job
from aarlab.store import audit
from aarlab.store.db import Store
from aarlab.store.identity import Researcher
from aarlab.tasks.answer_key import AnswerKey, TaskRefusedError
from aarlab.tasks.paths import TASK_NAME, answer_key_dir, is_built, kit_dir
from aarlab.tasks.scorer import Score, Scorer


class ScoringError(AarlabError):
    status = 400

    def __init__(self, message: str, hint: str | None = None, headers: dict | None = None):
        super().__init__(message, hint)
        self.headers = headers or {}


class UnknownTask(ScoringError):
    status = 404


class NotFoundError(ScoringError):
    status = 404


class BadSubmission(ScoringError):
    status = 422


class BodyTooLarge(ScoringError):
    status = 413


class OverBudget(ScoringError):
    status = 429


@dataclass(frozen=True)
class _Scored:
    """A validated, scored submission waiting for the writer."""

    researcher: Researcher
    task: ServedTask
    sub: SubmissionIn
    blob: bytes
    score: Score


@dataclass
class ServedTask:
    name: str
    format: str
    labels: list
    test_ids: list[str]
    scorer: Scorer
    ladder: PairedLadder
    floor: np.ndarray  # the weak teacher's test predictions: the Ladder of an empty lab
    probes: ProbeIndex | None = None  # loaded from the store on first submission
    id_set: frozenset[str] = field(default_factory=frozenset)
    seeds: frozenset[int] = field(default_factory=frozenset)  # the kit's weak-teacher seeds

    def correct(self, pred: np.ndarray) -> np.ndarray:
        """0/1 correctness of class indices on the feedback rows (what the Ladder compares)."""
        m = self.scorer.masks["feedback"]
        return (np.asarray(pred)[m] == self.scorer.truth[m]).astype(np.int8)

    @property
    def n(self) -> int:
        return len(self.test_ids)

    @property
    def fingerprint(self) -> str:
        return self.scorer.fingerprint


class ScoringService:
    def __init__(self, settings: Settings, store: Store,
                 holds_snapshot: Callable[[Session, int, str], bool] | None = None):
        """``holds_snapshot(session, researcher_id, snapshot_id)``: whether that researcher
        uploaded that snapshot (the forum's snapshots, a layer above, pass it in); without it
        a submission may name no snapshot at all."""
        self.settings = settings
        self.store = store
        self.holds_snapshot = holds_snapshot
        self._tasks: dict[str, ServedTask] = {}
        self._row_sources: dict[str, str] = {}
        self._load_lock = threading.Lock()
        self._writer = GroupCommitter(self._record, name="scoring-writer")

    # ---- tasks -------------------------------------------------------------------------------

    def served_names(self) -> list[str]:
        return sorted(n for n in self._built_names() if self._servable(n))

    def _built_names(self) -> list[str]:
        root = self.settings.kits_dir
        if not root.is_dir():
            return []
        return [p.name for p in root.iterdir() if TASK_NAME.match(p.name) and self._in_lab(p.name)
                and is_built(self.settings, p.name)]

    def _in_lab(self, name: str) -> bool:
        # A lab's server scores only its own tasks: elsewhere a member's token would open a
        # fresh budget and Ladder on every task of the store.
        allowed = self.settings.served_tasks
        return allowed is None or name in allowed

    def _servable(self, name: str) -> bool:
        # A built task whose gap is not clearly above 0 is not served: listing it made every
        # GET /v1/tasks a 404 (asking for it by name still says why it is not served).
        if name in self._tasks:
            return True
        try:
            # (the format only matters for labels, which this does not read)
            return AnswerKey(answer_key_dir(self.settings, name), "binary").servable
        except AarlabError:
            return False

    def row_source(self, name: str) -> str:
        """The task whose rows ``name`` is drawn from: its kit's ``source_task`` (an LM task's
        source, written by the build, never by a sandbox), else ``name`` itself."""
        if name not in self._row_sources:
            try:
                source = TaskKit(kit_dir(self.settings, name)).manifest.get("source_task")
            except (AarlabError, OSError, ValueError):
                source = None
            self._row_sources[name] = source if isinstance(source, str) and source else name
        return self._row_sources[name]

    def same_rows(self, name: str) -> frozenset[str]:
        """``name`` and every task of this server drawn from the same rows: they share one
        submission budget, else each would be a fresh one over the same feedback labels."""
        source = self.row_source(name)
        return frozenset({name, *(n for n in self._built_names() if self.row_source(n) == source)})

    def task(self, name: str) -> ServedTask:
        if name in self._tasks:
            return self._tasks[name]
        if (not TASK_NAME.match(name) or not self._in_lab(name)
                or not is_built(self.settings, name)):
            raise UnknownTask(f"task: no served task {name!r}",
                              hint=f"served tasks: {self.served_names()}")
        with self._load_lock:
            if name not in self._tasks:
                kit = TaskKit(kit_dir(self.settings, name))
                key = AnswerKey(answer_key_dir(self.settings, name), kit.format)
                try:  # a task with no gap to recover is not served: PGR means nothing there
                    key.require_servable(name)
                except TaskRefusedError as e:
                    raise UnknownTask(e.message, hint=e.hint) from e
                ids = kit.ids("test")
                scorer = Scorer(key, ids)
                weak, ceiling = scorer.weak["feedback"].mean, scorer.ceiling["feedback"].mean
                ladder = PairedLadder(int(scorer.masks["feedback"].sum()), weak, ceiling - weak,
                                      self.settings.ladder_safety,
                                      self.settings.ladder_min_step_se)
                floor = kit.weak_probs("test", 0).argmax(1)
                with self.store.session() as s:  # rows stored before builds were told apart
                    adopt_legacy(s, name, scorer)
                self._tasks[name] = ServedTask(name, kit.format, kit.label_names, ids, scorer,
                                               ladder, floor, id_set=frozenset(ids),
                                               seeds=frozenset(kit.seeds))
        return self._tasks[name]

    @staticmethod
    def _this_build(t: ServedTask):
        """The SQL condition "a submission scored on the served build of ``t``"."""
        return (Submission.task == t.name) & (Submission.build_fingerprint == t.fingerprint)

    def _probe_index(self, s: Session, t: ServedTask) -> ProbeIndex:
        if t.probes is None:
            idx = ProbeIndex(t.n)
            # A rebuilt task keeps its old submissions in the store; they were scored on
            # other rows (even when as many), so they are neither copies nor probes of these.
            rows = s.execute(select(Submission.id, Submission.predictions)
                             .where(self._this_build(t)).order_by(Submission.id))
            for sid, blob in rows:
                idx.add(sid, blob)
            t.probes = idx
        return t.probes

    # ---- validation --------------------------------------------------------------------------

    def parse(self, t: ServedTask, body: bytes) -> tuple[SubmissionIn, np.ndarray]:
        """The request body as class indices aligned with the test ids, or a 422 naming why."""
        try:
            sub = SubmissionIn.model_validate_json(body)
        except ValidationError as e:
            msgs = [f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
                    for err in e.errors()[:5]]
            raise BadSubmission("; ".join(msgs)) from None
        if sub.seeds is not None and (not sub.seeds or not set(sub.seeds) <= t.seeds):
            # Replication re-runs a method on seeds outside this list: a seed the kit does
            # not have can only be a false claim (one overlapping the reserved seeds made
            # replication fall back to the very seeds the method was developed on).
            raise BadSubmission(f"seeds: expected weak-teacher seeds of task {t.name!r}'s kit, "
                                f"{sorted(t.seeds)}; got {sorted(sub.seeds)[:5] or 'none'}",
                                hint="omit seeds if you do not know which you used")
        return sub, self.to_indices(t, sub.predictions)

    def to_indices(self, t: ServedTask, preds: dict) -> np.ndarray:
        # map/set keep the loops in C: this runs once per submission over every test row.
        want = bool if t.format == "binary" else str
        try:
            values = list(map(preds.__getitem__, t.test_ids))
        except KeyError:
            values = None
        # type check before the set test: True == 1 would otherwise pass an int as a label
        if (values is None or len(preds) != t.n or set(map(type, values)) != {want}
                or not set(values) <= set(t.labels)):
            raise BadSubmission(self._explain(t, preds))
        return (np.array(values) == t.labels[1]).astype(np.int8)

    def _explain(self, t: ServedTask, preds: dict) -> str:
        missing = [i for i in t.test_ids if i not in preds]
        extra = [i for i in preds if i not in t.id_set]
        if extra:
            return (f"predictions: {len(extra)} ids are not test row ids of task {t.name!r}, "
                    f"e.g. {extra[:3]}; only the test split is scorable")
        if missing:
            return (f"predictions: missing {len(missing)} of {t.n} test row ids, e.g. "
                    f"{missing[:3]}; expected a label for every row of test.jsonl")
        bad = [(i, v) for i, v in preds.items() if v not in t.labels or type(v) is not
               (bool if t.format == "binary" else str)]
        if not bad:
            return "predictions: expected one label per test row id"
        i, v = bad[0]
        shown = str(t.labels).replace("False", "false").replace("True", "true")
        return (f"predictions[{i!r}]: expected one of {shown}, got {v!r} "
                f"({len(bad)} values invalid)")

    # ---- submission --------------------------------------------------------------------------

    def budget(self, s: Session, researcher_id: int, task: str | None = None) -> BudgetState:
        """Per task when ``task`` is given (a suite lab's researcher may submit to each), one
        budget for the tasks of the same rows."""
        return budget_state(s, researcher_id, self.settings.submissions_per_hour,
                            self.settings.submissions_total,
                            tasks=None if task is None else self.same_rows(task))

    def submit(self, researcher: Researcher, task: str, body: bytes) -> tuple[dict, BudgetState]:
        """Validate and score here (in the request's thread), record in the writer's batch."""
        t = self.task(task)
        sub, pred = self.parse(t, body)
        return self._writer.run(_Scored(researcher, t, sub, pack(pred), t.scorer.score(pred)))

    def _record(self, batch: list[Job]) -> None:
        """Budget, probe check, Ladder and insert for each job, in order; then one commit."""
        touched: list[tuple[ServedTask, int, bytes]] = []
        try:
            with self.store.session() as s:
                for job in batch:
                    try:
                        job.result = self._record_one(s, job.payload, touched)
                    except ScoringError as e:
                        job.error = e
        except BaseException:
            for t, _, _ in touched:  # the index may hold rows that were rolled back
                t.probes = None
            raise

    def _record_one(self, s: Session, p: _Scored, touched: list) -> tuple[dict, BudgetState]:
        t, researcher = p.task, p.researcher
        budget = self.budget(s, researcher.id, t.name)
        if budget.exhausted:
            raise self._over_budget(budget)
        sid = p.sub.snapshot_id
        if sid is not None and (self.holds_snapshot is None
                                or not self.holds_snapshot(s, researcher.id, sid)):
            # Checked before anything is stored: the submission costs nothing.
            raise BadSubmission(f"snapshot_id: snapshot {sid} was not uploaded by you",
                                hint="upload the code that produced these predictions first "
                                     "(the same bytes as another's snapshot are fine)")
        index = self._probe_index(s, t)
        match = index.nearest(p.blob)
        limit = threshold(t.n, self.settings.probe_min_rows, self.settings.probe_min_fraction)
        copy_of = match.submission_id if match is not None and match.distance == 0 else None
        is_probe = copy_of is None and match is not None and match.distance < limit
        ref_id, shown = self._ladder_state(s, t, self._this_build(t), researcher.id)
        new_best = repeats_release = False
        if copy_of is not None:  # honest reuse: what that submission's author was told
            released, was_release, was_repeat = s.execute(
                select(Submission.released_pgr, Submission.new_best,
                       Submission.repeats_release).where(Submission.id == copy_of)).one()
            repeats_release = bool(was_release or was_repeat)
        elif is_probe:  # answered without looking at its score: no new information
            released = shown
        else:
            ref = t.floor if ref_id is None else unpack(
                s.scalar(select(Submission.predictions).where(Submission.id == ref_id)), t.n)
            new_best = t.ladder.compare(t.correct(unpack(p.blob, t.n)), t.correct(ref)).released
            released = t.ladder.round(p.score.pgr["feedback"]) if new_best else shown
        acc, pgr = p.score.accuracy, p.score.pgr
        row = Submission(
            researcher_id=researcher.id, task=t.name, created_at=datetime.now(UTC), n_rows=t.n,
            build_fingerprint=t.fingerprint,
            predictions=p.blob, method=p.sub.method, snapshot_id=p.sub.snapshot_id,
            seeds=p.sub.seeds,
            acc_test=acc["test"], acc_feedback=acc["feedback"], acc_final=acc["final"],
            pgr_test=pgr["test"], pgr_feedback=pgr["feedback"], pgr_final=pgr["final"],
            released_pgr=released, new_best=new_best, repeats_release=repeats_release,
            is_probe=is_probe,
            probe_of=match.submission_id if is_probe else copy_of)
        s.add(row)
        s.flush()
        if is_probe:
            audit.append(s, "probe", researcher.id, task=t.name, submission_id=row.id,
                         probe_of=match.submission_id, distance=match.distance, threshold=limit)
        index.add(row.id, p.blob)  # later jobs of this batch are checked against it too
        touched.append((t, row.id, p.blob))
        budget = budget.after_one_more()
        return {"id": row.id, "task": t.name, "created_at": row.created_at,
                "released_pgr": released, "new_best": new_best,
                "budget": budget.as_dict()}, budget

    @staticmethod
    def _ladder_state(s: Session, t: ServedTask, this_build,
                      researcher_id: int) -> tuple[int | None, float | None]:
        """(submission to beat, score to answer with when nothing new is released).

        Each researcher climbs their own Ladder: their last release. One who has none starts
        from the lab's, the highest release on the task by anyone (so a fresh token, or a
        deliberately bad first submission, learns nothing), and an empty lab starts from the
        weak teacher's own predictions (``None``: nothing released yet). Only releases of
        this build count (``this_build``): another build's were scored on other rows.
        """
        mine = s.execute(select(Submission.id, Submission.released_pgr)
                         .where(this_build, Submission.new_best,
                                Submission.researcher_id == researcher_id)
                         .order_by(Submission.id.desc()).limit(1)).first()
        if mine is None:
            mine = s.execute(select(Submission.id, Submission.released_pgr)
                             .where(this_build, Submission.new_best)
                             .order_by(Submission.released_pgr.desc(), Submission.id)
                             .limit(1)).first()
        return (mine[0], mine[1]) if mine else (None, None)

    @staticmethod
    def _over_budget(b: BudgetState) -> OverBudget:
        headers = b.headers()
        if b.total_remaining == 0:
            return OverBudget(f"budget: all {b.total} submissions used",
                              hint="ask the lab for a larger budget", headers=headers)
        wait = retry_after_s(b.retry_after)  # every 429's one rule (aarlab.errors)
        headers["Retry-After"] = str(wait)
        return OverBudget(f"budget: {b.per_hour} submissions per hour used",
                          hint=f"retry after {wait} s", headers=headers)

    # ---- reads -------------------------------------------------------------------------------

    def submission(self, s: Session, submission_id: int, admin: bool = False) -> dict:
        row = s.execute(select(Submission, Researcher.name).join(Researcher)
                        .where(Submission.id == submission_id)).first()
        if row is None:
            raise NotFoundError(f"submission: no submission {submission_id}")
        return public_view(*row) | (admin_extra(row[0]) if admin else {})

    def my_submissions(self, s: Session, researcher: Researcher, task: str) -> list[dict]:
        self.task(task)
        rows = s.execute(select(Submission, Researcher.name).join(Researcher)
                         .where(Submission.task == task, Submission.researcher_id == researcher.id)
                         .order_by(Submission.id))
        return [public_view(sub, name) for sub, name in rows]

    def best_released(self, s: Session, researcher_id: int) -> dict[str, float]:
        # Only the researcher's own releases (new_best): a repeat of the lab's best, answered
        # to a fresh researcher or to an exact copy, is not theirs (as on the leaderboard).
        rows = s.execute(select(Submission.task, func.max(RELEASED_PGR))
                         .where(Submission.researcher_id == researcher_id,
                                Submission.new_best, Submission.released_pgr.is_not(None))
                         .group_by(Submission.task))
        return {task: best for task, best in rows}

    def leaderboard(self, s: Session, task: str, admin: bool = False) -> dict:
        """Best released PGR per researcher and per method, from stored scores only.

        Per method counts only submissions that raised a release (``new_best``): a method's
        number is always one the Ladder already showed its author, never a hidden score.
        Only the served build's submissions are ranked: a rebuilt task's old ones were scored
        on other rows.
        """
        t = self.task(task)
        this_build = self._this_build(t)
        base = select(Submission, Researcher.name).join(Researcher).where(this_build)
        counts = dict(s.execute(select(Submission.researcher_id, func.count())
                                .where(this_build)
                                .group_by(Submission.researcher_id)).all())
        probes = dict(s.execute(select(Submission.researcher_id, func.count())
                                .where(this_build, Submission.is_probe)
                                .group_by(Submission.researcher_id)).all())
        by_r: dict[int, tuple[Submission, str]] = {}
        # A label is the submitter's word, so a method's row names who released its score:
        # a release labelled with another's method is shown as the labeller's, not theirs.
        by_m: dict[str, tuple[Submission, str, set]] = {}
        for sub, name in s.execute(base.where(Submission.new_best).order_by(Submission.id)):
            by_r[sub.researcher_id] = (sub, name)  # released is monotone: the last is the best
            m = sub.method or "(unnamed)"
            best, by, who = by_m.get(m, (None, name, set()))
            who.add(sub.researcher_id)
            if best is None or sub.released_pgr > best.released_pgr:
                best, by = sub, name
            by_m[m] = (best, by, who)
        r_rows = [{"researcher": name, "best_released_pgr": sub.released_pgr,
                   "submissions": counts.get(sub.researcher_id, 0)}
                  | (_admin_cols(sub, t) | {"probes": probes.get(sub.researcher_id, 0)}
                     if admin else {})
                  for sub, name in by_r.values()]
        m_rows = [{"method": m, "best_released_pgr": sub.released_pgr, "researchers": len(who),
                   "released_by": by}
                  | (_admin_cols(sub, t) if admin else {})
                  for m, (sub, by, who) in by_m.items()]
        key = lambda r: -r["best_released_pgr"]  # noqa: E731
        return {"task": task, "by_researcher": sorted(r_rows, key=key),
                "by_method": sorted(m_rows, key=key)}


def _admin_cols(sub: Submission, t: ServedTask) -> dict:
    # the final PGR's paired-bootstrap interval (test rows; another build's have none)
    ci = None
    if same_build(sub, t.scorer):
        iv = t.scorer.pgr_interval([unpack(sub.predictions, t.n)], "final", n_boot=1000)
        ci = [iv.lo, iv.hi]
    return {"submission_id": sub.id, "feedback_pgr": sub.pgr_feedback,
            "final_pgr": sub.pgr_final, "final_pgr_ci95": ci,
            "gap": sub.released_pgr - sub.pgr_final}


def public_view(sub: Submission, researcher_name: str) -> dict:
    """What any researcher may see of a submission (the forum links results to these)."""
    return {"id": sub.id, "researcher": researcher_name, "task": sub.task,
            "created_at": sub.created_at, "method": sub.method, "snapshot_id": sub.snapshot_id,
            "released_pgr": sub.released_pgr, "new_best": sub.new_best}


def admin_extra(sub: Submission) -> dict:
    return {"accuracy": {"test": sub.acc_test, "feedback": sub.acc_feedback,
                         "final": sub.acc_final},
            "pgr": {"test": sub.pgr_test, "feedback": sub.pgr_feedback, "final": sub.pgr_final},
            "is_probe": sub.is_probe, "probe_of": sub.probe_of, "seeds": sub.seeds}
