"""Choosing a backend from options: apart from ``base`` so that backends import only downward."""

from __future__ import annotations

from aarlab.config import Settings
from aarlab.lab.backends.base import Backend, BackendOptions
from aarlab.lab.backends.local import LocalBackend
from aarlab.lab.backends.raycluster import RayBackend, cluster_reachable


def make_backend(options: BackendOptions, settings: Settings, *,
                 allow_unsandboxed: bool = False) -> Backend:
    kind = options.kind
    if kind == "auto":
        kind = "ray" if cluster_reachable(options.address) else "local"
        # Join the cluster that was found, never a new Ray of our own.
        options = options.model_copy(update={"address": options.address or "auto"})
    if kind == "local":
        return LocalBackend(settings, allow_unsandboxed=allow_unsandboxed)
    return RayBackend(options, settings, allow_unsandboxed=allow_unsandboxed)
