"""Re-run the method behind a result, outside any sandbox, on data it was not developed on.

Targets: (a) fresh seeds of the same task, (b) re-drawn splits of the same rows
(:mod:`aarlab.replication.redraw`), (c) every other built task, user tasks included. Each
gets final-part PGR with its bootstrap ``ci95`` beside the original claim. A spec is re-run from
scratch; recorded predictions are scored as they are, and rows they do not cover count as wrong.

Each target also says whether the method beats simply copying the teacher: ``weak_soft`` is run
on the same kit and seeds, plain and transductive, and ``vs_weak_soft`` holds the
paired-bootstrap difference (method − weak_soft, final half, the same resampled rows for both)
and its verdict against the stronger form there (a method's own form, or how it was packaged,
must not pick the yardstick it is judged by). Comparing two means
each with its own interval would miss the pairing: most row noise is shared by the two.

Fresh seeds are weak teachers no researcher ever saw: the build trains extra teacher seeds and
keeps them in the answer key (``replication-weak/``), never in the kit. A task built before that
falls back to the kit's seeds the submission did not record using, and says so (``fresh``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aarlab.atomic import write_atomic
from aarlab.config import Settings, get_settings
from aarlab.kits.formats import label_index
from aarlab.kits.kit import TaskKit
from aarlab.lab.baselines import CACHE_PREFIX, VOTE_SEEDS, fingerprint, majority_vote, run_spec
from aarlab.replication.method import Method, ReplicationError
from aarlab.replication.redraw import redraw
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.paths import answer_key_dir, is_built, kit_dir
from aarlab.tasks.registry import all_tasks, same_rows
from aarlab.tasks.scorer import Scorer
from aarlab.w2s.spec import parse_spec

SHORTFALL_SE = 2.0
WEAK_SOFT = {"method": "weak_soft"}  # copying the teacher, with the kit's default head


def weak_soft_spec(transductive: bool = False) -> dict:
    """weak_soft plain, or transductive (its student also learns the teacher's labels of the
    very rows it predicts, so it copies the teacher more closely there)."""
    return {"steps": [WEAK_SOFT], "transductive": True} if transductive else WEAK_SOFT


@dataclass
class Target:
    name: str
    kind: str  # fresh-seeds | all-seeds | redrawn | other-task | original
    kit: TaskKit
    key: AnswerKey
    seeds: list[int]
    fresh: bool = True  # whether the seeds are known to be unused by the result's author
    # all-seeds: the lab's headline pick on every teacher seed of its task, beside this spec
    # (the tuned baseline) on the same seeds, for the headline's interval with the seed noise
    # of a vote (``seed_noise``)
    compare_spec: dict | None = None


MAX_SEED_NOISE_SEEDS = 8  # C(8, 3) = 56 votes of 3 distinct seeds


def seed_noise_target(settings: Settings, task: str, compare_spec: dict) -> Target:
    """The headline pick re-run on every teacher seed its task has, the kit's and the ones the
    answer key holds back (so the votes are not all of seeds the pick was chosen on), beside
    ``compare_spec``: the seed noise of a 3-seed vote for the headline's interval."""
    kit, key = open_task(settings, task)
    everything = ReplicationKit(kit, key)
    return Target(task, "all-seeds", everything, key,
                  everything.seeds[:MAX_SEED_NOISE_SEEDS], False, compare_spec)


def seed_noise(scorer: Scorer, preds: np.ndarray, base: np.ndarray, seeds: list[int],
               submitted_seeds: list[int] | None = None) -> dict:
    """A vote of ``VOTE_SEEDS`` distinct seeds of ``seeds`` (the seeds and the final rows
    resampled together, ``metrics._VoteSet``) of the pick (``preds``) and of the baseline
    (``base``), the same seeds for both: each one's final PGR and their paired difference; and
    ``rerun_of_submitted``, the final PGR of the re-run's vote of the seeds the submission says
    it voted (in any order), to check that the spec reproduces it (None: no such seeds)."""
    used = sorted(set(submitted_seeds or []))
    again = None
    if used and set(used) <= set(seeds):
        vote = majority_vote(preds[[seeds.index(k) for k in used]], int(preds.max()) + 1)
        again = {"seeds": used, "pgr_final": scorer.score(vote).pgr["final"]}
    return {"vote_of": VOTE_SEEDS, "seeds": list(seeds), "rerun_of_submitted": again,
            "pick": scorer.vote_interval(list(preds), VOTE_SEEDS).as_dict(),
            "baseline": scorer.vote_interval(list(base), VOTE_SEEDS).as_dict(),
            "diff": scorer.vote_diff(list(preds), list(base), VOTE_SEEDS).as_dict()}


