"""Wall time of `lam demo` and its policy table, as the median over several fresh runs.

Run:  python benchmarks/demo_wall_time.py --runs 3
Each run uses a fresh workdir under a temporary folder and the default demo settings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_demo(workdir: Path) -> tuple[float, dict]:
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "lam_platform.cli.main", "demo", "--workdir", str(workdir), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.time() - started, json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    walls, summaries = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            wall, summary = run_demo(Path(tmp) / f"run{i}")
            walls.append(wall)
            summaries.append(summary)
            print(f"run {i + 1}: {wall:.1f}s  order rates {summary['order_rate']}", flush=True)
    print(
        f"\nlam demo wall time: median {statistics.median(walls):.1f}s over {args.runs} runs "
        f"(min {min(walls):.1f}s, max {max(walls):.1f}s)"
    )
    for policy in summaries[0]["order_rate"]:
        rates = [s["order_rate"][policy] for s in summaries]
        print(
            f"  {policy:<16} order rate median {statistics.median(rates):.3f}"
            f"  (runs: {', '.join(f'{r:.3f}' for r in rates)})"
        )
    print(f"  lam vs legacy: median {statistics.median(s['lam_vs_legacy'] for s in summaries):.2f}x")


if __name__ == "__main__":
    main()
