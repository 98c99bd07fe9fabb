"""Tool calls written as text, and checking any tool call's arguments against its schema.

Small local models (llama.cpp, ollama, vLLM without a tool parser) often answer with the call as
JSON in the message text instead of structured ``tool_calls``: in a fenced code block, between
``<tool_call>`` tags (Qwen's own format, when the server's template does not parse it), or as the
whole reply. ``parse_text_calls`` finds those; a JSON object counts as a call only when it has
the shape of one (a name plus arguments, or a name of an offered tool), so code the model shows
is not run by mistake. Unknown names are kept: the toolbox answers them with the list of tools.
"""

from __future__ import annotations

import json
import re
import uuid

from aarlab.researchers.llm.providers.base import ToolCall, ToolSpec

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|$)", re.S)
_NAME_KEYS = ("name", "tool", "tool_name", "function")
_ARG_KEYS = ("arguments", "parameters", "args", "input", "tool_input")
MAX_TEXT_CALLS = 8  # per reply: a model pasting a long list of examples is not a plan


def parse_text_calls(text: str, specs: list[ToolSpec]) -> list[ToolCall]:
    """The tool calls written in ``text`` (``from_text=True``), in order; [] when none."""
    names = {s.name for s in specs}
    blocks = [m.group(1) for m in _TAGGED.finditer(text)]
    if not blocks:
        blocks = [m.group(2) for m in _FENCED.finditer(text)
                  if m.group(1).lower() in ("", "json", "tool_call", "tool", "jsonc")]
    if not blocks and text.strip().startswith(("{", "[")):
        blocks = [text.strip()]
    calls: list[ToolCall] = []
    for block in blocks:
        for obj in _objects(block):
            call = _as_call(obj, names)
            if call is not None:
                calls.append(call)
    return calls[:MAX_TEXT_CALLS]


def _objects(block: str) -> list:
    """JSON values in a block: one value, a list of them, or several one after another."""
    block = block.strip()
    try:
        value = json.loads(block)
        return value if isinstance(value, list) else [value]
    except ValueError:
        pass
    out, dec, i = [], json.JSONDecoder(), 0
    while True:
        i = block.find("{", i)
        if i < 0:
            return out
        try:
            value, end = dec.raw_decode(block, i)
        except ValueError:
            i += 1
            continue
        out.append(value)
        i = end


def _as_call(obj, names: set[str]) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    if obj.get("type") == "function" and isinstance(obj.get("function"), dict):
        obj = obj["function"]  # the OpenAI wire shape, copied into text
    name = next((obj[k] for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
    if name is None:
        return None
    arg_key = next((k for k in _ARG_KEYS if k in obj), None)
    if arg_key is None:
        rest = {k: v for k, v in obj.items() if k not in _NAME_KEYS}
        # {"name": "leaderboard"} or {"tool": "shell", "command": "ls"}: a call only for a
        # name we offer, else any JSON with a "name" field (e.g. a config) would become one.
        if name not in names:
            return None
        args, bad = rest, None
    else:
        args, bad = obj[arg_key], None
        if isinstance(args, str):  # arguments as JSON text, as on the OpenAI wire
            try:
                parsed = json.loads(args) if args.strip() else {}
            except ValueError:
                parsed = None
            args, bad = (parsed, None) if isinstance(parsed, dict) else ({}, args)
        elif args is None:
            args = {}
        elif not isinstance(args, dict):
            args, bad = {}, json.dumps(args)
    return ToolCall(f"text_{uuid.uuid4().hex[:16]}", name, args, bad, from_text=True)


# -- arguments against a tool's schema -----------------------------------------------------------

_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
          "array": (list,), "object": (dict,)}


def check_arguments(spec: ToolSpec, args: dict) -> str | None:
    """``None`` when ``args`` fit ``spec.parameters``; else one line naming the field."""
    schema = spec.parameters
    props: dict = schema.get("properties", {})
    problems = []
    missing = [k for k in schema.get("required", []) if k not in args]
    if missing:
        problems.append(f"missing required argument(s) {', '.join(missing)}")
    if schema.get("additionalProperties") is False:
        extra = [k for k in args if k not in props]
        if extra:
            problems.append(f"unknown argument(s) {', '.join(extra)}")
    for key, value in args.items():
        why = _check_value(props.get(key, {}), value)
        if why:
            problems.append(f"{key}: {why}")
    return "; ".join(problems) or None


def _check_value(schema: dict, value) -> str | None:
    if "enum" in schema and value not in schema["enum"]:
        return f"expected one of {', '.join(map(str, schema['enum']))}, got {value!r}"
    kind = schema.get("type")
    if kind is None or value is None:
        return None
    ok = isinstance(value, _TYPES[kind]) and not (kind in ("integer", "number")
                                                     and isinstance(value, bool))
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        ok = True
    if not ok:
        return f"expected {kind}, got {type(value).__name__} {json.dumps(value)[:60]}"
    if kind == "array" and "items" in schema:
        for n, item in enumerate(value):
            why = _check_value(schema["items"], item)
            if why:
                return f"item {n}: {why}"
    return None


def signature(spec: ToolSpec) -> str:
    """``shell(command: string, timeout_s?: integer)``: what a tool expects, on one line."""
    props = spec.parameters.get("properties", {})
    required = set(spec.parameters.get("required", []))

    def kind(s: dict) -> str:
        if "enum" in s:
            return "|".join(map(str, s["enum"]))
        if s.get("type") == "array":
            return f"array of {s.get('items', {}).get('type', 'any')}"
        return s.get("type", "any")

    args = ", ".join(f"{k}{'' if k in required else '?'}: {kind(v)}" for k, v in props.items())
    return f"{spec.name}({args})"
