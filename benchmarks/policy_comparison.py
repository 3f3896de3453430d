"""The headline: order rate of the LAM's top-K call list vs random, legacy, LightGBM and the oracle, over worlds.

Run:  python benchmarks/policy_comparison.py --seeds 7 8 9 [--config demo] [--customers 3000]

For each seed: a fresh world (`lam demo --seed S`: simulate the raw sources, ingest, materialize, pretrain
and fine-tune with Ray, score from the Feast online store, all at the world's clock), then `lam evaluate`
(the ground-truth evaluation of a simulated world). Prints each world's table and the medians of the
ratios the issue sets goals for: LAM >= 2.0x legacy, >= 1.25x LightGBM, >= 85% of the oracle; and, as
information, LightGBM given the LAM's pretrained customer state beside its aggregates (stacking).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from lam_platform.simulation.evaluation import STACKED


def lam(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "lam_platform.cli.main", *args, "--json"], check=True, capture_output=True, text=True
    )
    # The JSON object is the command's last line of its own; Ray may print a worker line after it at exit.
    for line in reversed(out.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"`lam {args[0]}` printed no JSON result:\n{out.stdout[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--config", type=Path, default=None, help="job YAML (default: the demo's)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the worlds in this folder (default: a temp one)")
    args = parser.parse_args()
    tables = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        for seed in args.seeds:
            workdir = str(Path(tmp) / f"seed{seed}")
            config = ["--config", str(args.config)] if args.config else []
            lam("demo", "--workdir", workdir, "--seed", str(seed), "--customers", str(args.customers), *config)
            result = lam("evaluate", "--workdir", workdir)
            details = json.loads(Path(result["evaluation"]).read_text())
            table = pd.DataFrame(details["policies"]).assign(seed=seed)
            tables.append(table)
            print(
                f"seed {seed}: LAM {result['lam_vs_legacy']:.2f}x legacy, {result['lam_vs_gbt']:.2f}x LightGBM, "
                f"{result['lam_of_oracle']:.0%} of oracle; next-action NDCG@10 {result['ndcg@10']:.3f}; "
                f"response AUC {result['auc']:.3f}",
                flush=True,
            )
    both = pd.concat(tables, ignore_index=True)
    print("\norder rate of the top-5% list, per world:")
    print(both.pivot(index="policy", columns="seed", values="order_rate").round(3).to_string())
    lam_rows = both[both.policy == "lam"]
    print(
        f"\nmedians over {len(args.seeds)} worlds: LAM {statistics.median(lam_rows.vs_legacy):.2f}x legacy "
        f"(goal 2.0x), {statistics.median(lam_rows.vs_gbt):.2f}x LightGBM (goal 1.25x), "
        f"{statistics.median(lam_rows.of_oracle):.0%} of oracle (goal 85%); "
        f"informed ceiling {statistics.median(both[both.policy == 'informed_ceiling'].of_oracle):.0%} of oracle"
    )
    stacked = both[both.policy == STACKED]
    print(
        f"stacking (information, not a goal): LightGBM on aggregates + the LAM's pretrained customer state "
        f"{statistics.median(stacked.vs_gbt):.2f}x LightGBM on aggregates alone"
    )


if __name__ == "__main__":
    main()
