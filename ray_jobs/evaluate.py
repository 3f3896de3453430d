"""Evaluate a model on the held-out period (next action, campaign response, uplift, policy table).

Run:  python -m ray_jobs.evaluate --workdir ./lam-demo [--capacity 150] [--seed 0]
On a cluster:  ray job submit --working-dir . -- python -m ray_jobs.evaluate --workdir <shared path>
The same as `lam evaluate`: needs scores (`lam score` or `python -m ray_jobs.score`) and writes
outputs/evaluation/ (evaluation.json, index.html and its PNG plots).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lam_platform.simulation.evaluation_report import evaluate
from lam_platform.workdir import Workdir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="./lam-demo", help="platform working directory (default ./lam-demo)")
    parser.add_argument("--capacity", type=int, default=None, help="calls per policy list (default 5%% of customers)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out trial and the random policy")
    parser.add_argument("--artifact", type=Path, default=None, help="artifact folder (default: the latest)")
    parser.add_argument("--exclude-seen", action="store_true", help="rank next objects without seen ones")
    args = parser.parse_args(argv)
    print(json.dumps(evaluate(Workdir.at(args.workdir), args.artifact, args.capacity, args.seed, args.exclude_seen)))


if __name__ == "__main__":
    main()