class ReplicationKit(TaskKit):
    """A kit plus the teacher seeds its answer key holds back for replication (lab-owner only).

    PGR on these seeds uses the task's reference weak floor and ceiling, as the claim does.
    """

    def __init__(self, kit: TaskKit, key: AnswerKey):
        super().__init__(kit.dir)
        self.key_dir = key.dir
        self.reserved = [int(s) for s in key.reference.get("replication_seeds", [])]

    @property
    def seeds(self) -> list[int]:
        return [*super().seeds, *self.reserved]

    def weak_probs(self, split: str, seed: int) -> np.ndarray:
        if seed not in self.reserved:
            return super().weak_probs(split, seed)
        path = self.key_dir / "replication-weak" / f"seed{seed}.npz"
        if not path.exists():
            raise ReplicationError(f"no reserved teacher seed {seed} at {path}",
                                   hint="rebuild the task")
        with np.load(path) as z:
            return z[split]


def fresh_seeds(method: Method, kit: TaskKit, key: AnswerKey) -> tuple[TaskKit, list[int], bool]:
    """(kit view, seeds to replicate on, whether they are surely unused by the author)."""
    reserved = [int(s) for s in key.reference.get("replication_seeds", [])]
    if reserved:
        # No sandbox has them (they live in the answer key): fresh whatever the claim says.
        # A claim naming one once made this fall back to the kit's own seeds, "fresh".
        return ReplicationKit(kit, key), reserved, True
    used = set(method.seeds_used or [])
    unused = [k for k in kit.seeds if k not in used]
    # A claim naming a seed the kit lacks, or none at all (``[]``: every kit seed would then
    # count as fresh, the very ones the method was developed on), is no account of what was used.
    if used and used <= set(kit.seeds) and unused:
        return kit, unused, True
    return kit, unused or kit.seeds, False


def open_task(settings: Settings, name: str) -> tuple[TaskKit, AnswerKey]:
    if not is_built(settings, name):
        raise ReplicationError(f"task {name!r} is not built", hint=f"aarlab task build {name}")
    kit = TaskKit(kit_dir(settings, name))
    return kit, AnswerKey(answer_key_dir(settings, name), kit.format)


def targets_for(method: Method, settings: Settings, redraw_seeds: tuple[int, ...] = (101,),
                other_tasks: list[str] | None = None,
                developed_on: tuple[str, ...] = ()) -> list[Target]:
    """Fresh seeds, re-drawn splits and other built tasks (``None``: every built one).

    An "other task" is data the method was not developed on: never the method's task, a task
    of the same rows, or one the researchers had (``developed_on``: a suite lab's tasks, whose
    kits every sandbox mounted and whose feedback halves answered their submissions)."""
    if method.task is None:
        raise ReplicationError(f"{method.ref}: no submission tells which task it was made on")
    kit, key = open_task(settings, method.task)
    fkit, seeds, fresh = fresh_seeds(method, kit, key)
    out = [Target(method.task, "fresh-seeds", fkit, key, seeds, fresh)]
    for k in redraw_seeds:
        rk, rkey = redraw(kit, key, settings, k)
        out.append(Target(f"{method.task}-seed{k}", "redrawn", rk, rkey, rk.seeds))
    names = other_tasks if other_tasks is not None else [
        t.name for t in all_tasks() if is_built(settings, t.name)]
    had = {method.task, *developed_on}
    for name in names:
        if not any(same_rows(name, t) for t in had):
            okit, okey = open_task(settings, name)
            out.append(Target(name, "other-task", okit, okey, okit.seeds))
    return out


def prediction_vector(preds: dict[str, object], kit: TaskKit) -> np.ndarray:
    """A recorded id -> label table as class indices on ``kit``'s test rows (-1: none)."""
    ids = kit.ids("test")
    vec = np.full(len(ids), -1)  # -1 matches no class: a row without a prediction is wrong
    for i, row_id in enumerate(ids):
        if row_id in preds:
            with contextlib.suppress(ValueError):  # a malformed label is as wrong as none
                vec[i] = label_index(kit.format, preds[row_id])
    return vec


def score_predictions(preds: dict[str, object], kit: TaskKit, key: AnswerKey) -> dict:
    """Final-part PGR of a recorded id -> label table on ``kit``; uncovered rows are wrong."""
    ids = kit.ids("test")
    vec = prediction_vector(preds, kit)
    scorer = Scorer(key, ids)
    acc = scorer.score(vec).accuracy["final"]
    est = scorer.pgr_interval([vec], "final")
    covered = int((vec >= 0).sum())
    return {"pgr_final": est.as_dict(), "transfer_final": acc, "covered": covered,
            "n_test": len(ids), "how": "recorded predictions"}


def verdict(diff: dict) -> str:
    """"above" / "below" weak_soft when the paired difference's 95% interval excludes 0."""
    lo, hi = diff["ci95"]
    return "above" if lo > 0 else "below" if hi < 0 else "tie"


