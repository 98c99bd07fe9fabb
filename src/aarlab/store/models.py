"""Imports every table module so that ``Store.create_all`` sees them all.

Each service keeps its tables beside its logic (``aarlab.scoring.tables``,
``aarlab.forum.tables``, ...); add the module here when you add one.
"""

import importlib

for _name in ("aarlab.store.identity", "aarlab.store.audit",
              "aarlab.scoring.tables", "aarlab.forum.tables", "aarlab.lab.tables",
              "aarlab.researchers.llm.tables"):
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as _e:
        if _e.name != _name:
            raise
