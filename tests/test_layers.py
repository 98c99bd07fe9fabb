"""The import graph of ``src/aarlab`` points only down, and has no loop.

The layer order is written once, here, and the README's "Layout" section lists the same order.
Every import counts: module level, inside functions, ``import_module("...")`` with a literal.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import aarlab

SRC = Path(aarlab.__file__).parent

# Lowest first. A module belongs to the layer of the longest name here that is a prefix of it.
# A few single modules sit apart from their folder's layer; each says why.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", ("aarlab.__init__", "aarlab.errors", "aarlab.config", "aarlab.clock",
                "aarlab.atomic", "aarlab.cores", "aarlab.file_modes", "aarlab.redact",
                "aarlab.safe_files", "aarlab.archive", "aarlab.sources", "aarlab.text")),
    ("sandbox", ("aarlab.sandbox",)),
    ("store", ("aarlab.store",)),
    # FastAPI dependencies (settings, store, bearer auth) and response helpers every router uses.
    ("http", ("aarlab.server.deps", "aarlab.server.limits", "aarlab.server.streams")),
    ("kits", ("aarlab.kits",)),
    ("science", ("aarlab.w2s",)),
    ("tasks", ("aarlab.tasks",)),
    ("scoring", ("aarlab.scoring",)),
    ("forum", ("aarlab.forum",)),
    ("client", ("aarlab.client",)),
    # What the lab tells a researcher process (environment, directions): the contract both sides
    # read, so it sits below the researchers although it lives with the lab.
    ("lab contract", ("aarlab.lab.researcher_env", "aarlab.lab.directions")),
    ("researchers", ("aarlab.researchers",)),
    ("lab", ("aarlab.lab",)),
    ("replication", ("aarlab.replication",)),
    ("web", ("aarlab.web",)),
    # The app factory mounts every router (scoring, forum, tasks, lab, web).
    ("app", ("aarlab.server",)),
    # The lab's running process serves the app in a thread: above the app it serves.
    ("lab runtime", ("aarlab.lab.server_thread", "aarlab.lab.orchestrator")),
    ("commands", ("aarlab.commands", "aarlab.cli")),
]


def module_names() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        parts = ["aarlab", *p.relative_to(SRC).with_suffix("").parts]
        out[".".join(parts)] = p
    return out


MODULES = module_names()


def resolve(name: str) -> str | None:
    """The module an imported dotted name lives in (``aarlab.x.y.Name`` -> ``aarlab.x.y``)."""
    while name:
        if name in MODULES:
            return name
        if name + ".__init__" in MODULES:
            return name + ".__init__"
        name = name.rpartition(".")[0]
    return None


def imports_of(mod: str, path: Path) -> set[str]:
    package = mod.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            names = [f"{base}.{a.name}" for a in node.names] or [base]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(
                node.func, "id", None)) == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        for n in names:
            if n == "aarlab" or n.startswith("aarlab."):
                target = resolve(n)
                if target and target != mod:
                    found.add(target)
    return found


def layer_of(mod: str) -> int:
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for pre in prefixes:
            if (mod == pre or mod.startswith(pre + ".")) and len(pre) > best_len:
                best, best_len = i, len(pre)
    assert best is not None, f"{mod} is in no layer: add it to LAYERS (and to the README)"
    return best


GRAPH = {m: imports_of(m, p) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


def test_imports_point_only_down():
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
              for a, targets in GRAPH.items() for b in targets if layer_of(b) > layer_of(a)]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_loop():
    # Tarjan's strongly connected components; any component of two or more modules is a loop.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                loops.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not loops, f"import loops: {loops}"


def test_the_layer_test_sees_hidden_and_function_level_imports():
    # A self-check, so that a parser regression cannot make the two tests above pass vacuously.
    tree = defaultdict(set, GRAPH)
    assert any(t.startswith("aarlab.kits") for t in tree["aarlab.w2s.runner"])
    assert len(MODULES) > 100
