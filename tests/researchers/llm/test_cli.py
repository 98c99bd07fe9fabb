"""``aarlab run --researcher …`` as a user types it: mistakes and refused keys are one line and
exit 2 before any lab starts (no tokens spent, no traceback)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from llm_standins import StandIn, Turn

from aarlab import cli


@dataclass
class Ran:
    returncode: int
    stderr: str


@pytest.fixture
def aarlab(monkeypatch, capsys, settings):
    """``aarlab(*args, env={...})``: the real CLI entry point, in this process (fast)."""

    def run(*args: str, env: dict[str, str]) -> Ran:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr("sys.argv", ["aarlab", "run", "--task", "tweets", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            cli.main()
        return Ran(e.value.code, capsys.readouterr().err)

    return run


@pytest.mark.parametrize("args,says", [
    (["--researcher", "llm:gemini:pro"], "--researcher: unknown provider 'gemini'"),
    (["--researcher", "search", "--researcher", "gpt4"], "--researcher: expected search or llm:"),
    (["--researcher", "llm:anthropic:my-finetune", "--llm-budget", "5"],
     "--llm-budget: no price for model 'my-finetune'"),
])
def test_mistakes_are_one_line(aarlab, settings, args, says):
    r = aarlab(*args, env={"AARLAB_HOME": str(settings.home), "ANTHROPIC_API_KEY": "x"})
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr


def test_a_refused_key_stops_the_run_before_the_lab_starts(aarlab, settings):
    with StandIn("anthropic", [Turn("never")], key="right") as api:
        r = aarlab("--researcher", f"llm:anthropic:claude-opus-4-6@{api.base_url}",
                   env={"AARLAB_HOME": str(settings.home), "ANTHROPIC_API_KEY": "wrong"})
        assert not api.requests and api.model_lookups == 1  # checked, nothing spent
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "the API key was refused (401)" in r.stderr and "ANTHROPIC_API_KEY" in r.stderr
    assert not (settings.home / "labs").exists() or not any((settings.home / "labs").iterdir())


def test_an_unknown_model_on_a_local_server_is_named(aarlab, settings):
    with StandIn("openai", []) as api:
        r = aarlab("--researcher", f"llm:openai:llama3:70b@{api.base_url}",
                   env={"AARLAB_HOME": str(settings.home), "OPENAI_API_KEY": "test-key"})
    assert r.returncode == 2 and "'llama3:70b' is not served" in r.stderr
    assert "qwen2.5-7b-instruct" in r.stderr  # what it does serve
