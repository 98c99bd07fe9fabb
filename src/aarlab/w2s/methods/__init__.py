"""The W2S method library: every method is one module that registers its step classes.

Adding a method = writing a module in this package with a ``@register``-ed :class:`Step`
subclass; it is discovered on import and listed by ``aarlab methods``.
"""

from __future__ import annotations

import importlib
import pkgutil
import types
import typing
from typing import Any

from pydantic.fields import FieldInfo

from aarlab.w2s.methods.base import STAGES, Context, Params, Step, TrainSet

METHODS: dict[str, type[Step]] = {}


def register(cls: type[Step]) -> type[Step]:
    if cls.stage not in STAGES:
        raise ValueError(f"{cls.__name__}.stage must be one of {STAGES}, got {cls.stage!r}")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    METHODS[cls.name] = cls
    return cls


def _discover() -> None:
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if mod != "base" and not mod.startswith("_"):  # _helpers are not methods
            importlib.import_module(f"{__name__}.{mod}")


def get_method(name: str) -> type[Step]:
    return METHODS[name]


def all_methods() -> list[type[Step]]:
    """Registered methods in stage order, then by name."""
    return sorted(METHODS.values(), key=lambda c: (STAGES.index(c.stage), c.name))


# The parameter types that are one value each (what a search samples and a tuning grid moves);
# "mapping" (another step's parameters, guarded's source_params) and "steps" (guarded's
# fallback) are not among them.
SCALAR_TYPES = ("choice", "bool", "int", "float")


def param_info(model: type[Params]) -> list[dict[str, Any]]:
    """Each parameter's name, type, default, range or choices and doc, from its pydantic field.

    A search researcher mutates specs with exactly this: every number has a range, every
    string a list of choices.
    """
    return [_field_info(name, f) for name, f in model.model_fields.items()]


def _field_info(name: str, f: FieldInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"name": name, "default": f.get_default(call_default_factory=True),
                            "doc": f.description or ""}
    ann = f.annotation
    if typing.get_origin(ann) is dict:  # another step's parameters (guarded's source_params)
        info["type"] = "mapping"
        return info
    if typing.get_origin(ann) in (typing.Union, types.UnionType):  # X | None: describe X
        ann = next(a for a in typing.get_args(ann) if a is not type(None))
    if typing.get_origin(ann) is list:  # a list of steps (guarded's fallback)
        info["type"] = "steps"
        return info
    if typing.get_origin(ann) is typing.Literal:
        info["type"] = "choice"
        info["choices"] = list(typing.get_args(ann))
        return info
    info["type"] = {bool: "bool", int: "int", float: "float", str: "str"}.get(ann, str(ann))
    for m in f.metadata:
        for attr, key, closed in (("ge", "min", True), ("gt", "min", False),
                                  ("le", "max", True), ("lt", "max", False)):
            v = getattr(m, attr, None)
            if v is not None:
                info[key] = v
                info[f"{key}_inclusive"] = closed
    return info


def describe() -> list[dict[str, Any]]:
    """The discoverable list: ``aarlab methods --json`` prints this."""
    return [{"name": c.name, "stage": c.stage, "doc": c.doc(), "cost": c.cost,
             "params": param_info(c.Params)} for c in all_methods()]


_discover()

__all__ = ["METHODS", "SCALAR_TYPES", "Context", "Params", "Step", "TrainSet", "all_methods",
           "describe", "get_method", "param_info", "register"]
