"""Evaluate models at --as-of T on what happened after T (the same as `lam evaluate --as-of T`).

Run:  python -m lam_platform.ray_jobs.evaluate --workdir ./lam-demo --as-of T [--config demo]
On a cluster:  ray job submit -- python -m lam_platform.ray_jobs.evaluate --workdir <shared path> --as-of T
Per target of lam.yaml: the LAM against LightGBM on aggregates and a recency rule; next-item HR/NDCG.
Writes outputs/evaluation/holdout-<T>.json and prints it as one JSON line.
"""

from __future__ import annotations

import argparse
import json

from lam_platform.core.workdir import Workdir
from lam_platform.data.clock import as_of as parse_as_of
from lam_platform.data.targets import CutoffGrid
from lam_platform.evaluation.holdout import evaluate_holdout
from lam_platform.ray_jobs.job_config import JobConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="./lam-demo", help="platform working directory (default ./lam-demo)")
    parser.add_argument("--as-of", required=True, help="evaluation time T, with zone")
    parser.add_argument("--config", default=None, help="job YAML whose `target` grid the baseline trains on")
    parser.add_argument("--seed", type=int, default=0, help="seed of the LightGBM baseline")
    parser.add_argument("--exclude-seen", action="store_true", help="rank next objects without seen ones")
    args = parser.parse_args(argv)
    grid = CutoffGrid.from_dict(JobConfig.load(args.config).target if args.config else None)
    print(
        json.dumps(
            evaluate_holdout(
                Workdir.at(args.workdir), parse_as_of(args.as_of), grid, None, args.seed, args.exclude_seen
            ),
            default=str,
        )
    )


if __name__ == "__main__":
    main()
