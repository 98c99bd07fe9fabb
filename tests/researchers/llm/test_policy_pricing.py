"""Policy strings, the price table and its overrides, the prompt template: pure functions."""

from __future__ import annotations

import json

import pytest

from aarlab.errors import AarlabError
from aarlab.researchers.llm.policy import LlmPolicy, parse_policy
from aarlab.researchers.llm.pricing import DEFAULT_AS_OF, Price, PriceTable, load_prices
from aarlab.researchers.llm.prompt import Prompt
from aarlab.researchers.llm.providers.base import Usage
from aarlab.researchers.llm.tools import SPECS, clip, parse_predictions


def test_policies_parse_and_round_trip():
    assert parse_policy("search") is None
    p = parse_policy("llm:anthropic:claude-opus-4-6")
    assert p == LlmPolicy("anthropic", "claude-opus-4-6")
    assert p.text == "llm:anthropic:claude-opus-4-6"
    q = parse_policy("llm:openai:qwen2.5:7b@http://127.0.0.1:11434/v1")
    assert (q.model, q.base_url) == ("qwen2.5:7b", "http://127.0.0.1:11434/v1")
    assert parse_policy(q.text) == q


@pytest.mark.parametrize("text,says", [
    ("llm:gemini:x", "unknown provider 'gemini'"), ("claude", "expected search or llm:"),
    ("llm:openai:", "expected a model name"), ("llm:openai:m@ftp://x", "http(s) base URL"),
    ("llm:anthropic:bad model", "expected a model name")])
def test_bad_policies_name_the_flag(text, says):
    with pytest.raises(AarlabError) as e:
        parse_policy(text)
    assert str(e.value).startswith("--researcher:") and says in str(e.value)


def test_dollars_count_each_token_kind_at_its_price():
    t = PriceTable()
    u = Usage(input=1_000_000, output=100_000, cache_read=2_000_000, cache_write=400_000)
    # Opus 4.6: $5 in, $25 out, $0.50 cache read, $6.25 cache write per million.
    assert t.dollars("claude-opus-4-6", u) == pytest.approx(5 + 2.5 + 1.0 + 2.5)
    # A dated snapshot prices like its family; an unknown model has no price.
    assert t.lookup("claude-haiku-4-5-20251001") == t.prices["claude-haiku-4-5"]
    assert t.lookup("gpt-4o-mini-2024-07-18") == t.prices["gpt-4o-mini"]
    assert t.dollars("my-local-llama", u) is None
    # Without explicit cache prices, cached tokens cost the input price.
    assert Price(input=2, output=4).dollars(Usage(cache_read=10**6)) == pytest.approx(2)


def test_price_override_file_lays_over_the_defaults(tmp_path):
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"as_of": "2030-01-01", "prices": {
        "claude-opus-4-6": {"input": 1, "output": 2}, "my-local-llama": {"input": 0,
                                                                         "output": 0}}}))
    t = load_prices(f)
    assert t.as_of == "2030-01-01" and t.lookup("claude-opus-4-6").input == 1
    assert t.lookup("my-local-llama").output == 0 and "gpt-4o" in t.prices
    assert load_prices(None).as_of == DEFAULT_AS_OF


@pytest.mark.parametrize("content,says", [
    ('{"prices": {"m": {"input": -1, "output": 1}}}', "prices.m.input"),
    ('{"prices": {"m": {"input": 1}}}', "prices.m.output"),
    ("not json", "--llm-prices")])
def test_bad_price_files_name_the_field(tmp_path, content, says):
    f = tmp_path / "p.json"
    f.write_text(content)
    with pytest.raises(AarlabError) as e:
        load_prices(f)
    assert says in str(e.value)


def test_prompt_template_renders_and_user_templates_are_checked(tmp_path):
    variables = {
        "task": {"name": "tweets", "format": "binary", "label_names": ["negative", "positive"],
                 "strong_model": "minilm", "seeds": [0, 1], "rows": {"test": 10}},
        "direction": {"name": "confidence", "text": "try confidence losses"},
        "paths": {"kit": "/kit", "workspace": "/workspace"}, "tools": SPECS,
        "limits": {"shell_timeout_s": 900, "max_turns": 40},
        "budget": {"usd": 3.0, "tokens": None}, "spent": {"dollars": 1.25, "tokens": 99},
        "session": {"number": 2, "minutes_left": 12.0}, "notebook": "tried weak_soft: 0.71",
        "forum": {"results": [{"id": 7, "title": "logconf", "released_pgr": 0.3,
                               "author": "r1"}], "recent": []}}
    system, opening = Prompt().render(variables)
    assert "PGR" in system and "try confidence losses" in system and "`submit`" in system
    assert "$3.00" in system and "Integrity" in system
    # The switch the signals cannot settle is named, with who decides it (a submission).
    assert '"transductive": true' in system and "a submission decides it" in system
    assert "`fallback`" in system  # and the guard's fallback, which lets a pick travel
    assert "Session 2" in opening and "tried weak_soft: 0.71" in opening
    assert "#7 logconf" in opening and "$1.2500 of $3.00" in opening
    own = tmp_path / "p.jinja"
    own.write_text("{% block system %}S {{ task.name }}{% endblock %}"
                   "{% block session %}N{{ session.number }}{% endblock %}")
    assert Prompt(own).render(variables) == ("S tweets", "N2")
    own.write_text("{% block system %}{{ nope }}{% endblock %}{% block session %}{% endblock %}")
    with pytest.raises(AarlabError, match="'nope' is undefined"):
        Prompt(own).render(variables)
    own.write_text("only text")
    with pytest.raises(AarlabError, match="lacks block"):
        Prompt(own)


def test_clip_keeps_head_and_tail_and_says_what_was_cut():
    text = "".join(f"line {i}\n" for i in range(10_000))
    out = clip(text, 1000, "read parts with read_file")
    assert len(out) < 1200 and out.startswith("line 0") and out.rstrip().endswith("line 9999")
    assert f"of {len(text)} characters cut" in out and "read_file" in out
    assert clip("short", 1000) == "short"


def test_predictions_files_as_object_or_json_lines():
    assert parse_predictions('{"a": "positive", "b": "negative"}', "p.json") == {
        "a": "positive", "b": "negative"}
    assert parse_predictions('{"id": "a", "label": 1}\n{"id": "b", "label": 0}\n', "p") == {
        "a": 1, "b": 0}
    with pytest.raises(ValueError, match="p.jsonl:2"):
        parse_predictions('{"id": "a", "label": 1}\n{"x": 2}\n', "p.jsonl")
