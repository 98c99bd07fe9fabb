"""The search researcher's loop: one hypothesis per round, tested, judged, written up, shared.

Runs inside its sandbox. Its only ways out are the lab's socket (``LabClient``) and its own
workspace. It sees no gold label of any split. Each round it

1. states a hypothesis (``hypotheses.Planner``: its own method family, a recombination across
   families, another researcher's posted spec, or a variant of its best), with why;
2. runs it on the main task and on every suite task, and reads the label-free signals
   (``aarlab.w2s.signals``); specs rank by the suite mean of their selection scores;
3. submits when the signals say the spec is promising (above every earlier submission and
   not below ``weak_soft`` on any suite task) *and* the server's paired Ladder could resolve the
   gain (``resolve.LadderView``); or, paced, when the ranking cannot tell it from the best and it
   departs from every earlier submission on many rows (``spend.py``): then only a scored
   submission can tell them apart. A released score is a coarse, noisy answer, and a
   non-release means "not resolvably better", not "worse";
4. posts the outcome whether it helped or not: a ``result`` pointing at the scored submission,
   or an ``insight`` with the label-free numbers; and writes the round to ``notebook.md`` (prose)
   and ``notebook.jsonl`` (its memory across restarts), then publishes both to the lab (the
   dashboard shows the lab's copy, never the workspace).

Before the first round it asks whether each task's teacher is informative at all
(``teacher.py``): where it is not, specs are scored without the agreement-with-the-teacher term
and the label-free families are tried first.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import math
import random
import re
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from aarlab.archive import tar_writer
from aarlab.client import BudgetExceeded, LabClient, LabError
from aarlab.errors import SpecError
from aarlab.kits.kit import TaskKit
from aarlab.lab.directions import family_of, load_directions
from aarlab.researchers.search import spend
from aarlab.researchers.search import suite as st
from aarlab.researchers.search.hypotheses import Hypothesis, Planner
from aarlab.researchers.search.notebook import Journal, Notebook
from aarlab.researchers.search.notebook import publish as publish_notebook
from aarlab.researchers.search.policy import SearchPolicy, key, normalise
from aarlab.researchers.search.resolve import LadderView
from aarlab.w2s import signals as sig
from aarlab.w2s.methods import describe
from aarlab.w2s.spec import HeadSpec, parse_spec

TIE = "tie: "  # _decide's reason when it submits an informative tie (spend.py)
PROCESS_ID = uuid.uuid4().hex[:12]  # tells this process's events from a restarted one's
SPEC_BLOCK = re.compile(r"```json\s*(\{.*?\})\s*```", re.S)
SPEC_BYTES = 64_000  # a posted spec.json larger than this is not a spec


@dataclass
class Budget:
    deadline: float  # unix time
    max_experiments: int
    max_submissions: int


class SearchResearcher:
    def __init__(self, kit: TaskKit, client: LabClient, workspace: Path, direction: str,
                 direction_methods: list[str], budget: Budget, seed: int = 0,
                 eval_seeds: int = 3, submit_margin: float = 0.003,
                 suite: dict[str, TaskKit] | None = None, ladder: dict | None = None):
        self.kit, self.client, self.workspace = kit, client, workspace
        self.direction, self.budget = direction, budget
        self.suite = st.Suite(kit, suite, eval_seeds)
        self.seeds = self.suite.seeds(kit.name)
        # Is each teacher informative at all? Decided once, from the kits, before any round
        # (so restored scores were computed the same way).
        self.teacher = self.suite.teacher_checks()
        self.suite.teacher_free = {t for t, c in self.teacher.items() if c.uninformative}
        self.submit_margin = submit_margin
        self.notebook = Notebook(workspace / "notebook.jsonl")
        self.journal = Journal(workspace / "notebook.md")
        described = describe()
        directions = load_directions()
        own = next((d for d in directions if d.name == direction), None)
        family = list(direction_methods) + [m for m in (own.resolve(described) if own else ())
                                            if m not in direction_methods]
        rng = random.Random(seed)
        self.policy = SearchPolicy(described, family, rng, default_head=asdict(
            HeadSpec().config(kit.manifest.get("student_head"))))
        fam = {m["name"]: family_of(m["name"], directions, described) for m in described}
        self.planner = Planner(self.policy, direction, family, fam, rng)
        self.planner.own_tasks = set(self.suite.tasks)
        if kit.name in self.suite.teacher_free:
            self.planner.teacher_note = self.teacher[kit.name].text()
        # The Ladder as the researcher models it, per task; the reference is what a new
        # submission must beat: the teacher's predictions, then my best released submission.
        self.ladders = {t: LadderView.for_task(len(k.ids("test")), _weak_test(k), **(ladder or {}))
                        for t, k in self.suite.kits.items()}
        self.reference = {t: k.weak_probs("test", 0).argmax(1) for t, k in self.suite.kits.items()}
        self.reference_score: dict[str, float | None] = dict.fromkeys(self.suite.kits)
        self.base: dict[str, float] = {}  # weak_soft's selection score per task
        self.base_balanced: dict[str, float] = {}  # and its held-out balanced agreement
        self.closed: set[str] = set()  # tasks the server would not score for me
        self.best_submitted = -math.inf
        self.submissions = 0
        self.rounds = 0
        self.forum_seen: set[int] = set()
        self.submitted: list[np.ndarray] = []  # my main-task submissions' predictions
        self.ties: list[float] = []  # when I submitted a tie the Ladder could not resolve
        self.started = time.time()
        self.n_heldout = len(kit.ids("train_unlabel"))
        self.adopt_per_read = 2  # a few of the best others' specs, not their whole history
        self.name: str | None = None
        self.canon_tried: set[str] = set()  # specs run, defaults filled in
        self.outcomes_seen: dict[str, dict] = {}  # a round's outcome digest -> its first spec
        self._restore()

    # -- memory --------------------------------------------------------------------------------
    def _restore(self) -> None:
        for e in self.notebook.entries():
            if e.get("round"):
                self.rounds = max(self.rounds, int(e["round"]))
            if e.get("score") is not None:
                self.policy.record(e["spec"], e["score"], e.get("source", "own"),
                                   passed=not e.get("guard_failed")
                                   and e.get("transduction") is not False)
                self.canon_tried.add(_canon(e["spec"]))
                if e.get("move") == "baseline":
                    self.base.update(e.get("per_task", {}))
                    self.base_balanced.update(e.get("per_task_balanced", {}))
            elif e.get("spec", {}).get("steps"):
                self.policy.tried.add(key(e["spec"]))
            if isinstance(e.get("outcome"), str) and isinstance(e.get("spec"), dict):
                self.outcomes_seen.setdefault(e["outcome"], e["spec"])
            inert = e.get("inert")
            if isinstance(inert, list):
                self.policy.inert.update(tuple(x) for x in inert
                                         if isinstance(x, list) and len(x) == 3
                                         and all(isinstance(v, str) for v in x))
            if e.get("time"):
                self.started = min(self.started, float(e["time"]))
            if "transduction" in e:  # the switch, as the server settled it
                self.planner.transduction = bool(e["transduction"])
            if e.get("submission_id"):
                self.submissions += 1
                if e.get("transduction") is not False:  # a refused switch sets no bar
                    self.best_submitted = max(self.best_submitted, e["score"])
                self.policy.record_release(e["spec"], e.get("released_pgr"),
                                           bool(e.get("new_best")))
                if e.get("tie"):
                    self.ties.append(float(e.get("time", 0.0)))
                ref = self.workspace / "submitted" / f"{e['submission_id']}.npy"
                if ref.is_file() and not ref.is_symlink():
                    pred = np.load(ref, allow_pickle=False)
                    self.submitted.append(pred)
                    if e.get("new_best"):
                        self.reference[self.kit.name] = pred
                        self.reference_score[self.kit.name] = e["score"]
            self.forum_seen.update(e.get("forum_seen", []))

    @property
    def experiments(self) -> int:
        return len(self.policy.tried)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> None:
        if self.rounds == 0:
            self._open_notebook()
            self.read_forum()  # start from the lab's best posted spec, if there is one
        while time.time() < self.budget.deadline and self.experiments < \
                self.budget.max_experiments:
            if self.rounds % 4 == 3:
                self.read_forum()
            self.round(self._next_new())
            self._publish()
        self._publish(final=True)

    def _publish(self, final: bool = False) -> None:
        """The dashboard shows the notebook the lab keeps: hand it the newest part of each."""
        publish_notebook(self.client, (self.notebook.path, self.journal.path), final=final)

    def _next_new(self) -> Hypothesis:
        """The planner's next hypothesis whose spec, with defaults filled in, was not run yet
        (an adopted spec often spells out defaults that my own spec left implicit)."""
        for _ in range(30):
            h = self.planner.next()
            if h.lab_best or _canon(h.spec) not in self.canon_tried:
                return h
            self.policy.tried.add(key(h.spec))
        return h

    def _open_notebook(self) -> None:
        fam = ", ".join(f"`{m}`" for m in self.planner.family_methods) or "any method"
        tasks = ", ".join(self.suite.tasks)
        text = (f"# Lab notebook: direction {self.direction}\n\n"
                f"Tasks: {tasks} (specs rank by the suite mean of the label-free selection "
                f"score, {' + '.join(sig.SELECTION)}). My family's methods: {fam}.\n\n"
                f"Plan: baseline first, then each method of my family at its defaults, then "
                f"recombine the best steps across families and build on what others post. I "
                f"submit only when the signals clear every earlier submission and weak_soft on "
                f"each task, and the paired Ladder could resolve the gain (on {self.kit.name}: "
                f"{self.ladders[self.kit.name].n_feedback} feedback rows, so I must depart "
                f"from my reference on at least "
                f"{self.ladders[self.kit.name].min_disagreement():.1%} of rows); a candidate "
                f"it cannot resolve goes in, paced, when my ranking cannot tell it from the "
                f"best and it departs from every earlier submission on at least "
                f"{spend.DISTINCT_SHARE:.0%} of rows.\n\nTeacher check: "
                + "; ".join(c.text() for c in self.teacher.values())
                + (". Where it looks uninformative, I score specs by smoothness alone (agreement "
                   "with a coin says nothing) and try the label-free families first."
                   if self.suite.teacher_free else "."))
        self.journal.write(text)
        with contextlib.suppress(LabError):
            self.client.post_finding(
                "hypothesis", f"{self.direction}: does this family beat weak_soft on "
                f"{self.kit.name}?", text.split("\n\n", 1)[1], task=self.kit.name,
                tags=[self.direction, "plan"])

    def round(self, h: Hypothesis) -> None:
        self.rounds += 1
        spec = normalise(h.spec)
        entry: dict = {"round": self.rounds, "move": h.move, "family": h.family, "spec": spec,
                       "why": h.why, "hypothesis": h.why, "source": h.source,
                       "time": time.time()}
        head = f"## Round {self.rounds} · {h.move} · {h.family}\n\n**Hypothesis.** {h.why}\n\n"
        label = None
        try:
            label = _label(spec)  # a planner's mistake is refused here, before any telemetry
            self._event("idea", {"spec": label, "why": h.why})
            head += f"**Ran** `{label}`"
            cpu0 = time.process_time()
            outcomes = self.suite.evaluate(spec)
            cpu = time.process_time() - cpu0
        except SpecError as e:  # a refused spec costs a round, never the researcher
            entry.update(score=None, error=str(e))
            self.policy.tried.add(key(spec))
            self.notebook.append(entry)
            what = ("The library refused the spec I made for it" if label is None
                    else ": the library refused it")
            self.journal.write(f"{head}{what} ({e}). Nothing learnt.")
            return
        main = outcomes[self.kit.name]
        score = st.suite_mean(outcomes)
        per_task = {t: o.score for t, o in outcomes.items()}
        if h.lab_best and self.reference_score[self.kit.name] is None:
            # The server judges my first submission against the lab's best release: its
            # predictions, reproduced here from its spec, are the reference to beat.
            self.reference[self.kit.name] = main.pred
            self.reference_score[self.kit.name] = main.score
            entry["reference"] = True
        balanced = {t: o.signals[st.BALANCED] for t, o in outcomes.items()
                    if st.BALANCED in o.signals}
        if h.move == "baseline":
            self.base.update(per_task)
            self.base_balanced.update(balanced)
        self.planner.loss_band = spend.tie_band(main.signals, len(main.pred), self.n_heldout,
                                                self.kit.name in self.suite.teacher_free)
        guard = self._guard(outcomes)
        failed = guard[0]
        self.policy.record(spec, score, h.source, passed=not failed)
        self.canon_tried.add(_canon(spec))
        self._experiment_event(label, outcomes, score, cpu)
        digest = _outcome_digest(outcomes, score)
        earlier, idle = self._same_outcome(spec, digest)
        verdict = self._verdict(h, score, per_task) + _same_text(earlier, idle)
        # A reproduced lab best may be my first submission (an exact copy is not a probe): else a
        # lab that reads a better spec than it can beat reports a worse one as its pick.
        decision, why_not = self._decide(score, outcomes, first_ok=(
            h.move != "baseline" and (not h.lab_best or self.submissions == 0)), guard=guard,
            server_decides=h.move == "transduce")
        tie = why_not[len(TIE):] if decision and why_not.startswith(TIE) else ""
        entry.update(score=score, signals=main.signals, per_task=per_task,
                     per_task_balanced=balanced, verdict=verdict, guard_failed=failed,
                     seconds=main.seconds, outcome=digest)
        if earlier is not None:
            entry.update(same_as=earlier, inert=[list(x) for x in idle])
        receipt: dict = {}
        best_before = self.best_submitted
        released_before = max((c.released for c in self.policy.known
                               if c.released is not None), default=None)
        if decision:
            sent, sent_outcomes, sent_score, note = self._travel_form(spec, outcomes, score,
                                                                     digest)
            if h.move == "transduce" and (sent is None or _outcome_digest(
                    sent_outcomes, sent_score) != digest) and self.planner.fully_guarded(spec):
                # The switch is judged on the spec it switches: a form goes in only where it
                # gives these very predictions (a fallback its guard never used here).
                sent, sent_outcomes, sent_score, note = spec, outcomes, score, ""
            if sent is None:
                receipt = {"why_not": note.strip()}
            else:
                receipt = self.submit(sent, h, sent_outcomes, sent_score, verdict + note)
                if note:
                    entry["submitted_as"] = {"spec": sent, "note": note.strip()}
            why_not = receipt.pop("why_not", "")
            if tie and receipt.get("submission_id"):
                self.ties.append(time.time())
                entry.update(tie=True, why_submitted=tie)
        entry.update(receipt, decision=("submitted" if receipt.get("submission_id") else
                                        "not submitted: " + why_not))
        if h.move == "transduce":
            verdict += self._settle_transduction(
                [spec, entry.get("submitted_as", {}).get("spec", spec)], receipt, best_before)
            entry.update(verdict=verdict, transduction=self.planner.transduction)
        elif self._adopted_switch(spec, receipt, released_before, h.lab_best):
            verdict += (" A transductive spec, and the server released more for it than for "
                        "anything of mine" + (" (the lab's best release on this task)"
                                              if h.lab_best else "")
                        + ": every later spec of mine is transductive.")
            entry.update(verdict=verdict, transduction=True)
        if not receipt.get("submission_id"):
            self._post_insight(spec, h, outcomes, score, verdict, why_not)
        follow = self.planner.guard_followup(spec, failed) if failed else None
        if follow is not None and key(follow.spec) not in self.policy.tried:
            self.planner.queue.append(follow)
        self.notebook.append(entry)
        self.journal.write(
            f"{head}.\n\n**Evidence** (label-free, {len(self.seeds)} seeds):\n\n"
            f"{_task_lines(outcomes, self.base)}\n\n**Verdict.** {verdict}\n\n**Decision.** "
            + (f"submitted as #{receipt['submission_id']}"
               + (f" ({tie})" if tie else "")
               + f"; the server {_release_text(receipt)}." if receipt.get("submission_id") else
               f"not submitted: {why_not}."))

    def _settle_transduction(self, specs: list[dict], receipt: dict, best_before: float) -> str:
        """What the ``transduce`` round settles (``Planner.transduce``), as a sentence for the
        verdict. Released: every later spec of mine is transductive. Otherwise none is, the
        transductive spec (``specs``: as run, and as sent) is no parent to build on, and its
        selection score (which the switch inflates) is no bar for my later plain submissions."""
        released = bool(receipt.get("new_best"))
        self.planner.transduction = released
        if released:
            return (" The Ladder released it: the switch holds on this task, so every later "
                    "spec of mine is transductive.")
        self.best_submitted = best_before
        refused = {key(s) for s in specs}
        for c in self.policy.known:
            if key(c.spec) in refused:
                c.passed = False
        return (" The switch did not earn a release" + (
            " (no resolvable paired gain on the feedback rows)" if receipt.get("submission_id")
            else " (it was not sent)") + ", so my later specs stay plain.")

    def _adopted_switch(self, spec: dict, receipt: dict, released_before: float | None,
                        lab_best: bool = False) -> bool:
        """Does someone else's transductive spec settle the switch (True, and set)? Only while
        it is unsettled, and only if the server released more for it than for any spec of
        mine: it is the lab's best release on this task (``lab_best``: reproduced, it is my
        reference whether or not I submit it), or my submission of it was a new best of mine
        or an exact copy of a higher release."""
        if self.planner.transduction is not None or not spec.get("transductive"):
            return False
        if not lab_best:
            shown = receipt.get("released_pgr")
            if not receipt.get("submission_id") or shown is None:
                return False
            if not (receipt.get("new_best") or released_before is None
                    or shown > released_before):
                return False
        self.planner.transduction = True
        return True

    def _experiment_event(self, label: str, outcomes: dict[str, st.TaskOutcome], score: float,
                          cpu: float) -> None:
        """One run of ``suite.evaluate`` for the lab's telemetry (its CPU counts as experiment
        time, not overhead)."""
        self._event("experiment", {"spec": label, "signal": score,
                                   "signals": outcomes[self.kit.name].signals,
                                   "seconds": sum(o.seconds for o in outcomes.values()),
                                   "cpu_s": cpu, "process_cpu_s": time.process_time(),
                                   "process": PROCESS_ID})

    def _travel_form(self, spec: dict, outcomes: dict[str, st.TaskOutcome], score: float,
                     digest: str) -> tuple[dict | None, dict[str, st.TaskOutcome], float, str]:
        """What to submit for ``spec`` (the spec, its outcomes and score), and a sentence saying
        why when it is not ``spec``; ``None`` as the spec: not submitted, and the sentence says
        why.
        A lab's pick is a method others will run on tasks it never saw, so a spec whose labels
        come from a source that overrules the teacher goes in

        1. *hedged* when that costs nothing the ranking can see: guarded, with a fallback
           (``Planner.hedge_fallback``): where the source is dropped, the spec's other steps
           with the loss that does best alone on the teacher's own labels run on the teacher's
           labels. It goes in when it passes the regression guard and its guard kept the source
           on every seed here (the same predictions), or its selection score is within the
           ranking's tie band of ``spec``'s (``spend.tie_band``, 2 SE of the difference;
           0.017-0.022 on snli-pref). The loss matters where the source falls back: the guarded
           stack with `window` kept 0.29-0.55 of its snli-pref PGR on five of seven other
           tasks, with `logconf` 0.61-1.01 on all of them (README, issue 18); as a fallback
           it costs nothing where the source holds up;
        2. else *guarded* when the guarded form gives these very predictions on every task (so
           the same score), or passes the regression guard within the tie band of ``spec``'s
           score: the unguarded ``noisy_em`` stacks fell below copying the teacher on four of
           seven other tasks where the guarded one fell below on none;
        3. else not at all: a source whose guard falls back here, at a cost the ranking can
           see, is a gain this lab cannot vouch for elsewhere, and so is a spec with a second
           source that its one guard does not cover (``Planner.one_source``).

        A reproduced lab best too: else a lab that starts from an earlier lab's unguarded
        release reports it as its own pick (a form that departs from it on many rows is no
        probe, and gets its own release). Not where the teacher looks uninformative: the guard
        measures agreement with it, and a label-free source departs from a chance teacher
        everywhere."""
        steps = copy.deepcopy(spec.get("steps", []))
        if set(outcomes) & set(self.suite.teacher_free) or \
                not self.planner.has_source(spec):
            return spec, outcomes, score, ""
        guarded_now = self.planner.guard_source(steps) is not None
        extra = self.planner.unguarded(steps)
        if extra:
            return None, outcomes, score, (
                f"{', '.join(f'`{m}`' for m in extra)} overrules the teacher "
                "as its labels source does, and a spec has one guard: unguarded, such a step "
                "fell below copying the teacher on tasks this lab never saw")
        # A form keeps the spec's own head and transductive flag: only its steps change.
        kept = {"head": copy.deepcopy(spec.get("head", {})),
                **({"transductive": True} if spec.get("transductive") else {})}
        main = outcomes[self.kit.name]
        band = spend.tie_band(main.signals, len(main.pred), self.n_heldout)
        hedged_steps = copy.deepcopy(steps)
        why = self.planner.hedge_fallback(hedged_steps)
        note = ""
        if why is not None:
            hedged = normalise({"steps": hedged_steps, **kept})
            got = self._evaluate_form(hedged)
            if got is not None:
                h_score = st.suite_mean(got)
                refused = self._guard(got)[0]
                self._know(hedged, h_score, passed=not refused)
                same = _outcome_digest(got, h_score) == digest
                if not refused and (same or h_score >= score - band):
                    return hedged, got, h_score, (
                        f" It goes in hedged, as `{_label(hedged)}` "
                        + ("(the same predictions here: its guard kept the source on every "
                           "seed)" if same else
                           f"(score {h_score:.4f}, within {band:.4f} of {score:.4f}: the "
                           "ranking cannot tell them apart)") + f". {why}.")
                note = (f" Its hedged form `{_label(hedged)}` scored {h_score:.4f}"
                        + (f", refused by the regression guard on {', '.join(refused)}"
                           if refused else f", more than {band:.4f} below {score:.4f}")
                        + ", so it goes in without a fallback.")
        if not guarded_now:
            return spec, outcomes, score, note
        guarded = normalise({"steps": steps, **kept})
        got = self._evaluate_form(guarded)
        if got is None:
            return None, outcomes, score, (
                f"the library refused its guarded form `{_label(guarded)}`, and "
                "an unguarded source is no pick for a task this lab never saw")
        g_score = st.suite_mean(got)
        refused = self._guard(got)[0]
        self._know(guarded, g_score, passed=not refused)
        if _outcome_digest(got, g_score) == digest:
            return guarded, outcomes, score, note + (
                f" It goes in as `{_label(guarded)}`: the same predictions here, and behind its "
                "held-out guard the source falls back to the teacher on a task where its "
                "departures do not hold up.")
        if not refused and g_score >= score - band:
            return guarded, got, g_score, note + (
                f" It goes in as `{_label(guarded)}` (score {g_score:.4f}, within {band:.4f} of "
                f"{score:.4f}: the ranking cannot tell them apart): behind its held-out guard "
                "the source falls back to the teacher where its departures do not hold up, as "
                "on some seed here.")
        return None, outcomes, score, (
            f"its guarded form `{_label(guarded)}` scored {g_score:.4f}"
            + (f", refused by the regression guard on {', '.join(refused)}" if refused else
               f", more than {band:.4f} below {score:.4f}")
            + ": the guard fell back to the teacher on some seed here, and an unguarded source "
            "is no pick for a task this lab never saw")

    def _know(self, spec: dict, score: float, passed: bool = True) -> None:
        """A form of a spec, evaluated: known to the policy (once) and never run again."""
        if key(spec) not in self.policy.tried:
            self.policy.record(spec, score, "own", passed=passed)
        self.canon_tried.add(_canon(spec))

    def _evaluate_form(self, spec: dict) -> dict[str, st.TaskOutcome] | None:
        """``suite.evaluate`` of a form of a spec about to be submitted (telemetry included);
        ``None`` if the library refuses it."""
        try:
            cpu0 = time.process_time()
            got = self.suite.evaluate(spec)
            cpu = time.process_time() - cpu0
        except SpecError:
            return None
        self._experiment_event(_label(spec), got, st.suite_mean(got), cpu)
        return got

    def _same_outcome(self, spec: dict, digest: str) -> tuple[dict | None, list[tuple]]:
        """The earlier spec of mine that gave this very outcome (None if none), and the
        parameters the pair shows idle: the policy learns them, so tuning leaves them alone
        (tuning ``guarded``'s tolerance, or a kNN probe's ``c``, otherwise repeats a round)."""
        earlier = self.outcomes_seen.setdefault(digest, spec)
        if earlier is spec or key(earlier) == key(spec):
            return None, []
        idle = self.policy.inert_params(_canonical(earlier), _canonical(spec))
        self.policy.inert.update(idle)
        return earlier, idle

    def _verdict(self, h: Hypothesis, score: float, per_task: dict[str, float]) -> str:
        if h.move == "baseline":
            return f"baseline selection score {score:.4f} (suite mean)."
        base = float(np.mean([self.base[t] for t in per_task if t in self.base])) \
            if self.base else None
        parts = []
        if base is not None:
            d = score - base
            parts.append(f"{'helped' if d > 0 else 'did not help'} against weak_soft "
                         f"({d:+.4f} suite mean)")
        parents = [c for c in self.policy.known if key(c.spec) in h.parents]
        if parents:
            best_parent = max(c.score for c in parents)
            parts.append(f"{score - best_parent:+.4f} against its best parent")
        rank = 1 + sum(c.score > score for c in self.policy.known)
        parts.append(f"rank {rank} of {len(self.policy.known)} so far")
        return "; ".join(parts) + "."

    def _decide(self, score: float, outcomes: dict[str, st.TaskOutcome],
                first_ok: bool = False, guard: tuple[list[str], str] | None = None,
                server_decides: bool = False) -> tuple[bool, str]:
        """(submit?, why not): promising by the signals, and resolvable by the Ladder on the
        main task; or an informative tie. Never below weak_soft on any task (the guard).

        A researcher's first candidate (of its own, or the lab's best release it has just
        reproduced) that passes the regression guard goes in even when the Ladder could not
        resolve its gain: without one scored submission the server, the leaderboard and the
        lab's headline know nothing of this researcher (on a small test set no gain is ever
        resolvable, and a lab would end with no pick at all), and a lab whose researchers all
        started from a better release than they could beat reported a worse pick. Later own
        candidates the Ladder cannot resolve go in when ``spend.decide`` calls them informative
        ties; the second item then starts with ``TIE`` and says why. ``server_decides``: a
        question the signals cannot answer (the ``transduce`` switch) goes in whatever its
        score, once it passes the guard.
        """
        if self.submissions >= self.budget.max_submissions:
            return False, "submission budget spent"
        failed, refused = guard if guard is not None else self._guard(outcomes)
        if failed:
            return False, refused
        if server_decides:
            return True, ""
        r = self._resolvability(self.kit.name, outcomes[self.kit.name])
        clears = score > self.best_submitted + self.submit_margin
        if clears and (r.resolvable or (first_ok and self.submissions == 0)):
            return True, ""
        why = (f"the Ladder could not resolve it ({r.text()})" if clears else
               f"suite score {score:.4f} does not clear my best submitted "
               f"{self.best_submitted:.4f} by the margin {self.submit_margin}")
        if not first_ok:  # the baseline and a reproduced release are never ties worth a try
            return False, why
        t = self._tie(score, outcomes[self.kit.name])
        return (True, TIE + t.why) if t.ok else (False, f"{why}; {t.why}")

    def _guard(self, outcomes: dict[str, st.TaskOutcome]) -> tuple[list[str], str]:
        """The regression guard: (tasks on which it refuses these outcomes, by either of its
        tests; why, for the notebook; "" when it passes them)."""
        worse = st.regressions(outcomes, self.base)
        lost = st.collapses(outcomes, self.base_balanced, self.suite.teacher_free)
        why = (f"regression guard: below weak_soft's signals on {', '.join(worse)}" if worse
               else f"regression guard: loses more than {st.BALANCED_DROP} of weak_soft's "
                    f"held-out balanced agreement with the teacher on {', '.join(lost)}"
               if lost else "")
        return list(dict.fromkeys(worse + lost)), why

    def _tie(self, score: float, main: st.TaskOutcome) -> spend.Spend:
        best = max(c.score for c in self.policy.known)
        band = spend.tie_band(main.signals, len(main.pred), self.n_heldout,
                              self.kit.name in self.suite.teacher_free)
        now = time.time()
        used = sum(t > now - spend.HOUR for t in self.ties)
        allowed = min(spend.allowance(now - self.started, self.budget.deadline - self.started),
                      self.budget.max_submissions - self.submissions)
        return spend.decide(score, best, band, main.pred, self.submitted, used, allowed)

    def _resolvability(self, task: str, o: st.TaskOutcome):
        ladder, ref_score = self.ladders[task], self.reference_score[task]
        gain = None if ref_score is None else ladder.signal_gain(o.score - ref_score)
        return ladder.assess(o.pred, self.reference[task], gain)

    # -- sharing -------------------------------------------------------------------------------
    def submit(self, spec: dict, h: Hypothesis, outcomes: dict[str, st.TaskOutcome],
               score: float, verdict: str) -> dict:
        main = outcomes[self.kit.name]
        if self._too_close(main.pred):
            return {"why_not": "within a few rows of an earlier submission (a probe to the "
                               "server: it would say nothing new)"}
        canonical = parse_spec(spec).canonical()
        try:
            snap = self.client.upload_snapshot(self._snapshot(spec, canonical, h, score,
                                                              main.signals))
            sub = self._submit_one(self.kit, main, spec, snap["id"])
        except BudgetExceeded as e:
            if e.retry_after is None:  # the whole budget: the server gives no time to wait
                self.budget.max_submissions = self.submissions
                return {"why_not": f"the server's submission budget is spent ({e.message})"}
            # The hourly cap, the write rate the upload shares with telemetry and posts, or
            # requests in flight: a refusal for now, which a later round may meet again.
            self._event("error", {"text": f"submission refused for now: {e.message}"})
            return {"why_not": f"the server refused it for now ({e.message}); a later round "
                               "may send it"}
        except LabError as e:
            self._event("error", {"text": f"submission failed: {e.message}"})
            return {"why_not": f"the submission failed ({e.message})"}
        self.submissions += 1
        self.submitted.append(main.pred)
        self.best_submitted = max(self.best_submitted, score)
        released, new_best = sub.get("released_pgr"), bool(sub.get("new_best"))
        self.policy.record_release(spec, released, new_best)
        self._keep(main.pred, sub["id"])
        if new_best:
            self._set_reference(self.kit.name, main, score, sub["id"])
        others = self._submit_suite(spec, outcomes, snap["id"])
        receipt = {"submission_id": sub["id"], "released_pgr": released, "new_best": new_best,
                   "snapshot_id": snap["id"], "suite_submissions": others}
        body = (f"**Hypothesis** ({h.move}, family {h.family}): {h.why}\n\n"
                f"**Evidence** (label-free, no gold label used):\n\n"
                f"{_task_lines(outcomes, self.base)}\n\n**Verdict.** {verdict}\n\n"
                f"**Submitted** as a {len(main.seeds)}-seed vote: the server "
                f"{_release_text(receipt)}. A released score is rounded to the Ladder's grid "
                f"and only moves on a resolvable paired gain, so read it as coarse.\n\n"
                f"Spec (snapshot {snap['id'][:12]} has it as spec.json):\n\n"
                f"```json\n{json.dumps(canonical, indent=1)}\n```\n")
        try:
            self.client.post_finding("result", f"[{h.move}] {_label(spec)}"[:150], body,
                                     task=self.kit.name, submission_id=sub["id"],
                                     snapshot_id=snap["id"],
                                     tags=[self.direction, h.move,
                                           *{s["method"] for s in spec["steps"]}])
        except LabError as e:
            self._event("error", {"text": f"could not post result: {e.message}"})
        return receipt

    def _submit_one(self, kit: TaskKit, o: st.TaskOutcome, spec: dict, snap: str) -> dict:
        predictions = dict(zip(kit.ids("test"), kit.labels_to_values(o.pred), strict=True))
        return self.client.submit(kit.name, predictions, method=_label(spec)[:480],
                                  snapshot_id=snap, seeds=list(o.seeds))

    def _submit_suite(self, spec: dict, outcomes: dict[str, st.TaskOutcome],
                      snap: str) -> dict[str, dict]:
        """The same spec on the other suite tasks, where the Ladder could resolve it there."""
        out = {}
        for task, o in outcomes.items():
            if task == self.kit.name or task in self.closed:
                continue
            if not self._resolvability(task, o).resolvable:
                continue
            try:
                sub = self._submit_one(self.suite.kits[task], o, spec, snap)
            except LabError as e:
                # Not served here, or its whole budget spent: stop asking; a refusal for now
                # (a 429 with Retry-After) only skips this round.
                if not (isinstance(e, BudgetExceeded) and e.retry_after is not None):
                    self.closed.add(task)
                self._event("note", {"text": f"{task}: not submitted ({e.message})"})
                continue
            if sub.get("new_best"):
                self._set_reference(task, o, o.score, sub["id"])
            out[task] = {"submission_id": sub["id"], "released_pgr": sub.get("released_pgr"),
                         "new_best": bool(sub.get("new_best"))}
        return out

    def _set_reference(self, task: str, o: st.TaskOutcome, score: float, sub_id: int) -> None:
        self.reference[task], self.reference_score[task] = o.pred, o.score

    def _keep(self, pred: np.ndarray, sub_id: int) -> None:
        """Each main-task submission's predictions, so that a restarted researcher knows what
        to beat and what it already sent."""
        folder = self.workspace / "submitted"
        folder.mkdir(exist_ok=True)
        np.save(folder / f"{sub_id}.npy", pred.astype(np.int64), allow_pickle=False)

    def _post_insight(self, spec: dict, h: Hypothesis, outcomes: dict[str, st.TaskOutcome],
                      score: float, verdict: str, why_not: str) -> None:
        body = (f"**Hypothesis** ({h.move}, family {h.family}): {h.why}\n\n"
                f"**Ran** `{_label(spec)}`. **Evidence** (label-free, no gold label used):\n\n"
                f"{_task_lines(outcomes, self.base)}\n\n**Verdict.** {verdict}\n\n"
                f"**Not submitted:** {why_not}.\n\nSpec:\n\n"
                f"```json\n{json.dumps(normalise(spec), indent=1)}\n```\n")
        title = f"[{h.move}] {_label(spec)}: {verdict.split(';')[0].rstrip('.')}"
        with contextlib.suppress(LabError):
            self.client.post_finding("insight", title[:150], body, task=self.kit.name,
                                     tags=[self.direction, h.move, "label-free"])

    def _too_close(self, pred: np.ndarray, share: float = 0.02, rows: int = 20) -> bool:
        limit = max(rows, int(share * len(pred)))
        return any(int((pred != old).sum()) < limit for old in self.submitted)

    def _snapshot(self, spec: dict, canonical: dict, h: Hypothesis, score: float,
                  signals: dict[str, float]) -> bytes:
        files = {
            "spec.json": json.dumps(canonical, indent=1).encode(),
            "README.md": (f"# {_label(spec)}\n\nHypothesis ({h.move}, {h.family}): {h.why}\n\n"
                          f"Reproduce: `aarlab baseline --task {self.kit.name} --spec "
                          f"spec.json`\n\nSelection score (label-free, suite mean): "
                          f"{score:.4f}\n\n{_signal_lines(signals)}\n").encode(),
        }
        for name in ("notebook.jsonl", "notebook.md"):
            p = self.workspace / name
            if p.is_file() and not p.is_symlink():
                files[name] = p.read_bytes()[-2_000_000:]
        buf = io.BytesIO()
        with tar_writer(buf) as add:  # deterministic: the same files give the same snapshot id
            for name, data in files.items():
                add(name, io.BytesIO(data), len(data))
        return buf.getvalue()

    # -- building on others --------------------------------------------------------------------
    def read_forum(self) -> None:
        """Queue the best specs others submitted, read from their code snapshot (spec.json)
        or, failing that, the spec block of the finding, to adopt as starting points."""
        try:
            found = self.client.findings(kind="result", task=self.kit.name, sort="pgr", limit=10)
        except LabError:
            return
        items = found.get("items", found) if isinstance(found, dict) else found
        adopted = []
        top = next((f["id"] for f in items if (f.get("metrics") or {}).get("released_pgr")
                    is not None), None) if self.reference_score[self.kit.name] is None else None
        for f in items:
            if f["id"] in self.forum_seen or len(adopted) >= self.adopt_per_read:
                continue
            self.forum_seen.add(f["id"])
            who = _author(f)
            if who == self._my_name():
                continue
            spec, where = self._spec_of(f)
            if spec is None or (_canon(spec) in self.canon_tried and f["id"] != top) or any(
                    key(spec) == key(h.spec) for h in self.planner.queue):
                continue
            pgr = (f.get("metrics") or {}).get("released_pgr", f.get("pgr"))
            self.planner.queue.append(Hypothesis(
                "adopt", self.planner.spec_family(spec), spec,
                f"adopting finding #{f['id']} by {who} (released feedback PGR "
                f"{_fmt(pgr)}) from its {where} as a starting point: re-run under my signals "
                "and suite, then recombine with my family's steps"
                + ("; the lab's best release, so also the reference my first submission must "
                   "beat" if f["id"] == top else ""),
                source=f"forum:{f['id']}", lab_best=f["id"] == top))
            adopted.append(f"#{f['id']} by {who} ({where})")
        self.notebook.append({"spec": {"steps": []}, "score": None, "why": "read forum",
                              "forum_seen": sorted(self.forum_seen)})
        if adopted:
            self.journal.write("**Forum.** Queued for adoption: " + ", ".join(adopted) + ".")

    def _my_name(self) -> str | None:
        if self.name is None:
            try:
                self.name = str(self.client.me().get("name", ""))
            except (LabError, AttributeError):
                self.name = ""
        return self.name or None

    def _spec_of(self, finding: dict) -> tuple[dict | None, str]:
        sid = finding.get("snapshot_id")
        if sid:
            spec = self._spec_from_snapshot(sid)
            if spec is not None:
                return spec, f"snapshot {sid[:12]}"
        m = SPEC_BLOCK.search(finding.get("body") or "")
        if m:
            return _valid(m.group(1)), "posted spec"
        return None, ""

    def _spec_from_snapshot(self, sid: str) -> dict | None:
        """spec.json of a snapshot, extracted with the safe helper (no links, bounded sizes)
        into my workspace, and read only if it is a plain small file inside that folder."""
        if not re.fullmatch(r"[0-9a-f]{64}", sid):
            return None
        target = self.workspace / "adopted" / sid[:16]
        try:
            if not target.exists():
                target.parent.mkdir(exist_ok=True)
                self.client.extract_snapshot(sid, target)
            p = target / "spec.json"
            if (p.is_symlink() or not p.is_file() or p.stat().st_size > SPEC_BYTES
                    or not p.resolve().is_relative_to(target.resolve())):
                return None
            return _valid(p.read_text(encoding="utf-8"))
        except (LabError, ValueError, OSError, AttributeError):
            return None

    def _event(self, kind: str, payload: dict) -> None:
        # Telemetry must never stop research: a lost event only dims the live table.
        with contextlib.suppress(LabError):
            self.client.post_event(kind, payload)


def _author(finding: dict) -> str:
    a = finding.get("author", "?")
    return str(a.get("name", "?")) if isinstance(a, dict) else str(a)


def _weak_test(kit: TaskKit) -> np.ndarray:
    return np.mean([kit.weak_probs("test", s) for s in kit.seeds[:3]], axis=0)


def _valid(text: str) -> dict | None:
    """A posted or snapshotted spec, or None: it is another researcher's text, so JSON nested
    past the parser's depth is refused like any other bad spec (it once raised out of
    ``read_forum`` and restarted every reader of that post, again and again)."""
    try:
        spec = normalise(json.loads(text))
        parse_spec(spec)
        return spec
    except (ValueError, TypeError, KeyError, AttributeError, SpecError, RecursionError):
        return None


def _canonical(spec: dict) -> dict:
    try:
        return parse_spec(spec).canonical()
    except SpecError:
        return spec


def _canon(spec: dict) -> str:
    return key(_canonical(spec))


def _outcome_digest(outcomes: dict[str, st.TaskOutcome], score: float) -> str:
    """What a round produced on every task (voted test predictions) and its score."""
    h = hashlib.sha256(f"{score:.9f}".encode())
    for t in sorted(outcomes):
        h.update(t.encode())
        h.update(np.asarray(outcomes[t].pred, dtype=np.int64).tobytes())
    return h.hexdigest()[:24]


def _same_text(earlier: dict | None, idle: list[tuple]) -> str:
    if earlier is None:
        return ""
    text = f" Same predictions as `{_label(earlier)}` on every task"
    if idle:
        names = ", ".join(f"`{m}.{n}`" for m, n, _ in idle)
        text += (f": {names} changed nothing here, so my tuning leaves "
                 f"{'it' if len(idle) == 1 else 'them'} alone")
    return text + "."


def _label(spec: dict) -> str:
    return parse_spec(spec).label


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.3f}"


def _release_text(receipt: dict) -> str:
    released = receipt.get("released_pgr")
    if receipt.get("new_best"):
        return f"released a new best feedback PGR of {_fmt(released)}"
    return (f"kept my released feedback PGR at {_fmt(released)} (no resolvable paired gain: "
            "not evidence that it is worse)")


def _task_lines(outcomes: dict[str, st.TaskOutcome], base: dict[str, float]) -> str:
    lines = []
    for t, o in outcomes.items():
        vs = f" ({o.score - base[t]:+.4f} vs weak_soft)" if t in base else ""
        keys = ("smoothness", "heldout_agree", "swap_consistency", "crossfit_stability",
                "confident_agree")
        extra = ", ".join(f"{k} {o.signals[k]:.3f}" for k in keys if k in o.signals)
        lines.append(f"- {t}: selection {o.score:.4f}{vs}; {extra}")
    return "\n".join(lines)


def _signal_lines(signals: dict[str, float]) -> str:
    about = {**sig.SIGNALS, "selection": "selection score: " + " + ".join(sig.SELECTION)}
    return "\n".join(f"- `{k}` = {v:.4f} ({about.get(k, '')})" for k, v in signals.items())
