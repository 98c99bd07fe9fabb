"""What to try next: sample, mutate and recombine method specs. Pure logic, no I/O.

Specs are plain dicts in the method library's format (``aarlab.w2s.spec``). Every parameter's
range or choices come from the library's own metadata (``aarlab methods --json``), so the
policy never proposes an out-of-range value and learns new methods for free.

Explore/exploit: with probability ``explore`` (decaying with experience) draw a fresh spec from
the direction's methods (or any method, rarely); otherwise mutate one of the best known specs
(own or read on the forum), or cross two of them stage by stage.

"Best" uses two label-free sources of evidence, never a gold label: each spec's selection score
(``aarlab.w2s.signals``, computed from the kit) and what the scoring server released for the
specs that were submitted. The incumbent (the last submission that raised the Ladder-released
feedback score) ranks first; a submission that did not raise it ranks last, since the scorer
said the signal had overrated it.
"""

from __future__ import annotations

import copy
import json
import math
import random
from dataclasses import dataclass, field

from aarlab.w2s.methods import SCALAR_TYPES

# The head changes a search may try; a mutation always moves to another value than the current.
HEAD_OPTIONS: dict[str, tuple] = {"kind": ("linear", "mlp"), "epochs": (5, 10, 20, 30, 40),
                                  "lr": (3e-4, 1e-3, 3e-3)}


@dataclass
class Candidate:
    spec: dict
    score: float  # label-free selection score (higher is better)
    source: str = "own"  # "own" or "forum:<finding id>"
    released: float | None = None  # Ladder-released feedback PGR, when this spec raised it
    submitted: bool = False
    passed: bool = True  # cleared the regression guard (not below weak_soft on any task)


