"""Snapshot helpers run *inside* a sandbox: ``python -m aarlab.researchers.llm.inside``.

Packing and unpacking a workspace tree happen where the researcher's own files are, with the
researcher's own token (``AARLAB_TOKEN``) over the lab socket; the lab process never walks a
tree the researcher controls. Prints one JSON line; exit 1 with a one-line error otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aarlab.client import LabClient, LabError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aarlab.researchers.llm.inside")
    sub = p.add_subparsers(dest="op", required=True)
    up = sub.add_parser("upload")
    up.add_argument("path")
    up.add_argument("--label")
    up.add_argument("--submission-id", type=int)
    down = sub.add_parser("download")
    down.add_argument("snapshot_id")
    down.add_argument("target")
    args = p.parse_args(argv)
    try:
        with LabClient() as client:
            if args.op == "upload":
                path = Path(args.path)
                if not path.exists():
                    raise FileNotFoundError(f"path: {args.path} does not exist")
                out = client.upload_snapshot(path, label=args.label,
                                             submission_id=args.submission_id)
            else:
                info = client.extract_snapshot(args.snapshot_id, args.target)
                out = {"snapshot_id": info.sha256, "target": args.target,
                       "files": [e.path for e in info.files][:200]}
    except (LabError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
