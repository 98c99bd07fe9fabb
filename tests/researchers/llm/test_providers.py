"""Both providers against local stand-ins that speak the real wire formats, through the real SDKs:
request shapes (tools, tool results, prompt caching), usage parsing, retries, one-line errors."""

from __future__ import annotations

import pytest
from llm_standins import Fail, StandIn, Turn, call, tool_results

from aarlab.researchers.llm.policy import LlmPolicy
from aarlab.researchers.llm.providers import ProviderError, make_provider
from aarlab.researchers.llm.providers.base import Message, ToolCall, ToolResult, ToolSpec

TOOLS = [ToolSpec("shell", "run a command", {"type": "object", "properties": {
    "command": {"type": "string"}}, "required": ["command"]})]


def provider(kind: str, server: StandIn, model: str, key: str = "test-key"):
    return make_provider(LlmPolicy(kind, model, server.base_url), timeout_s=10, max_retries=3,
                         api_key=key)


def conversation(first_call_id: str) -> list[Message]:
    return [Message("user", "start"),
            Message("assistant", "I will look.", [ToolCall(first_call_id, "shell",
                                                           {"command": "ls"})]),
            Message("tool", results=[ToolResult(first_call_id, "shell", "exit code 0\na.py",
                                                is_error=False)])]


def test_anthropic_wire_format_tool_use_and_cache_tokens():
    script = [Turn("Listing.", [call("shell", command="ls -la")], usage=(120, 30, 900, 50)),
              Turn("Done.", usage=(10, 5, 1000, 0))]
    with StandIn("anthropic", script) as s:
        p = provider("anthropic", s, "claude-opus-4-6")
        r1 = p.complete("SYSTEM", [Message("user", "start")], TOOLS, max_tokens=512)
        assert r1.stop == "tool_use" and r1.text == "Listing."
        assert [(c.name, c.arguments) for c in r1.tool_calls] == [("shell",
                                                                   {"command": "ls -la"})]
        assert (r1.usage.input, r1.usage.output, r1.usage.cache_read, r1.usage.cache_write) == \
            (120, 30, 900, 50)
        r2 = p.complete("SYSTEM", conversation(r1.tool_calls[0].id), TOOLS, max_tokens=512)
        assert r2.stop == "end" and not r2.tool_calls and r2.raw_stop == "end_turn"
        first, second = s.requests
    # The stable prefix (tools + system) and the newest user turn carry cache breakpoints.
    assert first["system"] == [{"type": "text", "text": "SYSTEM",
                                "cache_control": {"type": "ephemeral"}}]
    assert first["tools"][0]["input_schema"]["required"] == ["command"]
    assert first["max_tokens"] == 512 and first["model"] == "claude-opus-4-6"
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert second["messages"][1]["content"][1]["type"] == "tool_use"
    result = second["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is False
    assert result["cache_control"] == {"type": "ephemeral"}
    assert tool_results(second) == ["exit code 0\na.py"]


def test_openai_wire_format_tool_calls_and_cached_tokens():
    script = [Turn("", [call("shell", command="ls")], usage=(300, 20, 700, 0)),
              Turn("All done.", usage=(50, 10, 0, 0))]
    with StandIn("openai", script) as s:
        p = provider("openai", s, "qwen2.5-7b-instruct")
        r1 = p.complete("SYSTEM", [Message("user", "start")], TOOLS, max_tokens=256)
        assert r1.stop == "tool_use" and r1.raw_stop == "tool_calls"
        # prompt_tokens (1000) includes the 700 cached: counted apart, never twice.
        assert (r1.usage.input, r1.usage.cache_read, r1.usage.output) == (300, 700, 20)
        r2 = p.complete("SYSTEM", conversation(r1.tool_calls[0].id), TOOLS, max_tokens=256)
        assert r2.stop == "end" and r2.text == "All done."
        first, second = s.requests
    assert first["messages"][0] == {"role": "system", "content": "SYSTEM"}
    assert first["tools"][0]["type"] == "function"
    assert first["tools"][0]["function"]["name"] == "shell"
    assistant = second["messages"][2]
    assert assistant["tool_calls"][0]["function"]["arguments"] == '{"command": "ls"}'
    assert second["messages"][3]["role"] == "tool"
    assert tool_results(second) == ["exit code 0\na.py"]


def test_openai_bad_json_arguments_are_kept_for_the_loop_to_refuse():
    with StandIn("openai", [Turn("", [call("shell")], raw_arguments="{not json")]) as s:
        r = provider("openai", s, "qwen2.5-7b-instruct").complete(
            "S", [Message("user", "x")], TOOLS, max_tokens=64)
    assert r.tool_calls[0].bad_arguments == "{not json" and r.tool_calls[0].arguments == {}


@pytest.mark.parametrize("kind,model,status", [
    ("anthropic", "claude-opus-4-6", 529), ("anthropic", "claude-opus-4-6", 429),
    ("openai", "qwen2.5-7b-instruct", 503), ("openai", "qwen2.5-7b-instruct", 429)])
def test_overloaded_and_rate_limited_calls_are_retried(kind, model, status):
    script = [Fail(status), Fail(status), Turn("ok")]
    with StandIn(kind, script) as s:
        r = provider(kind, s, model).complete("S", [Message("user", "x")], TOOLS,
                                              max_tokens=64)
        assert r.text == "ok"
        assert len(s.requests) == 3  # two refusals, then the answer


def test_retries_give_up_with_a_session_ending_error():
    with StandIn("anthropic", [Fail(529)] * 5) as s, pytest.raises(ProviderError) as e:
        provider("anthropic", s, "claude-opus-4-6").complete(
            "S", [Message("user", "x")], TOOLS, max_tokens=64)
    assert not e.value.fatal and "529" in e.value.message and "\n" not in e.value.message
    assert len(s.requests) == 4  # first try + max_retries=3


@pytest.mark.parametrize("kind,model,var", [("anthropic", "claude-opus-4-6",
                                             "ANTHROPIC_API_KEY"),
                                            ("openai", "qwen2.5-7b-instruct", "OPENAI_API_KEY")])
def test_bad_key_is_one_fatal_line_without_retries(kind, model, var):
    with StandIn(kind, [Turn("never")]) as s:
        p = provider(kind, s, model, key="wrong-key")
        with pytest.raises(ProviderError) as e:
            p.complete("S", [Message("user", "x")], TOOLS, max_tokens=64)
        with pytest.raises(ProviderError) as pre:
            p.check()
        assert len(s.requests) == 1
    for err in (e.value, pre.value):
        assert err.fatal and err.kind == "auth" and var in err.message and "401" in err.message
        assert "\n" not in err.message


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_unknown_model_is_named_in_one_fatal_line(kind):
    with StandIn(kind, [Turn("never")]) as s:
        p = provider(kind, s, "no-such-model")
        with pytest.raises(ProviderError) as pre:
            p.check()
        with pytest.raises(ProviderError) as e:
            p.complete("S", [Message("user", "x")], TOOLS, max_tokens=64)
    assert pre.value.fatal and pre.value.kind == "model" and "no-such-model" in pre.value.message
    assert e.value.fatal and "no-such-model" in e.value.message and "\n" not in e.value.message


def test_check_passes_for_a_served_model():
    with StandIn("anthropic", []) as a, StandIn("openai", []) as o:
        provider("anthropic", a, "claude-opus-4-6").check()
        provider("openai", o, "qwen2.5-7b-instruct").check()
        assert a.model_lookups == 1 and o.model_lookups == 1 and not a.requests


def test_unreachable_server_is_a_transient_error():
    s = StandIn("openai", [])  # bound but never started: connections are refused or hang
    s._sock.close()
    p = make_provider(LlmPolicy("openai", "m", s.base_url), timeout_s=2, max_retries=0)
    with pytest.raises(ProviderError) as e:
        p.complete("S", [Message("user", "x")], TOOLS, max_tokens=64)
    assert not e.value.fatal and e.value.kind == "connection"
