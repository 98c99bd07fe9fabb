"""Tasks whose weak teacher and strong student are language models, derived from a source task.

``aarlab task build snli-pref --as snli-lm --weak-model smollm2-135m --strong-model
qwen2.5-0.5b --sizes 200,400,300`` records ``AARLAB_HOME/lm-tasks/snli-lm.json`` (source task,
models, sizes, seeds) and registers ``snli-lm`` so ``get_task`` finds it in every later command:
same rows and format as the source, LM teacher and ceiling (``aarlab.w2s.lm_fit``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from aarlab.config import Settings, get_settings
from aarlab.errors import AarlabError
from aarlab.tasks.spec import TASKS, Sizes, TaskSpec, register

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")


@dataclass(frozen=True)
class LMTaskSpec(TaskSpec):
    """A source task's rows with a fine-tuned LM teacher and an LM student."""

    source: str = ""
    weak_model: str = ""
    weak_seeds: int = 2
    replication_seeds: int = 0


def lm_tasks_dir(settings: Settings) -> Path:
    return settings.home / "lm-tasks"


def parse_sizes(text: str) -> Sizes:
    """``LABEL,UNLABEL,TEST`` -> Sizes; a bad value says what was expected."""
    parts = text.split(",")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) != 3 or min(nums) < 8:
        raise AarlabError(f"--sizes: expected three integers LABEL,UNLABEL,TEST, each at least 8, "
                          f"got {text!r}", hint="e.g. --sizes 200,400,300")
    return Sizes(*nums)


def define(name: str, base: TaskSpec, weak_model: str, strong_model: str, sizes: Sizes | None,
           weak_seeds: int = 2, settings: Settings | None = None) -> LMTaskSpec:
    """Record and register an LM task derived from ``base`` (the caller looks it up in the
    registry, which imports this module: taking the spec keeps the import one-way)."""
    if not NAME.match(name):
        raise AarlabError(f"--as: task name must be lowercase letters, digits and '-', got "
                          f"{name!r}")
    if isinstance(base, LMTaskSpec):  # an LM task's source is registered before it is
        base = TASKS[base.source]
    if name in TASKS and not isinstance(TASKS[name], LMTaskSpec):
        raise AarlabError(f"--as: {name!r} is already a task of its own", hint="pick a new name")
    record = {"name": name, "source": base.name, "weak_model": weak_model,
              "strong_model": strong_model, "weak_seeds": weak_seeds,
              "sizes": list((sizes or base.sizes).__dict__.values())}
    folder = lm_tasks_dir(settings or get_settings())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record, indent=1))
    return _register(record)


def _register(record: dict) -> LMTaskSpec:
    base = TASKS[record["source"]]
    spec = LMTaskSpec(
        **{**base.__dict__, "name": record["name"], "default": False, "notice": base.notice,
           "description": f"{base.description} (LM teacher {_short(record['weak_model'])}, "
                          f"LM student {_short(record['strong_model'])})",
           "sizes": Sizes(*record["sizes"]), "strong_model": record["strong_model"]},
        source=record["source"], weak_model=record["weak_model"],
        weak_seeds=int(record.get("weak_seeds", 2)))
    return register(spec)  # type: ignore[return-value]


def _short(model: str) -> str:
    """A model as a kit may name it: a folder by its last part, never a path of this machine."""
    return Path(model).name if Path(model).expanduser().is_dir() else model


def load_all(settings: Settings | None = None) -> None:
    """Register every recorded LM task (called when the task registry loads its plugins)."""
    folder = lm_tasks_dir(settings or get_settings())
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            if record["source"] in TASKS and NAME.match(record["name"]):
                _register(record)
        except (ValueError, KeyError, TypeError):
            continue  # a broken record hides that task only, with no traceback elsewhere


load_all()
