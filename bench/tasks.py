"""Default tasks: build time from scratch vs from the cache, and the reference table.

    .venv/bin/python bench/tasks.py [--home DIR]

Builds every default task into a fresh AARLAB_HOME (sources shared with ~/.cache/aarlab/sources
so only the encoding is timed), builds it again (cache hit), and prints seconds, the ratio, and
weak / ceiling accuracy ± SE on test (5 seeds).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aarlab.config import Settings
from aarlab.tasks.build import BuildOptions, build_task
from aarlab.tasks.registry import default_tasks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, default=None, help="AARLAB_HOME to build into")
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="aarlab-bench-"))
    sources = Path(os.environ.get("AARLAB_SOURCES_ROOT", Path.home() / ".cache/aarlab/sources"))
    settings = Settings(home=home, sources_root=sources)
    table = Table("task", "rows", "first build s", "cached build s", "ratio", "weak (test)",
                  "ceiling (test)", "gap", title=f"default tasks, home={home}")
    for spec in default_tasks():
        t0 = time.perf_counter()
        kit, key = build_task(spec, settings, BuildOptions())
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_task(spec, settings, BuildOptions())
        cached = time.perf_counter() - t0
        w, c = key.reference_estimate("weak"), key.reference_estimate("ceiling")
        table.add_row(spec.name, str(sum(kit.manifest["sizes"].values())), f"{first:.1f}",
                      f"{cached:.1f}", f"{first / cached:.1f}x", str(w), str(c),
                      f"{c.mean - w.mean:+.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