def compare_weak_soft(scorer: Scorer, preds: np.ndarray, soft_preds: np.ndarray) -> dict:
    """``vs_weak_soft`` of per-seed predictions (S, N) against weak_soft's on the same rows."""
    preds, soft_preds = np.atleast_2d(preds), np.atleast_2d(soft_preds)
    diff = scorer.pgr_diff(list(preds), list(soft_preds), "final").as_dict()
    return {"weak_soft": scorer.pgr_interval(list(soft_preds), "final").as_dict(),
            "diff": diff, "verdict": verdict(diff)}


def against_weak_soft(scorer: Scorer, preds: np.ndarray, t: Target,
                      threads: int | None) -> dict:
    """``compare_weak_soft`` against weak_soft in the stronger of its two forms on ``t`` (the
    higher final PGR), ``transductive`` naming which, the other form's beside it (``other``).
    Which form is the harder yardstick differs by task (plain on nyt and reviews,
    transductive on the outside tasks), so the method's form must not choose it."""
    both = {form: {**compare_weak_soft(scorer, preds, _weak_soft_preds(
        t, scorer, threads, transductive=form)), "transductive": form} for form in (False, True)}
    strong = max(both, key=lambda form: both[form]["weak_soft"]["mean"])
    return {**both[strong], "other": both[not strong]}


def is_weak_soft(spec: dict) -> bool:
    """weak_soft itself, in either form."""
    return parse_spec(spec).canonical() in [parse_spec(weak_soft_spec(f)).canonical()
                                            for f in (False, True)]


def soft_cache_path(t: Target, transductive: bool = False) -> Path:
    """Where weak_soft's predictions on ``t`` are kept: beside its answer key (never in a kit),
    named by everything they depend on — the target's files (a rebuilt task misses), its kind
    and kit view (fresh seeds read the teacher from the answer key), its seeds and the spec.
    Under the baseline cache's prefix, which keeps them out of its fingerprint."""
    h = hashlib.sha256(json.dumps(
        [fingerprint(t.kit, t.key), t.kind, type(t.kit).__name__, list(t.seeds),
         parse_spec(weak_soft_spec(transductive)).canonical()], sort_keys=True).encode())
    return t.key.dir / f"{CACHE_PREFIX}-replication" / f"weak_soft-{h.hexdigest()[:32]}.npy"


def _weak_soft_preds(t: Target, scorer: Scorer, threads: int | None,
                     preds: np.ndarray | None = None, transductive: bool = False) -> np.ndarray:
    """weak_soft's per-seed predictions (S, N) on ``t`` in the form ``transductive`` says, run
    once per target: an end-of-run replication compares every method it replicates with them
    on the same targets. ``preds``: those of weak_soft itself just run on ``t`` (kept, not
    run again)."""
    path = soft_cache_path(t, transductive)
    if preds is None:
        # Jobs of two methods on one target run at once on a budgeted replication's workers:
        # the later one waits for the first's run instead of repeating it.
        with _locked(path):
            with contextlib.suppress(OSError, ValueError, EOFError):
                cached = np.load(path, allow_pickle=False)
                if cached.shape == (len(t.seeds), len(t.kit.ids("test"))) and \
                        cached.dtype.kind in "iu":
                    return cached
            _, out = run_spec(t.kit, scorer, weak_soft_spec(transductive), t.seeds,
                              threads=threads)
            preds = np.stack([out[k] for k in t.seeds])
            _keep(path, preds)
        return preds
    _keep(path, preds)
    return preds


