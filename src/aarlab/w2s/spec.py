"""MethodSpec: an experiment as plain data, validated with pydantic.

Two spellings, which can be combined (the named method goes first)::

    {"method": "logconf", "params": {"aux_coef": 0.5}, "head": {"kind": "linear"}}
    {"steps": [{"method": "confidence_filter", "params": {"threshold": 0.8}},
               {"method": "logconf"}],
     "head": {"epochs": 10}}

Steps run in stage order (labels → select → loss → train → post); a spec has at most one step
each of the labels, loss and train stages, and missing stages take their defaults (weak soft
labels, cross-entropy, one fit, plain prediction). ``head`` overrides fields of the kit's default
student head. Every mistake raises :class:`aarlab.errors.SpecError` naming the field, e.g.
``params.threshold: must be in [0, 1], got 1.5``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aarlab.errors import SpecError
from aarlab.w2s.heads import HeadConfig
from aarlab.w2s.methods import METHODS, param_info
from aarlab.w2s.methods.base import STAGES, Step

SINGLE_STAGES = ("labels", "loss", "train")


class HeadSpec(BaseModel):
    """Overrides of the student head; unset fields keep the kit's default."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    kind: Literal["linear", "mlp"] | None = Field(None, description="linear or 1-hidden-layer MLP")
    hidden: int | None = Field(None, ge=4, le=4096, description="MLP hidden width")
    epochs: int | None = Field(None, ge=1, le=200, description="passes over the training rows")
    batch_size: int | None = Field(None, ge=8, le=100_000, description="rows per step")
    lr: float | None = Field(None, gt=0.0, le=1.0, description="AdamW learning rate")
    weight_decay: float | None = Field(None, ge=0.0, le=1.0, description="AdamW weight decay")
    dropout: float | None = Field(None, ge=0.0, le=0.9, description="MLP dropout")
    min_steps: int | None = Field(None, ge=0, le=100_000,
                                  description="raise epochs until at least this many steps")

    def config(self, base: dict | HeadConfig | None = None) -> HeadConfig:
        fields = asdict(base) if isinstance(base, HeadConfig) else dict(base or {})
        known = set(HeadConfig.__dataclass_fields__)
        fields = {k: v for k, v in fields.items() if k in known}
        fields.update(self.model_dump(exclude_none=True))
        return HeadConfig(**fields)


