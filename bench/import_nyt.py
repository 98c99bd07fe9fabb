"""Import a task no researcher has seen: sentiment of New York Times editorial sentences.

    python bench/import_nyt.py [--out DIR] [--name nyt]

Data: the NYT editorial snippets of Hutto & Gilbert (ICWSM 2014), shipped inside the
``vaderSentiment==3.3.2`` sdist on PyPI (MIT licence; sdist sha256 5d7c06e0…832f9) as
``additional_resources/hutto_ICWSM_2014.tar.gz:nytEditorialSnippets_GroundTruth.txt``: 5,190
sentences from 500 opinion pieces, each with the mean of 20 human sentiment ratings in
[-4, 4]. A row is positive when that mean is above +0.5, negative below -0.5; the 2,402 in
between are dropped (ambiguous), which leaves 2,788 (1,100 positive). No task of the project
used this file or this domain (news opinion, not tweets, films or products; ``reviews`` used
the Amazon file of the same archive). Written as ``aarlab task import`` files and imported
(and built) under ``--name``.
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
from pathlib import Path

PACKAGE = "vaderSentiment==3.3.2"
SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
MEMBER = "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt"
QUESTION = "Is the sentiment of this newspaper sentence positive?\n"
SIZES = {"train_label": 400, "train_unlabel": 1600}  # the rest (788) is the test split


def rows_from_sdist(sdist: Path) -> list[dict]:
    with tarfile.open(sdist) as outer:
        inner = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        data = outer.extractfile(inner).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        text = t.extractfile(next(m for m in t.getmembers() if m.name.endswith(MEMBER))).read()
    rows = []
    for line in text.decode("latin-1").splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        score, sentence = float(parts[1]), parts[2].strip()
        if abs(score) <= 0.5 or not sentence:
            continue
        rid = "nyt-" + hashlib.sha256(parts[0].encode()).hexdigest()[:12]
        rows.append({"id": rid, "question": QUESTION + sentence, "choice": "positive",
                     "label": score > 0})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="nyt")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", PACKAGE, "-d", tmp], check=True, capture_output=True)
        sdist = next(Path(tmp).glob("vaderSentiment-*.tar.gz"))
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != SHA256:
            sys.exit(f"{sdist.name}: sha256 {digest}, expected {SHA256}")
        rows = rows_from_sdist(sdist)
    random.Random(0).shuffle(rows)
    out = args.out or Path(tempfile.mkdtemp()) / args.name
    out.mkdir(parents=True, exist_ok=True)
    start = 0
    for split, n in [*SIZES.items(), ("test", len(rows))]:
        part = rows[start:start + n]
        start += len(part)
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        print(f"{split}: {len(part)} rows ({sum(r['label'] for r in part)} positive)")
    cmd = [sys.executable, "-m", "aarlab.cli", "task", "import", str(out), "--name", args.name]
    if args.no_build:
        cmd.append("--no-build")
    sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
