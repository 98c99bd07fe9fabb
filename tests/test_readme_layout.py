"""The README's Layout section matches the tree (issue 17): every package folder is named, no
folder it names is gone, and every package says in one docstring line what it holds."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import aarlab

SRC = Path(aarlab.__file__).parent
ROOT = SRC.parents[1]


def _layout() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def _tracked_folders() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    return {p.split("/", 1)[0] for p in out if "/" in p}


def test_every_folder_is_named_in_the_layout():
    block = _layout()
    words = set(re.findall(r"[\w.]+", block))
    for d in sorted(p for p in SRC.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        rel = d.relative_to(SRC)
        if len(rel.parts) == 1:
            assert f"{rel.name}/" in block, f"src/aarlab/{rel}/ is not in the README's Layout"
        elif len(rel.parts) == 2:  # a subfolder: named in its parent's line
            assert rel.name in words, f"src/aarlab/{rel}/ is not in the README's Layout"
    for top in _tracked_folders() - {"src"}:
        assert top in words, f"{top}/ is not in the README's Layout"


def test_no_folder_in_the_layout_is_gone():
    block = _layout()
    for name in re.findall(r"(?<![\w./])([a-z_]+)/", block):
        found = (name in _tracked_folders() or (SRC / name).is_dir()
                 or any(p.is_dir() for p in SRC.rglob(name)))
        assert found, f"the README's Layout names {name}/, which is not in the tree"
    for name in re.findall(r"\b([a-z_]+\.py)\b", block):
        assert list(SRC.rglob(name)), f"the README's Layout names {name}, which is gone"


def test_every_package_says_what_it_holds_in_one_line():
    for init in sorted(SRC.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.relative_to(SRC)}: no docstring"
        first = doc.split("\n", 1)[0]
        assert first.strip() and len(first) <= 200, f"{init.relative_to(SRC)}: {first!r}"
