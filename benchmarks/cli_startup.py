"""How long `lam <command> --help` takes, next to the bare interpreter start it cannot beat.

Run:  python benchmarks/cli_startup.py [--repeats 7]
Each figure is the median wall time of `--repeats` fresh processes, measured in one run side by side
with `python -c pass` (the floor) and `python -c "import lam_platform.cli.main"` (the CLI module alone).
The goal (issue: installable, quiet and legible) is under 1 s for every command's --help.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 1.0


def _median_seconds(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    lam = shutil.which("lam") or str(Path(sys.executable).with_name("lam"))
    from lam_platform.cli.main import main as group

    floor = _median_seconds([sys.executable, "-c", "pass"], args.repeats)
    rows = [
        ("python -c pass (floor)", floor),
        (
            "import lam_platform.cli.main",
            _median_seconds([sys.executable, "-c", "import lam_platform.cli.main"], args.repeats),
        ),
        ("lam --help", _median_seconds([lam, "--help"], args.repeats)),
    ]
    rows += [
        (f"lam {name} --help", _median_seconds([lam, name, "--help"], args.repeats)) for name in sorted(group.commands)
    ]
    print(f"{'command':32s} {'median s':>9s} {'x floor':>8s}")
    for name, seconds in rows:
        print(f"{name:32s} {seconds:9.3f} {seconds / floor:7.1f}x")
    worst = max(seconds for name, seconds in rows[2:])
    print(f"slowest --help: {worst:.3f} s (goal < {GOAL_S:.0f} s: {'met' if worst < GOAL_S else 'MISSED'})")


if __name__ == "__main__":
    main()
