"""The search researcher's loop: propose a spec, run it, judge it, share what is worth sharing.

Runs inside its sandbox. Its only ways out are the lab's socket (``LabClient``) and its own
workspace. It sees no gold label of any split: it judges a spec by label-free signals computed
from the kit (``aarlab.w2s.signals``: cross-fitted agreement with held-out weak labels, A/B swap
consistency, agreement on the teacher's confident rows...), averaged over seeds and folded into
one selection score. The scoring server answers each submission with a Ladder-released feedback
PGR and whether it raised the best so far; the researcher reads that as a second, coarse signal:
the spec that raised it becomes the incumbent it builds on.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import re
import tarfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aarlab.client import BudgetExceeded, LabClient, LabError
from aarlab.errors import SpecError
from aarlab.researchers.search.notebook import Notebook
from aarlab.researchers.search.policy import SearchPolicy, key, normalise
from aarlab.tasks.kit import TaskKit
from aarlab.w2s import signals as sig
from aarlab.w2s.methods import describe
from aarlab.w2s.runner import run_experiment
from aarlab.w2s.spec import parse_spec

PROCESS_ID = uuid.uuid4().hex[:12]  # tells this process's events from a restarted one's
SPEC_BLOCK = re.compile(r"```json\s*(\{.*?\})\s*```", re.S)


@dataclass
class Budget:
    deadline: float  # unix time
    max_experiments: int
    max_submissions: int


class SearchResearcher:
    def __init__(self, kit: TaskKit, client: LabClient, workspace: Path, direction: str,
                 direction_methods: list[str], budget: Budget, seed: int = 0,
                 eval_seeds: int = 3, submit_margin: float = 0.003):
        self.kit, self.client, self.workspace = kit, client, workspace
        self.direction, self.budget = direction, budget
        self.seeds = kit.seeds[:eval_seeds]
        self.submit_margin = submit_margin
        self.notebook = Notebook(workspace / "notebook.jsonl")
        self.policy = SearchPolicy(describe(), direction_methods, random.Random(seed))
        self.best_submitted = -math.inf  # best selection score among submitted specs
        self.submissions = 0
        self.forum_seen: set[int] = set()
        self.queue: list[tuple[dict, str]] = []
        self.submitted: list[np.ndarray] = []  # prediction vectors sent this session
        self._restore()

    # -- memory --------------------------------------------------------------------------------
    def _restore(self) -> None:
        for e in self.notebook.entries():
            if e.get("score") is not None:
                self.policy.record(e["spec"], e["score"], e.get("source", "own"))
            else:
                self.policy.tried.add(key(e["spec"]))
            if e.get("submission_id"):
                self.submissions += 1
                self.best_submitted = max(self.best_submitted, e["score"])
                self.policy.record_release(e["spec"], e.get("released_pgr"),
                                           bool(e.get("new_best")))
            self.forum_seen.update(e.get("forum_seen", []))

    @property
    def experiments(self) -> int:
        return len(self.policy.tried)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        if not self.policy.known:
            self.queue.append(({"steps": [{"method": "weak_soft", "params": {}}]},
                               "baseline: vanilla W2S on soft weak labels"))
        while time.time() < self.budget.deadline and self.experiments < \
                self.budget.max_experiments:
            if self.experiments % 6 == 5:
                self.read_forum()
            spec, why = self.queue.pop(0) if self.queue else self.policy.propose()
            self.step(normalise(spec), why)
            if self.experiments % 10 == 0:
                self.share_insight()

    def step(self, spec: dict, why: str) -> None:
        label = _label(spec)
        self._event("idea", {"spec": label, "why": why})
        entry: dict = {"spec": spec, "why": why, "source": why.split(" ")[0],
                       "time": time.time()}
        try:
            cpu0 = time.process_time()
            result = run_experiment(self.kit, spec, self.seeds, signals=True)
            cpu = time.process_time() - cpu0
        except SpecError as e:
            entry.update(score=None, error=str(e))
            self.policy.tried.add(key(spec))
            self.notebook.append(entry)
            return
        signals = result.signals
        score = sig.selection_score(signals)
        diag = result.diagnostics[self.seeds[0]]
        entry.update(score=score, signals=signals, seconds=result.seconds)
        self.policy.record(spec, score, entry["source"])
        # CPU inside the experiment and of this whole process so far: the lab's overhead is
        # what the researchers' processes spent outside experiments.
        self._event("experiment", {"spec": label, "signal": score, "signals": signals,
                                   "seconds": result.seconds, "cpu_s": cpu,
                                   "process_cpu_s": time.process_time(), "process": PROCESS_ID,
                                   "kept": diag.get("kept")})
        if self._worth_submitting(score):
            entry.update(self.submit(spec, result, score, signals))
        self.notebook.append(entry)

    def _worth_submitting(self, score: float) -> bool:
        return (self.submissions < self.budget.max_submissions
                and score > self.best_submitted + self.submit_margin)

    # -- sharing -------------------------------------------------------------------------------
    def submit(self, spec: dict, result, score: float, signals: dict[str, float]) -> dict:
        votes = np.stack([result[s] for s in self.seeds])
        pred = np.array([np.bincount(col, minlength=self.kit.n_classes).argmax()
                         for col in votes.T])
        if self._too_close(pred):
            # Nearly the same answers as an earlier submission: the server would flag it as a
            # probe and say nothing new, so it would only spend budget.
            self._event("note", {"text": "skipped a submission: within a few rows of an "
                                         "earlier one"})
            return {}
        self.submitted.append(pred)
        predictions = dict(zip(self.kit.ids("test"), self.kit.labels_to_values(pred),
                               strict=True))
        canonical = parse_spec(spec).canonical()
        try:
            snap = self.client.upload_snapshot(self._snapshot(spec, canonical, score, signals))
            sub = self.client.submit(self.kit.name, predictions, method=_label(spec)[:480],
                                     snapshot_id=snap["id"], seeds=list(self.seeds))
        except BudgetExceeded as e:
            self.budget.max_submissions = self.submissions  # stop trying; the server said no
            self._event("note", {"text": f"submission budget reached: {e.message}"})
            return {}
        except LabError as e:
            self._event("error", {"text": f"submission failed: {e.message}"})
            return {}
        self.submissions += 1
        self.best_submitted = max(self.best_submitted, score)
        released, new_best = sub.get("released_pgr"), bool(sub.get("new_best"))
        self.policy.record_release(spec, released, new_best)
        verdict = ("raised my released feedback PGR to "
                   f"{released:.3f}" if new_best and released is not None else
                   "did not raise my released feedback PGR (the Ladder kept "
                   f"{_fmt(released)}): the signals overrated it")
        body = (f"Method `{_label(spec)}` (direction: {self.direction}).\n\n"
                f"Selection score {score:.4f} from label-free signals (mean of "
                f"{len(self.seeds)} seeds):\n\n{_signal_lines(signals)}\n\n"
                f"Submitted as a {len(self.seeds)}-seed vote; it {verdict}.\n\nSpec:\n\n"
                f"```json\n{json.dumps(canonical, indent=1)}\n```\n")
        try:
            self.client.post_finding("result", f"{_label(spec)[:150]}", body,
                                     task=self.kit.name, submission_id=sub["id"],
                                     snapshot_id=snap["id"],
                                     tags=[self.direction, *{s["method"] for s in spec["steps"]}])
        except LabError as e:
            self._event("error", {"text": f"could not post result: {e.message}"})
        return {"submission_id": sub["id"], "released_pgr": released, "new_best": new_best,
                "snapshot_id": snap["id"]}

    def _too_close(self, pred: np.ndarray, share: float = 0.02, rows: int = 20) -> bool:
        limit = max(rows, int(share * len(pred)))
        return any(int((pred != old).sum()) < limit for old in self.submitted)

    def _snapshot(self, spec: dict, canonical: dict, score: float,
                  signals: dict[str, float]) -> bytes:
        files = {
            "spec.json": json.dumps(canonical, indent=1).encode(),
            "README.md": (f"# {_label(spec)}\n\nReproduce: `aarlab baseline --task "
                          f"{self.kit.name} --spec spec.json`\n\nSelection score (label-free): "
                          f"{score:.4f}\n\n{_signal_lines(signals)}\n").encode(),
        }
        nb = self.workspace / "notebook.jsonl"
        if nb.exists():
            files["notebook.jsonl"] = nb.read_bytes()[-2_000_000:]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def read_forum(self) -> None:
        """Queue the best specs others found, to re-run them here and build on them."""
        try:
            found = self.client.findings(kind="result", task=self.kit.name, sort="pgr", limit=10)
        except LabError:
            return
        items = found.get("items", found) if isinstance(found, dict) else found
        for f in items:
            if f["id"] in self.forum_seen:
                continue
            self.forum_seen.add(f["id"])
            m = SPEC_BLOCK.search(f.get("body", ""))
            if not m:
                continue
            try:
                spec = normalise(json.loads(m.group(1)))
                parse_spec(spec)
            except (ValueError, SpecError):
                continue
            if key(spec) not in self.policy.tried:
                self.queue.append((spec, f"forum:{f['id']} result by {f.get('author', '?')}"))
        self.notebook.append({"spec": {"steps": []}, "score": None, "why": "read forum",
                              "forum_seen": sorted(self.forum_seen)})

    def share_insight(self) -> None:
        """Post which first steps scored best on the label-free signals so far, with counts,
        and which spec the scorer confirmed (the incumbent)."""
        by_method: dict[str, list[float]] = defaultdict(list)
        for c in self.policy.known:
            if c.spec.get("steps"):
                by_method[c.spec["steps"][0]["method"]].append(c.score)
        base = by_method.get("weak_soft")
        if not base or len(by_method) < 2:
            return
        ref = float(np.max(base))
        lines = [f"- `{m}`: best {max(v):.4f} ({max(v) - ref:+.4f} vs weak_soft), "
                 f"mean {np.mean(v):.4f} over {len(v)} specs"
                 for m, v in sorted(by_method.items(), key=lambda kv: -max(kv[1]))]
        inc = next((c for c in self.policy.known
                    if self.policy.incumbent and key(c.spec) == self.policy.incumbent), None)
        confirmed = (f"\n\nIncumbent (raised my released feedback PGR to {_fmt(inc.released)}): "
                     f"`{_label(inc.spec)}`." if inc else "")
        body = (f"Label-free selection score ({' + '.join(sig.SELECTION)}) by method family on "
                f"{self.kit.name} after {self.experiments} experiments (no gold label was "
                "used):\n\n" + "\n".join(lines) + confirmed)
        top = max(by_method, key=lambda m: max(by_method[m]))
        with contextlib.suppress(LabError):
            self.client.post_finding("insight", f"{top} leads on {self.kit.name} so far", body,
                                     task=self.kit.name, tags=[self.direction, "summary"])

    def _event(self, kind: str, payload: dict) -> None:
        # Telemetry must never stop research: a lost event only dims the live table.
        with contextlib.suppress(LabError):
            self.client.post("/v1/lab/events", json={"kind": kind, "payload": payload})


def _label(spec: dict) -> str:
    return parse_spec(spec).label


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.3f}"


def _signal_lines(signals: dict[str, float]) -> str:
    about = {**sig.SIGNALS, "selection": "selection score: " + " + ".join(sig.SELECTION)}
    return "\n".join(f"- `{k}` = {v:.4f} ({about.get(k, '')})" for k, v in signals.items())
