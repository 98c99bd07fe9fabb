"""Entry point inside a sandbox: ``python -m aarlab.researchers.search``.

Everything comes from the environment the lab sets (``AARLAB_*``): the lab socket and this
researcher's token, the kit path, the direction, the budget. Exit code 0 means the budget was
spent; anything else makes the lab restart the researcher (its workspace survives).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from aarlab.client import LabClient
from aarlab.researchers.search.agent import Budget, SearchResearcher
from aarlab.tasks.kit import TaskKit


def main() -> int:
    env = os.environ
    torch.set_num_threads(int(env.get("OMP_NUM_THREADS", "1")))
    kit = TaskKit(Path(env["AARLAB_KIT"]))
    budget = Budget(deadline=float(env["AARLAB_DEADLINE"]),
                    max_experiments=int(env.get("AARLAB_MAX_EXPERIMENTS", "1000000")),
                    max_submissions=int(env.get("AARLAB_MAX_SUBMISSIONS", "1000000")))
    workspace = Path(env.get("AARLAB_WORKSPACE", os.getcwd()))
    with LabClient() as client:
        researcher = SearchResearcher(
            kit, client, workspace, direction=env.get("AARLAB_DIRECTION", "any"),
            direction_methods=[m for m in env.get("AARLAB_DIRECTION_METHODS", "").split(",")
                               if m],
            budget=budget, seed=int(env.get("AARLAB_SEED", "0")),
        )
        researcher.run()
    print(f"done: {researcher.experiments} experiments, {researcher.submissions} submissions "
          f"at {time.strftime('%H:%M:%S')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
