"""Where a lab's researchers run: this machine (``local``) or a Ray cluster (``ray``).

The orchestrator holds all of the lab's logic; a backend only turns a ``SandboxSpec`` into a
working sandbox somewhere, and says which addresses the lab server must listen on for it.
"""

from aarlab.lab.backends.base import Backend, BackendOptions
from aarlab.lab.backends.factory import make_backend

__all__ = ["Backend", "BackendOptions", "make_backend"]