@dataclass
class SearchPolicy:
    methods: list[dict]  # aarlab.w2s.methods.describe()
    direction_methods: list[str]
    rng: random.Random
    explore0: float = 0.6
    explore_min: float = 0.15
    direction_bias: float = 0.8
    known: list[Candidate] = field(default_factory=list)
    tried: set[str] = field(default_factory=set)
    incumbent: str | None = None  # key of the spec behind the best released score
    # (method, parameter, the step's switches) whose changes left every prediction as it was
    inert: set[tuple[str, str, str]] = field(default_factory=set)
    # The kit's student head with every field filled: a head change to these values is none
    # (a tuned `head: {"kind": "mlp"}` on an MLP kit repeated its parent's outcome exactly).
    default_head: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {m["name"]: m for m in self.methods}
        self.direction_methods = [m for m in self.direction_methods if m in self.by_name]

    # -- bookkeeping -------------------------------------------------------------------------
    def record(self, spec: dict, score: float, source: str = "own",
               passed: bool = True) -> None:
        self.tried.add(key(spec))
        self.known.append(Candidate(spec, score, source, passed=passed))

    def record_release(self, spec: dict, released: float | None, new_best: bool) -> None:
        """What the scorer said about a submitted spec: ``new_best`` makes it the incumbent."""
        k = key(spec)
        for c in self.known:
            if key(c.spec) == k:
                c.submitted = True
                if new_best:
                    c.released = released
        if new_best:
            self.incumbent = k

    def rank(self, c: Candidate) -> tuple:
        """Sort key: the incumbent, then specs the regression guard passed before those it
        refused (a spec that loses to the teacher on some task is no parent to build on), then
        unsubmitted specs and then submissions that did not raise the released score, each by
        selection score."""
        k = key(c.spec)
        return (k != self.incumbent, not c.passed, c.submitted and k != self.incumbent,
                -c.score)

    def best(self, k: int = 5) -> list[Candidate]:
        return sorted(self.known, key=self.rank)[:k]

    def inert_params(self, a: dict, b: dict) -> list[tuple[str, str, str]]:
        """What two canonical specs with the same outcome say did nothing: the numeric
        parameters in which they differ, each in the context of its step's switches (choice
        and bool parameters: ``probe_filter``'s ``c`` is idle with ``probe=knn`` and not with a
        logistic probe). Nothing when their methods, heads or switches differ: then the
        comparison does not isolate a parameter."""
        sa, sb = a.get("steps", []), b.get("steps", [])
        if a.get("head", {}) != b.get("head", {}) or \
                [s["method"] for s in sa] != [s["method"] for s in sb]:
            return []
        found = []
        for x, y in zip(sa, sb, strict=True):
            params = {p["name"]: p for p in self.by_name.get(x["method"], {}).get("params", [])}
            px, py = x.get("params", {}), y.get("params", {})
            differ = [n for n, p in params.items()
                      if px.get(n, p.get("default")) != py.get(n, p.get("default"))]
            if any(params[n].get("type") in ("choice", "bool") for n in differ):
                return []
            found += [(x["method"], n, self._switches(x)) for n in differ
                      if params[n].get("type") in SCALAR_TYPES]  # a mapping is never tuned
        return found

    def explore_rate(self) -> float:
        n = len(self.known)
        return max(self.explore_min, self.explore0 * math.exp(-n / 25))

    # -- proposals ---------------------------------------------------------------------------
    def propose(self) -> tuple[dict, str]:
        """A new spec not tried before, and a short description of where it came from."""
        for _ in range(50):
            spec, why = self._propose_once()
            if key(spec) not in self.tried:
                return spec, why
        return self.random_spec(), "random (everything nearby was tried)"

    def _propose_once(self) -> tuple[dict, str]:
        best = self.best()
        if not best or self.rng.random() < self.explore_rate():
            return self.random_spec(), "explore"
        if len(best) >= 2 and self.rng.random() < 0.25:
            a, b = self.rng.sample(best, 2)
            return self.crossover(a.spec, b.spec), "crossover of two good specs"
        # Rank-weighted choice: the best spec is mutated most often.
        weights = [1 / (i + 1) for i in range(len(best))]
        parent = self.rng.choices(best, weights)[0]
        return self.mutate(parent.spec), f"mutation of a {parent.source} spec"

    def random_spec(self) -> dict:
        pool = self.direction_methods if (self.direction_methods and
                                          self.rng.random() < self.direction_bias) else list(
            self.by_name)
        name = self.rng.choice(pool)
        spec = {"steps": [{"method": name, "params": self.random_params(name)}]}
        if self.rng.random() < 0.3:  # sometimes compose with a step of another stage
            other = self._method_of_other_stage(spec)
            if other:
                spec["steps"].append({"method": other, "params": self.random_params(other)})
        if self.rng.random() < 0.3:
            spec["head"] = {}
            self._set_head(spec["head"], "kind", self.rng.choice(list(HEAD_OPTIONS["kind"])))
        return normalise(spec)

    def random_params(self, name: str) -> dict:
        return {p["name"]: self._sample(p) for p in self.by_name[name]["params"]
                if p.get("type") in SCALAR_TYPES and self.rng.random() < 0.6}

    def mutate(self, spec: dict) -> dict:
        spec = copy.deepcopy(spec)
        steps = spec.setdefault("steps", [])
        move = self.rng.random()
        tunable = [(s, p) for s in steps
                   for p in self.by_name.get(s["method"], {}).get("params", [])
                   if p.get("type") in SCALAR_TYPES
                   and (s["method"], p["name"], self._switches(s)) not in self.inert]
        if tunable and move < 0.6:
            step, p = self.rng.choice(tunable)
            current = step.setdefault("params", {}).get(p["name"], p["default"])
            step["params"][p["name"]] = self._perturb(p, current)
            if p["name"] == "source":  # the last source's parameters do not fit a new one
                step["params"].pop("source_params", None)
        elif move < 0.75:
            other = self._method_of_other_stage(spec)
            if other:
                steps.append({"method": other, "params": self.random_params(other)})
        elif move < 0.85 and len(steps) > 1:
            steps.pop(self.rng.randrange(len(steps)))
        else:
            head = spec.setdefault("head", {})
            choice = self.rng.random()
            name = "kind" if choice < 0.4 else "epochs" if choice < 0.7 else "lr"
            current = head.get(name, self.default_head.get(name))
            self._set_head(head, name, self.rng.choice(
                [v for v in HEAD_OPTIONS[name] if v != current] or list(HEAD_OPTIONS[name])))
        return normalise(spec)

    def _set_head(self, head: dict, name: str, value: object) -> None:
        """Set a head field, leaving out a value that is the kit's default (it changes nothing,
        and the same spec must have one key)."""
        if name in self.default_head and value == self.default_head[name]:
            head.pop(name, None)
        else:
            head[name] = value

    def crossover(self, a: dict, b: dict) -> dict:
        """One step per stage, each taken from either parent."""
        stage_of = {m["name"]: m["stage"] for m in self.methods}
        by_stage: dict[str, list[dict]] = {}
        for parent in (a, b):
            for s in parent.get("steps", []):
                by_stage.setdefault(stage_of.get(s["method"], "?"), []).append(s)
        steps = [copy.deepcopy(self.rng.choice(options)) for options in by_stage.values()]
        head = copy.deepcopy(self.rng.choice([a, b]).get("head", {}))
        return normalise({"steps": steps, "head": head})

    # -- helpers -----------------------------------------------------------------------------
    def _switches(self, step: dict) -> str:
        """A step's choice and bool parameters, defaults filled in, as one sorted string."""
        given = step.get("params", {})
        return json.dumps({p["name"]: given.get(p["name"], p.get("default"))
                           for p in self.by_name.get(step["method"], {}).get("params", [])
                           if p.get("type") in ("choice", "bool")}, sort_keys=True)

    def _method_of_other_stage(self, spec: dict) -> str | None:
        used = {self.by_name[s["method"]]["stage"] for s in spec["steps"] if s["method"] in
                self.by_name}
        options = [m["name"] for m in self.methods if m["stage"] not in used or
                   m["stage"] == "select"]
        options = [o for o in options if o not in {s["method"] for s in spec["steps"]}]
        preferred = [o for o in options if o in self.direction_methods]
        pool = preferred if preferred and self.rng.random() < 0.5 else options
        return self.rng.choice(pool) if pool else None

    def _sample(self, p: dict):
        kind = p.get("type")
        if kind == "choice":
            return self.rng.choice(p["choices"])
        if kind == "bool":
            return self.rng.random() < 0.5
        lo, hi = _bounds(p)
        if kind == "int":
            return self.rng.randint(int(math.ceil(lo)), int(math.floor(hi)))
        if kind == "float":
            return round(self.rng.uniform(lo, hi), 4)
        return p["default"]

    def _perturb(self, p: dict, current):
        kind = p.get("type")
        if kind in ("choice", "bool") or current is None:
            return self._sample(p)
        lo, hi = _bounds(p)
        span = hi - lo
        if kind == "int":
            step = max(1, int(round(abs(current) * 0.5)) if current else 1)
            return int(min(hi, max(lo, current + self.rng.randint(-step, step))))
        value = current + self.rng.gauss(0, 0.15 * span)
        return round(float(min(hi, max(lo, value))), 4)