def _keep(path: Path, preds: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, preds, allow_pickle=False)
    with contextlib.suppress(OSError):  # a cache that cannot be written costs a rerun
        path.parent.mkdir(exist_ok=True)
        write_atomic(path, buf.getvalue())


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path``'s cache entry (a file lock, so worker processes share it);
    none where the folder cannot be written (then each job runs weak_soft itself)."""
    try:
        path.parent.mkdir(exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def run_on(method: Method, t: Target, threads: int | None = None,
           settings: Settings | None = None) -> dict:
    """Spec first (re-run from scratch), then the snapshot's code (re-run in a sandbox on the
    target's kit), then recorded predictions (scored as they are); each beside weak_soft on the
    same kit and seeds (``vs_weak_soft``), except a spec that is weak_soft itself and
    predictions that cover no row of the target (nothing to compare: every row is wrong)."""
    scorer = Scorer(t.key, t.kit.ids("test"))
    transductive = method.spec is not None and parse_spec(method.spec).transductive
    if method.spec is not None:
        r, out = run_spec(t.kit, scorer, method.spec, t.seeds, threads=threads)
        res = {"pgr_final": r["pgr_final"], "pgr_test": r["pgr"],
               # a submission is a vote of seeds: the like-for-like replicated number
               "pgr_final_vote": r["vote"]["pgr_final"] if "vote" in r else None,
               "transfer_final": None, "how": "spec re-run", "seconds": r["seconds"]}
        preds = np.stack([out[k] for k in t.seeds])
        if t.compare_spec is not None:
            _, base = run_spec(t.kit, scorer, t.compare_spec, t.seeds, threads=threads)
            res["seed_noise"] = seed_noise(scorer, preds, np.stack([base[k] for k in t.seeds]),
                                           t.seeds, method.seeds_used)
        if is_weak_soft(method.spec):  # nothing to compare with; kept for the methods to come
            _weak_soft_preds(t, scorer, threads, preds, transductive)
            preds = None
    elif method.runnable:
        from aarlab.replication.sandbox_run import rerun_snapshot

        # The snapshot's code picks its own seeds from the kit: none of them is fresh.
        recorded, how = rerun_snapshot(method.archive, t.kit.dir, settings or get_settings())
        res = {**score_predictions(recorded, t.kit, t.key), "how": how, "fresh": False}
        preds = prediction_vector(recorded, t.kit)
    elif method.predictions is not None:
        res = {**score_predictions(method.predictions, t.kit, t.key), "fresh": False}
        preds = prediction_vector(method.predictions, t.kit)
    else:
        raise ReplicationError(f"{method.ref} cannot be replicated: {method.why_not}")
    if preds is not None and (preds >= 0).any():
        res["vs_weak_soft"] = against_weak_soft(scorer, preds, t, threads)
    # PGR on a target whose gap is not clearly above 0 means little: say so beside it. The
    # build's check is on the whole test set; the row's PGR is on the final part, where a
    # smaller sample can leave the gap's interval reaching 0 (movies: 0.069 [-0.003, 0.139]).
    gap = scorer.gap_interval("final")
    return {"target": t.name, "kind": t.kind, "seeds": t.seeds, "fresh": t.fresh,
            "gap_final": gap.as_dict(), "gap_ok": t.key.gap_ok and gap.lo > 0, **res}


def shortfall(claim: float | None, est: dict, claim_se: float | None = None) -> float | None:
    """How many SEs the replication falls short of the claim (None: nothing claimed).

    A submission's claim is one prediction vector: one draw of what the replication averages,
    so without its own SE it carries one seed's spread (``se * sqrt(seeds)``) on top of the
    replication's SE.
    """
    if claim is None:
        return None
    if claim_se is None:
        claim_se = est["se"] * max(est.get("seeds", 1), 1) ** 0.5
    return (claim - est["mean"]) / max((est["se"] ** 2 + claim_se ** 2) ** 0.5, 1e-6)


def falls_short(claim: float | None, est: dict, claim_se: float | None = None) -> bool:
    """Whether the replication does not bear the claim out.

    A claim with its own SE is compared by the 2-SE rule. A bare claim (a submission's one
    number, chosen as the best of many) falls short when it lies above the whole 95% interval
    of the replication (test rows and seeds resampled): selection and cheating both put it there.
    """
    if claim is None:
        return False
    if claim_se is None and est.get("ci95"):
        return bool(claim > est["ci95"][1])
    return bool(shortfall(claim, est, claim_se) > SHORTFALL_SE)


def replicate_one(method: Method, t: Target, threads: int | None = None,
                  settings: Settings | None = None) -> dict:
    """One target's row: the replicated PGR and whether it falls short of the claim."""
    claim = method.claim.get("pgr_final")
    r = run_on(method, t, threads, settings)
    r["shortfall_se"] = (shortfall(claim, r["pgr_final"], method.claim.get("pgr_final_se"))
                         if t.kind != "other-task" else None)
    r["falls_short"] = (t.kind != "other-task" and falls_short(
        claim, r["pgr_final"], method.claim.get("pgr_final_se")))
    return r


def assemble(method: Method, targets: list[Target], rows: list[dict]) -> dict:
    """The replication of ``method`` from the rows done so far (``rows`` may be partial)."""
    fresh = next((t for t in targets if t.kind == "fresh-seeds"), None)
    return {"ref": method.ref, "task": method.task, "snapshot_id": method.snapshot_id,
            "spec": method.spec, "has_predictions": method.predictions is not None,
            "seeds_used": method.seeds_used,
            "replication_seeds": fresh.seeds if fresh else None,
            "fresh_seeds": next((r["fresh"] for r in rows if r["kind"] == "fresh-seeds"), None),
            "claim": method.claim, "results": rows,
            "falls_short": any(r["falls_short"] for r in rows)}


def replicate(method: Method, targets: list[Target], threads: int | None = None,
              settings: Settings | None = None) -> dict:
    if not method.replicable:
        raise ReplicationError(f"{method.ref} cannot be replicated: {method.why_not}")
    return assemble(method, targets,
                    [replicate_one(method, t, threads, settings) for t in targets])
