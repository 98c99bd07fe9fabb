"""Sample (question, answer) pairs from DeepMind's mathematics_dataset; one JSON object a line.

Runs inside its own venv (mathematics-dataset pins sympy==1.5.1, which torch cannot share), so it
imports nothing from aarlab. Usage::

    python generate.py --seed 0 --per-module 1000 arithmetic__mul algebra__linear_1d > out.jsonl

Each module gets its own RNG state derived from (seed, module name), so adding a module leaves
the others' samples unchanged. Run with PYTHONHASHSEED fixed: sympy iterates sets of symbols.
"""

import argparse
import hashlib
import json
import random
import sys

import numpy as np
from mathematics_dataset import generate_settings
from mathematics_dataset.modules import modules


def flat_modules() -> dict:
    """``{"arithmetic__mul": fn, ...}`` for the train regime at full entropy range."""
    flat = {}

    def add(tree, prefix=""):
        for key, value in tree.items():
            name = f"{prefix}__{key}" if prefix else key
            if isinstance(value, dict):
                add(value, name)
            else:
                flat[name] = value

    add(modules.train(lambda entropy_range: entropy_range))
    return flat


def sample(module_fn):
    # Same length limits as the dataset's own generate.py.
    while True:
        problem = module_fn()
        question, answer = str(problem.question), str(problem.answer)
        if (len(question) <= generate_settings.MAX_QUESTION_LENGTH
                and len(answer) <= generate_settings.MAX_ANSWER_LENGTH):
            return question, answer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--per-module", type=int, required=True)
    parser.add_argument("modules", nargs="+")
    args = parser.parse_args()
    available = flat_modules()
    unknown = [m for m in args.modules if m not in available]
    if unknown:
        print(f"unknown modules: {unknown}; known: {sorted(available)}", file=sys.stderr)
        return 2
    for name in args.modules:
        digest = hashlib.sha256(f"{args.seed}\x1f{name}".encode()).digest()
        random.seed(int.from_bytes(digest[:8], "big"))
        np.random.seed(int.from_bytes(digest[8:12], "big"))
        for _ in range(args.per_module):
            question, answer = sample(available[name])
            print(json.dumps({"module": name, "question": question, "answer": answer}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
