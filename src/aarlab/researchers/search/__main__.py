"""Entry point inside a sandbox: ``python -m aarlab.researchers.search``.

Everything comes from the lab's typed contract (``ResearcherEnv.from_env()``): the socket and
this researcher's token, the kit path (and the other suite tasks' kits), the direction, the
budget. Exit code 0 means the budget was spent; anything else makes the lab restart the
researcher (its workspace survives).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from aarlab.client import LabClient
from aarlab.kits.kit import TaskKit
from aarlab.lab.researcher_env import ResearcherEnv
from aarlab.researchers.search.agent import Budget, SearchResearcher


def main() -> int:
    env = ResearcherEnv.from_env()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    kit = TaskKit(Path(env.kit))
    suite = {name: TaskKit(Path(path)) for name, path in env.suite.items() if name != env.task}
    budget = Budget(deadline=env.deadline, max_experiments=env.max_experiments,
                    max_submissions=env.max_submissions)
    workspace = Path(env.workspace or os.getcwd())
    with LabClient() as client:
        researcher = SearchResearcher(
            kit, client, workspace, direction=env.direction,
            direction_methods=list(env.direction_methods), budget=budget, seed=env.seed,
            suite=suite,
        )
        researcher.run()
    print(f"done: {researcher.experiments} experiments, {researcher.submissions} submissions "
          f"at {time.strftime('%H:%M:%S')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
