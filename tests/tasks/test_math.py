"""The math task: wrong candidates look right, groups are sound, generation is real and cached.

The generator venv is built once in the shared test sources cache (AARLAB_TEST_SOURCES, see
conftest) and reused, so only the very first run pays for it (about 30 s).
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path

import pytest

from aarlab.errors import CorruptCacheError, SourceUnavailableError
from aarlab.tasks.datasets import math as mt
from aarlab.tasks.registry import get_task

SMALL = 24  # questions per module in the real-generation tests


def _groups(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        out[r["consistency_id"]].append(r)
    return out


def _check_rows(rows: list[dict], wrong_per_question: int = 1) -> None:
    assert rows
    assert all(set(r) == {"id", "question", "choice", "label", "consistency_id"} for r in rows)
    assert all(isinstance(r["label"], bool) and r["choice"].strip() for r in rows)
    assert len({r["id"] for r in rows}) == len(rows), "row ids must be unique"
    for gid, members in _groups(rows).items():
        assert len(members) == 1 + wrong_per_question, gid
        assert len({m["question"] for m in members}) == 1
        right = [m["choice"] for m in members if m["label"]]
        assert len(right) == 1, f"{gid}: exactly one true candidate"
        wrong = [m["choice"] for m in members if not m["label"]]
        assert right[0] not in wrong and len(set(wrong)) == len(wrong)
        # Equal in value but written differently would be a right answer marked wrong.
        value = mt.parse_number(right[0])
        if value is not None:
            assert all(mt.parse_number(w) != value for w in wrong)


# ------------------------------------------------------------- distractors on known answers

def test_off_by_one_moves_the_last_significant_digit_and_keeps_the_shape():
    rng = random.Random(0)
    assert {mt.off_by_one("55", rng) for _ in range(40)} == {"54", "56"}
    assert {mt.off_by_one("4000", rng) for _ in range(40)} == {"3000", "5000"}
    assert {mt.off_by_one("-2.138", rng) for _ in range(40)} == {"-2.137", "-2.139"}
    # 0.19 + 0.01 = 0.2 would lose a decimal place (a tell): only the other direction is used.
    assert {mt.off_by_one("0.19", rng) for _ in range(20)} == {"0.18"}
    assert {mt.off_by_one("-3/5", rng) for _ in range(20)} == {"-2/5", "-4/5"}
    assert mt.off_by_one("-3/4", rng) is None  # -2/4 and -4/4 are not written that way
    assert mt.off_by_one("True", rng) is None


def test_sign_and_digit_slip_write_answers_as_a_right_one_would_be_written():
    rng = random.Random(1)
    assert mt.sign("-4", rng) == "4" and mt.sign("3.5", rng) == "-3.5"
    assert mt.sign("0", rng) is None
    for answer in ("7482", "-0.0037", "39000000", "-3/5050976", "0.4239", "10"):
        style = mt.style_of(answer)
        for _ in range(30):
            slipped = mt.digit_slip(answer, rng)
            assert slipped is not None and slipped != answer
            assert mt.style_of(slipped) == style and len(slipped) == len(answer)
            assert mt._is_canonical(slipped, style), slipped


def test_operation_mistakes_use_the_question_numbers():
    rng = random.Random(2)
    outs = {mt.operation("2558", rng, module="arithmetic__add_or_sub",
                         question="Calculate 2556 + 2.") for _ in range(30)}
    assert outs == {"2554", "-2554"}
    assert mt.operation("-70944", rng, module="arithmetic__mul",
                        question="-4434 times 16") == "-4418"
    assert mt.operation("7482", rng, module="comparison__pair",
                        question="Which is greater: 16 or 7482?") == "16"
    assert mt.operation("-1/8", rng, module="comparison__pair",
                        question="Which is bigger: -1/8 or -0.3?") == "-0.3"
    assert mt.operation("True", rng, module="comparison__pair", question="Is 1 < 2?") == "False"
    assert mt.operation("5", rng, module="algebra__linear_1d", question="Solve 2*x = 10.") is None


def test_wrong_candidates_stay_in_the_range_of_the_modules_right_answers():
    # Remainders are never negative and a place value is one digit: "-3" or "10" would be tells.
    problem = {"module": "numbers__place_value", "question": "What is the tens digit of 309?",
               "answer": "0"}
    digits = [str(d) for d in range(10)]
    seen = set()
    for seed in range(60):
        wrong = mt.wrong_candidates(problem, 1, random.Random(seed), digits,
                                    mt.answer_range(digits))
        seen.update(wrong)
    assert seen and seen <= set(digits) - {"0"}
    assert mt.answer_range(["3", "-1/2", "True", "0.25"]) == (Fraction(-1, 2), Fraction(3))
    assert mt.answer_range(["True", "False"]) is None


def test_a_value_equal_to_the_right_answer_is_never_a_wrong_candidate():
    problem = {"module": "comparison__pair", "question": "Which is bigger: 1/2 or 0.5?",
               "answer": "1/2"}
    for seed in range(30):
        wrong = mt.wrong_candidates(problem, 3, random.Random(seed), siblings=["0.5", "2/4"])
        assert all(mt.parse_number(w) != mt.parse_number("1/2") for w in wrong)


HAND = [
    {"module": "arithmetic__add_or_sub", "question": "Calculate 2556 + 2.", "answer": "2558"},
    {"module": "arithmetic__add_or_sub", "question": "What is 0.1 minus 7.8?", "answer": "-7.7"},
    {"module": "arithmetic__add_or_sub", "question": "Total of -1.2 and 27.26.", "answer": "26.06"},
    {"module": "comparison__pair", "question": "Is -1/8 != -3/4?", "answer": "True"},
    {"module": "comparison__pair", "question": "Which is greater: 16 or 7482?", "answer": "7482"},
    {"module": "comparison__pair", "question": "Is 3 less than 2?", "answer": "False"},
    {"module": "comparison__pair", "question": "Which is smaller: -3 or 2?", "answer": "-3"},
    {"module": "algebra__linear_1d", "question": "Solve 16*x + 55 = -9 for x.", "answer": "-4"},
    {"module": "algebra__linear_1d", "question": "Solve -5*l = -10 for l.", "answer": "2"},
    {"module": "algebra__linear_1d", "question": "Solve 1609*u = 88495 for u.", "answer": "55"},
    {"module": "algebra__linear_1d", "question": "Solve 16*x + 55 = -9 for x.", "answer": "-4"},
]


def test_candidate_rows_on_hand_written_problems():
    rows = mt.candidate_rows(HAND, seed=3)
    _check_rows(rows)
    assert len(_groups(rows)) == 10  # the repeated question is kept once
    assert sum(r["label"] for r in rows) * 2 == len(rows)
    assert rows == mt.candidate_rows(HAND, seed=3)
    # Three wrong answers per question: True/False questions have only one, so they drop out.
    rows3 = mt.candidate_rows(HAND, seed=3, wrong_per_question=3)
    _check_rows(rows3, wrong_per_question=3)
    assert not any(r["choice"] in ("True", "False") for r in rows3)
    with pytest.raises(ValueError, match="wrong_per_question"):
        mt.candidate_rows(HAND, seed=3, wrong_per_question=4)


# ------------------------------------------------------------- the real generator

@pytest.fixture(scope="module")
def sources(settings) -> Path:
    return settings.sources_dir


@pytest.fixture(scope="module")
def small(sources):
    return mt.generate_problems(sources, seed=5, per_module=SMALL)


def test_generator_gives_exact_answers_from_every_module(small):
    problems, _ = small
    assert Counter(p["module"] for p in problems) == {m: SMALL for m in mt.MODULES}
    for p in problems:
        if p["module"] == "algebra__linear_1d":
            assert mt.style_of(p["answer"]) == "int"
        if p["module"] in ("arithmetic__add_or_sub", "arithmetic__mul"):
            assert mt.parse_number(p["answer"]) is not None, p


def test_rows_from_the_generator_are_valid_balanced_and_deterministic(small, sources):
    problems, _ = small
    rows = mt.candidate_rows(problems, seed=5)
    _check_rows(rows)
    assert abs(sum(r["label"] for r in rows) / len(rows) - 0.5) < 1e-9
    # Wrong candidates are written in the right answer's style, so form is no tell; except
    # "which is bigger: a or b?", where both candidates are written as the question has them.
    for members in _groups(rows).values():
        if not all(m["choice"] in m["question"] for m in members):
            assert len({mt.style_of(m["choice"]) for m in members}) == 1, members
    # The true candidate is first in about half of the groups: position is no tell either.
    firsts = [members[0]["label"] for members in _groups(rows).values()]
    assert 0.3 < sum(firsts) / len(firsts) < 0.7
    # Same seed, same rows; the generator itself reruns to the same bytes.
    assert rows == mt.candidate_rows(mt.generate_problems(sources, 5, per_module=SMALL)[0], 5)
    cached = mt.generated_path(sources, mt.generation_spec(5, per_module=SMALL))
    first = cached.read_bytes()
    cached.unlink()
    mt.generate_problems(sources, seed=5, per_module=SMALL)
    assert cached.read_bytes() == first
    other = mt.candidate_rows(mt.generate_problems(sources, 6, per_module=SMALL)[0], 6)
    assert {r["question"] for r in other} != {r["question"] for r in rows}


def test_provenance_names_every_installed_wheel_with_its_hash(small):
    _, prov = small
    assert {p["package"]: p["version"] for p in prov} == {
        k: v for k, (v, _) in mt.GENERATOR_PINS.items()}
    for p in prov:
        assert len(p["sha256"]) == 64 and p["file"].endswith(".whl") and p["licence"]
    gen = next(p for p in prov if p["package"] == "mathematics-dataset")["generated"]
    assert gen["seed"] == 5 and gen["per_module"] == SMALL and len(gen["sha256"]) == 64


def test_math_is_registered_as_a_binary_task():
    spec = get_task("math")
    assert spec.format == "binary" and spec.load is mt.load_math


# ------------------------------------------------------------- failures a user can fix

def test_corrupt_generated_file_is_a_one_line_error(small, sources):
    path = mt.generated_path(sources, mt.generation_spec(5, per_module=SMALL))
    good = path.read_bytes()
    try:
        path.write_text('{"module": "x"\n')
        with pytest.raises(CorruptCacheError) as e:
            mt.generate_problems(sources, seed=5, per_module=SMALL)
        assert "\n" not in str(e.value) and str(path) in str(e.value)
    finally:
        path.write_bytes(good)


def test_corrupt_venv_record_is_a_one_line_error(tmp_path):
    record = tmp_path / mt.VENV_DIRNAME / "provenance.json"
    record.parent.mkdir()
    record.write_text("not json")
    with pytest.raises(CorruptCacheError, match="delete"):
        mt.generator_venv(tmp_path)


def test_venv_that_cannot_be_created_is_a_one_line_error(tmp_path):
    with pytest.raises(SourceUnavailableError) as e:
        mt.generator_venv(tmp_path, base_python=str(tmp_path / "no-such-python"))
    assert "could not create the venv" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / mt.VENV_DIRNAME).exists(), "no half-built venv is left behind"


def test_unreachable_index_is_a_one_line_error(tmp_path, monkeypatch):
    for key, value in {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
                       "PIP_NO_CACHE_DIR": "1", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2",
                       "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": ""}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SourceUnavailableError) as e:
        mt.load_math(tmp_path, seed=0)
    msg = str(e.value)
    assert "could not download mathematics-dataset==1.0.1" in msg and "\n" not in msg
    assert "package index" in msg
    assert not list(tmp_path.glob(mt.VENV_DIRNAME + "*"))


def test_generated_cache_is_content_addressed(sources):
    a = mt.generated_path(sources, mt.generation_spec(0))
    assert a == mt.generated_path(sources, mt.generation_spec(0))
    assert a != mt.generated_path(sources, mt.generation_spec(1))
    assert a != mt.generated_path(sources, mt.generation_spec(0, per_module=10))
    assert a != mt.generated_path(sources, mt.generation_spec(0, modules=mt.MODULES[:2]))
    assert json.loads(json.dumps(mt.generation_spec(0)))["script_sha256"]


def test_the_full_task_has_about_10k_balanced_rows(sources):
    rows, prov = mt.load_math(sources, seed=0)
    _check_rows(rows)
    assert 10_000 <= len(rows) <= 2 * mt.PER_MODULE * len(mt.MODULES)
    assert sum(r["label"] for r in rows) * 2 == len(rows)
    assert prov[0]["generated"]["modules"] == list(mt.MODULES)
    assert get_task("math").default is False and "8" in get_task("math").notice
