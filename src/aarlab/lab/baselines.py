"""Evaluate method specs on a task (lab-owner view) and keep the classical baselines the lab must
beat, chosen the way a researcher has to choose.

- *Best default*: every library method with its default parameters, chosen by its PGR on the
  *feedback* half and reported on the *final* half (choosing on the half you report on would
  flatter it).
- *Tuned*: each method's documented parameters tuned with a label-free signal and the scored
  submissions a researcher gets (:mod:`aarlab.lab.tuned`), reported on the final half.

Equal ensembles: the lab's pick is a majority vote over ``VOTE_SEEDS`` seeds (the search
researcher submits one), so each baseline is such a vote too, beside its mean over single seeds.
Every PGR carries a paired-bootstrap ``ci95`` over test rows and seeds. Results and predictions
are cached beside the answer key (``baselines.json``, ``baselines.npz``), keyed by a fingerprint
of the kit and answer key they came from: a rebuilt task recomputes them. Within a cache each row
is keyed by its spec with every default filled in (``spec_key``), not by its label: a label omits
defaults, so a changed default re-runs exactly the methods it changes.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from aarlab.config import Settings, get_settings
from aarlab.errors import SpecError
from aarlab.kits.kit import TaskKit
from aarlab.lab import headline, tuned
from aarlab.tasks.answer_key import AnswerKey
from aarlab.tasks.scorer import Scorer
from aarlab.w2s import signals as sig
from aarlab.w2s.methods import describe
from aarlab.w2s.metrics import majority_vote
from aarlab.w2s.runner import ExperimentResult, run_experiment
from aarlab.w2s.spec import MethodSpec, parse_spec

VOTE_SEEDS = 3  # as the search researcher votes (SearchResearcher eval_seeds)
VERSION = 2  # bump when what is cached changes meaning
CACHE_PREFIX = "baselines"  # what lives beside an answer key under this name is a cache
PARTS = ("feedback", "final")
Progress = Callable[[str], None]


def score_preds(scorer: Scorer, preds: np.ndarray, n_classes: int,
                vote_seeds: Sequence[int] | None = None) -> dict:
    """Transfer and PGR of per-seed predictions (S, N) on test, feedback and final, each PGR with
    its bootstrap ``ci95``; with ``vote_seeds`` (the seeds of ``preds``' first rows) also the
    majority vote of those rows, scored the same way."""
    preds = np.atleast_2d(np.asarray(preds))
    out = {**scorer.summarize(list(preds)),
           **{f"pgr_{p}": scorer.pgr_interval(list(preds), p).as_dict() for p in PARTS}}
    if vote_seeds:
        vote = majority_vote(preds[: len(vote_seeds)], n_classes)
        out["vote"] = {"seeds": list(vote_seeds),
                       **{f"pgr_{p}": scorer.pgr_interval([vote], p).as_dict() for p in PARTS}}
    return out


def vote_seeds_for(seeds: Sequence[int]) -> list[int] | None:
    seeds = list(seeds)
    return seeds[:VOTE_SEEDS] if len(seeds) >= VOTE_SEEDS else None


def run_spec(kit: TaskKit, scorer: Scorer, spec: MethodSpec | dict, seeds: list[int],
             on_seed: Callable[[int], None] | None = None, threads: int | None = None,
             signal_seeds: Sequence[int] = ()) -> tuple[dict, ExperimentResult]:
    """Run ``spec`` for ``seeds`` and score it; also return the raw result (predictions).

    ``signal_seeds``: seeds whose label-free signals are computed too (they cost extra fits).
    """
    spec = parse_spec(spec)
    with_sig = [s for s in seeds if s in signal_seeds]
    out = run_experiment(kit, spec, with_sig, on_seed=on_seed, threads=threads,
                         signals=True) if with_sig else ExperimentResult(spec)
    rest = [s for s in seeds if s not in with_sig]
    if rest:
        more = run_experiment(kit, spec, rest, on_seed=on_seed, threads=threads)
        out.update(more)
        out.diagnostics.update(more.diagnostics)
    preds = np.stack([out[k] for k in seeds])
    row = {
        "task": kit.name, "method": spec.label, "spec": spec.canonical(),
        **score_preds(scorer, preds, kit.n_classes, vote_seeds_for(seeds)),
        "seconds": round(out.seconds, 3),
        "agree_weak_test": float(np.mean([d["agree_weak_test"]
                                          for d in out.diagnostics.values()])),
    }
    return row, out


def evaluate(kit: TaskKit, scorer: Scorer, spec: MethodSpec | dict, seeds: list[int],
             on_seed: Callable[[int], None] | None = None, threads: int | None = None) -> dict:
    """Run ``spec`` for ``seeds`` and score it: transfer, PGR per part with ci95, the vote."""
    return run_spec(kit, scorer, spec, seeds, on_seed, threads)[0]


Measured = tuple[dict, np.ndarray, dict, float]  # row, per-seed predictions, signals, seconds


def _measure(kit: TaskKit, scorer: Scorer, spec: MethodSpec, seeds: list[int],
             signal_seeds: list[int], threads: int | None) -> Measured:
    row, res = run_spec(kit, scorer, spec, seeds, threads=threads, signal_seeds=signal_seeds)
    preds = np.stack([res[k] for k in seeds]).astype(np.int8)
    return row, preds, _signals(res, signal_seeds), res.seconds


def _measure_in_worker(kit_dir: str, spec: dict, seeds: list[int], signal_seeds: list[int],
                       key_dir: str, threads: int | None) -> Measured:
    kit = TaskKit(Path(kit_dir))
    key = AnswerKey(Path(key_dir), kit.format)
    return _measure(kit, Scorer(key, kit.ids("test")), parse_spec(spec), seeds, signal_seeds,
                    threads)


def measure_all(kit: TaskKit, key: AnswerKey, jobs: list[tuple[MethodSpec, list[int]]],
                signal_seeds: list[int], threads: int | None = None,
                progress: Progress | None = None, workers: int = 1
                ) -> Iterator[tuple[int, Measured]]:
    """``(index, measured)`` of each ``(spec, seeds)`` job as it finishes: one after another
    here, or in ``workers`` processes (the first report on a task runs ~100 specs, one core
    each). The caller keeps each result as it comes, so a stopped run loses only the jobs in
    flight."""
    if workers <= 1 or len(jobs) <= 1:
        scorer = Scorer(key, kit.ids("test"))
        for i, (spec, seeds) in enumerate(jobs):
            if progress:
                progress(spec.label)
            yield i, _measure(kit, scorer, spec, seeds, signal_seeds, threads)
        return
    ex = cf.ProcessPoolExecutor(min(workers, len(jobs)),
                                mp_context=multiprocessing.get_context("spawn"))
    try:
        running = {ex.submit(_measure_in_worker, str(kit.dir), spec.canonical(), list(seeds),
                             list(signal_seeds), str(key.dir), threads): i
                   for i, (spec, seeds) in enumerate(jobs)}
        for f in cf.as_completed(running):
            i = running[f]
            if progress:
                progress(jobs[i][0].label)
            yield i, f.result()
    finally:
        ex.shutdown(wait=False, cancel_futures=True)


def default_specs() -> list[MethodSpec]:
    """One spec per registered method, every parameter at its default."""
    return [parse_spec({"method": m["name"]}) for m in describe()]


def pick_on_feedback(rows: list[dict]) -> dict:
    """The row with the best feedback-half PGR of its vote (of its seed mean when no vote)."""
    def feedback(r: dict) -> float:
        return (r.get("vote") or r)["pgr_feedback"]["mean"]
    return max(rows, key=feedback)


# -- the cache -----------------------------------------------------------------------------------


def spec_key(spec: MethodSpec) -> str:
    """What a row was measured with: the canonical spec (every parameter, defaults filled in)
    as sorted JSON. The kit's default head is not in it; the cache's fingerprint covers it."""
    return json.dumps(spec.canonical(), sort_keys=True)


def row_key(row: dict) -> str | None:
    """The key of a cached row; ``None`` when it cannot be reused (its spec no longer parses).

    A row cached before rows carried a ``key`` (a legacy row) is keyed by its stored canonical
    spec filled in with *today's* defaults. Its stored spec names every parameter it was run
    with, so a changed default still misses it; what is trusted is only that a parameter added
    since behaves, at its default, as the method did before it existed. The trust is given
    once: the row is saved with its key (``_keyed``), and keyed rows must match exactly. Legacy
    caches took ~25 min per task to measure, which is why they are trusted at all.
    """
    if "key" in row:
        return row["key"]
    try:
        return spec_key(parse_spec(row["spec"]))
    except (KeyError, TypeError, SpecError):
        return None


def _keyed(rows: list[dict]) -> list[str | None]:
    """The keys of ``rows``, stored into legacy rows that have none (see ``row_key``)."""
    keys = [row_key(r) for r in rows]
    for r, k in zip(rows, keys, strict=True):
        if k is not None:
            r["key"] = k
    return keys


def fingerprint(kit: TaskKit, key: AnswerKey) -> str:
    """sha256 over every file of the kit and of the answer key, but the caches kept beside it
    (``baselines*``: this one, and the replication's weak_soft runs)."""
    h = hashlib.sha256(f"v{VERSION}".encode())
    for tag, root in (("kit", kit.dir), ("key", key.dir)):
        for p in sorted(x for x in root.rglob("*") if x.is_file()):
            if tag == "key" and p.relative_to(root).parts[0].startswith(CACHE_PREFIX):
                continue
            h.update(f"{tag}/{p.relative_to(root).as_posix()}".encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


class BaselineCache:
    """``baselines.json`` (rows, candidates) and ``baselines.npz`` (their predictions)."""

    def __init__(self, kit: TaskKit, key: AnswerKey):
        self.kit, self.key = kit, key
        self.json_path, self.npz_path = key.dir / "baselines.json", key.dir / "baselines.npz"
        self.print = fingerprint(kit, key)
        self.record: dict = {"fingerprint": self.print, "version": VERSION}
        self.arrays: dict[str, np.ndarray] = {}
        if self.json_path.exists() and self.npz_path.exists():
            try:
                rec = json.loads(self.json_path.read_text())
                with np.load(self.npz_path) as z:
                    arrays = {k: z[k] for k in z.files}
            except (ValueError, OSError, EOFError):
                return  # a broken cache is recomputed
            if rec.get("fingerprint") == self.print:
                self.record, self.arrays = rec, arrays

    def save(self) -> None:
        _atomic(self.npz_path, lambda f: np.savez_compressed(f, **self.arrays))
        _atomic(self.json_path, lambda f: f.write(json.dumps(self.record, indent=1).encode()))


def _atomic(path: Path, write: Callable) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        write(f)
    tmp.replace(path)


def default_rows(kit: TaskKit, key: AnswerKey, threads: int | None = None,
                 progress: Progress | None = None, workers: int = 1) -> list[dict]:
    """Every default-parameter method on every kit seed, scored (cached, as each finishes)."""
    cache = BaselineCache(kit, key)
    specs = default_specs()
    want = [spec_key(s) for s in specs]
    old = cache.record.get("defaults", [])
    legacy = any("key" not in r for r in old)
    if _keyed(old) != want or legacy:
        # Only specs not measured yet run: a new method, or one whose defaults changed.
        have = {r["key"]: (r, cache.arrays[f"default{i}"]) for i, r in enumerate(old)
                if "key" in r and f"default{i}" in cache.arrays}

        def keep() -> None:
            """The rows measured so far, in the library's order."""
            done = [(spec, have[sk]) for spec, sk in zip(specs, want, strict=True) if sk in have]
            for k in [k for k in cache.arrays if k.startswith("default")]:
                del cache.arrays[k]
            cache.arrays.update({f"default{i}": a for i, (_, (_, a)) in enumerate(done)})
            cache.record["defaults"] = [{**r, "method": spec.label} for spec, (r, _) in done]
            cache.save()

        missing = [s for s, sk in zip(specs, want, strict=True) if sk not in have]
        vote = vote_seeds_for(kit.seeds) or kit.seeds
        for i, (row, arr, signals, _) in measure_all(kit, key, [(s, kit.seeds) for s in missing],
                                                     vote, threads, progress, workers):
            row["signals"], row["key"] = signals, spec_key(missing[i])
            have[row["key"]] = (row, arr)
            keep()
        keep()
    return cache.record["defaults"]


def best_baseline(kit: TaskKit, key: AnswerKey, threads: int | None = None,
                  progress: Progress | None = None, workers: int = 1) -> dict:
    """The best default-parameter method, chosen on the feedback half (cached)."""
    return pick_on_feedback(default_rows(kit, key, threads, progress, workers))


def _signals(res: ExperimentResult, seeds: Sequence[int]) -> dict[str, float]:
    return sig.summary([res.diagnostics[s]["signals"] for s in seeds
                        if "signals" in res.diagnostics[s]])


def candidates(kit: TaskKit, key: AnswerKey, threads: int | None = None,
               progress: Progress | None = None, specs: list[MethodSpec] | None = None,
               settings: Settings | None = None, workers: int = 1
               ) -> tuple[list[dict], np.ndarray]:
    """Every tuning candidate run on the vote seeds with its signals (cached, as each
    finishes): records and their per-seed predictions (C, S, N). Defaults reuse the default
    rows' runs."""
    vote = vote_seeds_for(kit.seeds) or kit.seeds
    defaults = {r["key"]: (i, r) for i, r in enumerate(default_rows(kit, key, threads,
                                                                    progress, workers))}
    cache = BaselineCache(kit, key)
    if specs is None:
        specs = (default_specs() if (settings or get_settings()).baseline_grid == "defaults"
                 else tuned.candidate_specs())
    want = [spec_key(s) for s in specs]
    old = cache.record.get("candidates", [])
    legacy = any("key" not in c for c in old)
    if _keyed(old) != want or legacy:
        # Only specs not yet run are run: a grid that grows keeps what it has measured, and a
        # changed default re-runs only the candidates it changes.
        have = ({c["key"]: (c, p) for c, p in zip(old, cache.arrays["candidates"],
                                                  strict=False) if "key" in c}
                if "candidates" in cache.arrays else {})
        for spec, sk in zip(specs, want, strict=True):
            if sk not in have and sk in defaults:
                i, r = defaults[sk]
                have[sk] = (_record(spec, r["signals"],
                                    r["seconds"] * len(vote) / len(kit.seeds)),
                            cache.arrays[f"default{i}"][: len(vote)])

        def keep() -> None:
            """The candidates measured so far, in the grid's order."""
            done = [(spec, have[sk]) for spec, sk in zip(specs, want, strict=True) if sk in have]
            cache.record["candidates"] = [{**r, "method": spec.label} for spec, (r, _) in done]
            if done:
                cache.arrays["candidates"] = np.stack([p for _, (_, p) in done])
            cache.save()

        missing = [s for s, sk in zip(specs, want, strict=True) if sk not in have]
        for i, (_, p, signals, seconds) in measure_all(kit, key, [(s, vote) for s in missing],
                                                       vote, threads, progress, workers):
            have[spec_key(missing[i])] = (_record(missing[i], signals, seconds), p)
            keep()
        keep()
    return cache.record["candidates"], cache.arrays["candidates"]


def _record(spec: MethodSpec, signals: dict, seconds: float) -> dict:
    return {"method": spec.label, "spec": spec.canonical(), "key": spec_key(spec),
            "signals": signals, "seconds": round(seconds, 3)}


def tuned_baseline(kit: TaskKit, key: AnswerKey, settings: Settings | None = None,
                   submissions: int | None = None, threads: int | None = None,
                   progress: Progress | None = None,
                   specs: list[MethodSpec] | None = None,
                   workers: int = 1, inductive: bool = False) -> tuple[dict, np.ndarray]:
    """The tuned classical baseline (see :mod:`aarlab.lab.tuned`): its row, reported on the
    final half, and its vote's test predictions (for a paired difference). ``inductive``: tuned
    on the grid's specs that are not transductive only (what the baseline was before the grid
    varied that flag), from the same cached runs."""
    settings = settings or get_settings()
    recs, preds = candidates(kit, key, threads, progress, specs, settings, workers)
    if inductive:
        keep = [i for i, r in enumerate(recs) if not r["spec"].get("transductive")]
        recs, preds = [recs[i] for i in keep], preds[keep]
    scorer = Scorer(key, kit.ids("test"))
    budget = submissions if submissions is not None else tuned.researcher_submissions(settings)
    votes = [majority_vote(p, kit.n_classes) for p in preds]
    cands = [tuned.Candidate(i, r["signals"].get(tuned.SIGNAL, float("-inf")), v,
                             scorer.score(v).pgr["feedback"])
             for i, (r, v) in enumerate(zip(recs, votes, strict=True))]
    floor = kit.weak_probs("test", kit.seeds[0]).argmax(1)  # where the server's Ladder starts
    parts = headline.task_parts(kit, key)  # the lab's own veto on its pick, applied alike
    choice = tuned.choose(cands, budget, tuned.server_release(settings, scorer, floor),
                          tuned.probe_limit(settings, len(scorer.test_ids)),
                          veto=lambda vote: parts.check(vote).vetoed)
    rec, vote = recs[choice.index], votes[choice.index]
    row = {"task": kit.name, "method": rec["method"], "spec": rec["spec"],
           **score_preds(scorer, preds[choice.index], kit.n_classes, vote_seeds_for(
               kit.seeds) or kit.seeds),
           "tuning": {"signal": tuned.SIGNAL, "candidates": len(recs),
                      "submissions_budget": budget, "submitted": len(choice.submitted),
                      "released": choice.released[-1] if choice.released else None,
                      "seconds": round(sum(r["seconds"] for r in recs), 1)}}
    return row, vote