def _bounds(p: dict) -> tuple[float, float]:
    default = p.get("default") or 0
    lo = p.get("min", min(0.0, default))
    hi = p.get("max", max(1.0, 2 * default if default else 1.0))
    # Open bounds: stay a hair inside so the library's validation accepts the value.
    eps = 1e-3 * (hi - lo or 1)
    if p.get("min") is not None and not p.get("min_inclusive", True):
        lo += eps if p.get("type") == "float" else 1
    if p.get("max") is not None and not p.get("max_inclusive", True):
        hi -= eps if p.get("type") == "float" else 1
    # Very wide ranges (e.g. a regulariser up to 1e4) are searched near the default.
    if p.get("type") == "float" and hi - lo > 100 and default:
        lo, hi = max(lo, default / 10), min(hi, default * 10)
    return lo, hi


def normalise(spec: dict) -> dict:
    """Drop empty parts so that equal specs compare equal."""
    out: dict = {"steps": [{"method": s["method"], "params": dict(sorted(s.get("params",
                                                                              {}).items()))}
                           for s in spec.get("steps", [])]}
    head = {k: v for k, v in spec.get("head", {}).items() if v is not None}
    if head:
        out["head"] = dict(sorted(head.items()))
    if spec.get("transductive"):  # another researcher's transductive spec stays one when adopted
        out["transductive"] = True
    return out


def key(spec: dict) -> str:
    return json.dumps(normalise(spec), sort_keys=True)