class StudentSpec(BaseModel):
    """Which student a spec trains: the frozen-feature head, or LoRA on the strong LM."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    kind: Literal["head", "lora"] = Field(
        "head", description="head: a head on the kit's frozen features (seconds on a CPU); "
        "lora: LoRA fine-tuning of the task's strong LM (minutes per fit on a CPU)")
    lr: float = Field(1e-4, gt=0.0, le=0.1, description="lora: AdamW learning rate")
    epochs: int = Field(1, ge=1, le=20, description="lora: passes over the training rows")
    batch_size: int = Field(8, ge=1, le=512, description="lora: rows per step")
    r: int = Field(8, ge=1, le=256, description="lora: adapter rank (alpha = 2r)")
    max_length: int = Field(256, ge=16, le=8192, description="lora: prompt tokens kept")


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    method: str
    params: dict[str, Any] = Field(default_factory=dict)


class MethodSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    method: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(default_factory=list)
    head: HeadSpec = Field(default_factory=HeadSpec)
    student: StudentSpec = Field(default_factory=StudentSpec)
    transductive: bool = Field(
        False, description="the test rows (features and the teacher's soft labels) join the "
        "rows every step and the student learn from (aarlab.w2s.transductive)")

    def all_steps(self) -> list[tuple[str, StepSpec]]:
        """(field path, step) for the named method and every listed step, in given order."""
        out = [("", StepSpec(method=self.method, params=self.params))] if self.method else []
        return out + [(f"steps[{i}].", s) for i, s in enumerate(self.steps)]

    def build(self) -> list[Step]:
        """Step instances in stage order (stable within a stage). The spec must be validated."""
        steps = [METHODS[s.method](METHODS[s.method].Params(**s.params))
                 for _, s in self.all_steps()]
        return sorted(steps, key=lambda st: STAGES.index(st.stage))

    @property
    def label(self) -> str:
        """A short human name: ``confidence_filter(threshold=0.8)+logconf``."""
        parts = []
        for _, s in self.all_steps():
            args = ",".join(f"{k}={_arg(v)}" for k, v in s.params.items() if _is_set(v))
            parts.append(f"{s.method}({args})" if args else s.method)
        head = ",".join(f"{k}={v}" for k, v in self.head.model_dump(exclude_none=True).items())
        student = ",".join(f"{k}={v}" for k, v in
                           self.student.model_dump(exclude_defaults=True).items() if k != "kind")
        lora = (" [lora" + (f" {student}" if student else "") + "]"
                if self.student.kind == "lora" else "")
        return ("+".join(parts) + (f" [head {head}]" if head else "") + lora
                + (" [transductive]" if self.transductive else ""))

    def canonical(self) -> dict:
        """Every step with every parameter (defaults filled in): what was actually run."""
        # An empty mapping (guarded's source_params: the source at its defaults) or an unset
        # option (guarded's fallback) is left out, so specs measured before the parameter
        # existed keep their identity (baseline caches).
        return {"steps": [{"method": st.name, "params": {k: v for k, v in st.p.model_dump().items()
                                                         if _is_set(v)}}
                          for st in self.build()],
                "head": self.head.model_dump(exclude_none=True),
                # Only a non-default student is named, so head specs keep their old identity.
                **({"student": self.student.model_dump()} if self.student.kind != "head"
                   else {}),
                **({"transductive": True} if self.transductive else {})}


def _is_set(v: Any) -> bool:
    """Is a parameter set? An empty mapping (guarded's source_params) or None (an unset option,
    guarded's fallback) is not, and neither labels nor identifies a spec."""
    return v != {} and v is not None


def _arg(v: Any) -> str:
    """A parameter value in a label; another step's parameters as ``(k=40,prior=knn)``, a
    list of steps (guarded's fallback) as ``[logconf+ensemble(members=2)]``."""
    if isinstance(v, dict):
        return "(" + ",".join(f"{k}={x}" for k, x in v.items()) + ")"
    if isinstance(v, list):
        return "[" + "+".join(s["method"] + (_arg(s["params"]) if s.get("params") else "")
                              for s in v) + "]"
    return str(v)


def parse_spec(obj: MethodSpec | dict | str) -> MethodSpec:
    """Validate a spec (a MethodSpec, a dict, or JSON text); raise SpecError naming the field."""
    if isinstance(obj, MethodSpec):
        spec = obj
    else:
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except ValueError as e:
                raise SpecError(f"spec: not valid JSON ({e})") from None
            except RecursionError:
                raise SpecError("spec: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise SpecError(f"spec: expected an object, got {type(obj).__name__}")
        try:
            spec = MethodSpec.model_validate(obj)
        except ValidationError as e:
            raise SpecError(_messages(e, "", MethodSpec)) from None
        except RecursionError:
            raise SpecError("spec: nested too deeply") from None
    _check_steps(spec)
    if spec.transductive and spec.student.kind != "head":
        raise SpecError("transductive: only the head student learns from the test rows; "
                        f"student.kind is {spec.student.kind!r}",
                        hint="drop \"transductive\" or use the default head student")
    return spec


def _check_steps(spec: MethodSpec) -> None:
    steps = spec.all_steps()
    if not steps:
        raise SpecError("method: required (give a method name or a list of steps)",
                        hint=f"known methods: {', '.join(sorted(METHODS))}")
    seen: dict[str, str] = {}
    for path, s in steps:
        if s.method not in METHODS:
            raise SpecError(f"{path}method: unknown method {s.method!r}",
                            hint=f"known methods: {', '.join(sorted(METHODS))}")
        cls = METHODS[s.method]
        try:
            cls.Params.model_validate(s.params)
        except ValidationError as e:
            raise SpecError(_messages(e, f"{path}params.", cls.Params, s.method)) from None
        if cls.stage in SINGLE_STAGES:
            if cls.stage in seen:
                raise SpecError(f"{path}method: {s.method!r} is a {cls.stage} step, but "
                                f"{seen[cls.stage]} already is one; a spec has at most one")
            seen[cls.stage] = repr(s.method)


def _messages(err: ValidationError, prefix: str, model: type[BaseModel],
              method: str | None = None) -> str:
    return "; ".join(_message(e, prefix, model, method) for e in err.errors())


def _message(e: dict, prefix: str, model: type[BaseModel], method: str | None) -> str:
    loc = prefix + _loc(e["loc"])
    kind, value = e["type"], e.get("input")
    model, field = _model_at(model, e["loc"])
    if kind == "missing":
        return f"{loc}: required"
    if kind == "extra_forbidden":
        if method is not None:
            known = ", ".join(model.model_fields) or "none"
            return f"{loc}: unknown parameter of {method!r} (known: {known})"
        return f"{loc}: unknown field (known: {', '.join(model.model_fields)})"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{loc}: must be in {_range(model, field)}, got {value!r}"
    if kind == "literal_error":
        return f"{loc}: must be one of {e['ctx']['expected']}, got {value!r}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        expected = {"float": "a number", "int": "an integer", "bool": "true or false",
                    "string": "a string", "dict": "an object", "list": "a list",
                    "model": "an object"}.get(kind.split("_")[0], kind)
        return f"{loc}: expected {expected}, got {value!r}"
    if kind == "value_error":  # a validator's own sentence, without pydantic's prefix
        return f"{loc}: {e['msg'].removeprefix('Value error, ')}"
    return f"{loc}: {e['msg']}"


def _loc(parts: tuple) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _model_at(model: type[BaseModel], loc: tuple) -> tuple[type[BaseModel], str]:
    """The (sub-)model that owns the field at ``loc``, and that field's name."""
    nested = {"head": HeadSpec, "steps": StepSpec, "student": StudentSpec}
    parts = [p for p in loc if not isinstance(p, int)]
    while model is MethodSpec and len(parts) > 1 and parts[0] in nested:
        model, parts = nested[parts[0]], parts[1:]
    return model, (parts[0] if parts else "")


def _range(model: type[BaseModel], field: str) -> str:
    """The allowed range of ``field`` as [lo, hi] or (lo, hi], from its pydantic metadata."""
    info = next((i for i in param_info(model) if i["name"] == field), {})
    lo, hi = info.get("min", "-inf"), info.get("max", "inf")
    left = "[" if info.get("min_inclusive", False) else "("
    right = "]" if info.get("max_inclusive", False) else ")"
    return f"{left}{_num(lo)}, {_num(hi)}{right}"


def _num(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
