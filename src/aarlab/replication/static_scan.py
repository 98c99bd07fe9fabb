"""Static scan of snapshot code: answer-key reads, hard-coded predictions, test-label reads,
network access and environment dumps. AST for Python, regex for everything else (and for
Python too, so that a string built at run time still shows its pieces). Nothing is executed.

Each flag carries ``file:line`` evidence and the offending line.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass

ANSWER_KEY = re.compile(r"labels\.json|parts\.json|reference\.json|answer[-_ ]?keys?", re.I)
TEST_LABELS = re.compile(r"test\.jsonl.{0,80}\[\s*['\"]label['\"]\s*\]|"
                         r"\[\s*['\"]label['\"]\s*\].{0,80}test\.jsonl", re.I)
NETWORK = re.compile(r"\b(requests|httpx|urllib|aiohttp|socket|http\.client|websocket)\b"
                     r"|https?://|\bcurl\b|\bwget\b")
ENV_DUMP = re.compile(r"os\.environ(?!\.get\(\s*['\"]AARLAB_TASK)|\bprintenv\b|\benv\s*>|"
                      r"/proc/self/environ|getenv\(")
NET_MODULES = {"requests", "httpx", "urllib", "urllib3", "aiohttp", "socket", "http",
               "websocket", "websockets", "ftplib", "paramiko"}
LABEL_VALUES = {True, False, "A", "B"}  # 0 and 1 hash as False and True
MIN_TABLE = 20  # a literal with this many id -> label entries is a prediction table


@dataclass(frozen=True)
class Flag:
    kind: str  # answer-key | hard-coded-predictions | test-labels | network | env-dump
    file: str
    line: int
    evidence: str

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def scan_files(files: dict[str, str]) -> list[Flag]:
    flags: list[Flag] = []
    for name, text in sorted(files.items()):
        flags += _scan_text(name, text)
        if name.endswith(".py"):
            flags += _scan_python(name, text)
        elif name.endswith((".json", ".jsonl")) and _is_prediction_table(text):
            flags.append(Flag("hard-coded-predictions", name, 1,
                              f"{name}: a table of row ids and labels"))
    seen, out = set(), []
    for f in flags:
        if (f.kind, f.file, f.line) not in seen:
            seen.add((f.kind, f.file, f.line))
            out.append(f)
    return sorted(out, key=lambda f: (f.file, f.line, f.kind))


def _scan_text(name: str, text: str) -> list[Flag]:
    if name.endswith((".json", ".jsonl")) or name == "notebook.jsonl":
        return []  # data, not code; prediction tables are handled apart
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        for kind, rx in (("answer-key", ANSWER_KEY), ("test-labels", TEST_LABELS),
                         ("network", NETWORK), ("env-dump", ENV_DUMP)):
            if name.endswith(".md") and kind != "answer-key":
                continue
            if rx.search(line):
                out.append(Flag(kind, name, i, line.strip()[:200]))
    return out


def _scan_python(name: str, text: str) -> list[Flag]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # not Python the interpreter would run either; the line scan still reads it
    lines = text.splitlines()

    def flag(kind: str, node: ast.AST) -> Flag:
        n = getattr(node, "lineno", 1)
        return Flag(kind, name, n, lines[n - 1].strip()[:200] if n <= len(lines) else "")

    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""])
            if any(m.split(".")[0] in NET_MODULES for m in mods):
                out.append(flag("network", node))
        elif (isinstance(node, ast.Dict) and _literal_table(node)) or (
                isinstance(node, ast.List | ast.Tuple) and _literal_labels(node)):
            out.append(flag("hard-coded-predictions", node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and ANSWER_KEY.search(node.value):
            out.append(flag("answer-key", node))
        elif isinstance(node, ast.Subscript) and _is_label_subscript(node) \
                and "test" in ast.unparse(node.value):
            out.append(flag("test-labels", node))
    return out


def _const(n: ast.AST) -> object:
    return n.value if isinstance(n, ast.Constant) else ast  # ast: a sentinel, never a label


def _literal_table(node: ast.Dict) -> bool:
    if len(node.keys) < MIN_TABLE:
        return False
    keys_ok = all(isinstance(k, ast.Constant) and isinstance(k.value, str | int)
                  for k in node.keys)
    return keys_ok and sum(_const(v) in LABEL_VALUES for v in node.values) >= 0.9 * len(node.keys)


def _literal_labels(node: ast.List | ast.Tuple) -> bool:
    return len(node.elts) >= 5 * MIN_TABLE and all(
        isinstance(e, ast.Constant) and e.value in LABEL_VALUES for e in node.elts)


def _is_label_subscript(node: ast.Subscript) -> bool:
    return isinstance(node.slice, ast.Constant) and node.slice.value == "label"


def _is_prediction_table(text: str) -> bool:
    import json

    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # nested past the parser's depth
        return False
    if isinstance(data, dict) and isinstance(data.get("test"), dict):
        data = data["test"]  # a copied labels.json
    if isinstance(data, dict) and "predictions" in data:
        data = data["predictions"]
    if isinstance(data, dict):
        vals = list(data.values())
    elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
        vals = [r.get("label", r.get("prediction", ast)) for r in data if "id" in r]
    else:
        return False
    return len(vals) >= MIN_TABLE and sum(v in LABEL_VALUES for v in vals
                                          if not isinstance(v, dict | list)) >= 0.9 * len(vals)
