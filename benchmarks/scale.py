"""The nightly path at N customers: per-stage wall time, events/s and peak memory, each stage the `lam`
command a scheduler would run, in a process of its own.

Run:
    python benchmarks/scale.py --customers 10000 100000 [--out scale.jsonl] [--plot docs/scale.png]
        [--stages simulate ingest]  (the first stages only)
    (with LAM_REDIS and LAM_REGISTRY_URL set, materialize writes to Redis through the production profile;
    without them, to SQLite)
Stages: simulate (the source system), ingest, materialize (snapshot + Feast online write), pretrain (one
epoch), fine-tune (one epoch of the campaign-response head), score (Ray Data batch scoring with two actors,
`python -m lam_platform.ray_jobs.score`: the call list, each customer's best campaign written back into
`lam_scores`). The job YAML is `demo.yaml` with one epoch per stage and one sample per customer.

Peak memory is sampled every 0.2 s over the stage's process and every process it starts (Ray's GCS,
raylet and workers included): "largest process" is the biggest single resident set seen, "all processes"
the largest sum at one instant (shared pages, such as Ray's object store, count in each process that maps
them, so the sum overstates). `--out` appends one JSON line per stage; `--plot` draws wall time per stage
against customers (log-log: a stage that grows linearly has slope 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pyarrow.dataset as ds
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online_read import production_profile  # noqa: E402

from lam_platform.core.packaged import job_config_path  # noqa: E402
from lam_platform.core.workdir import Workdir  # noqa: E402
from lam_platform.orchestration.demo import world_clock  # noqa: E402

STAGES = ("simulate", "ingest", "materialize", "pretrain", "finetune", "score")
PSEUDONYM_KEY = "scale-benchmark-key-0123456789abcdef"  # a fixed key: the benchmark's ids are nobody's


class PeakMemory:
    """Samples the resident memory of a process tree until stopped."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.root, self.every = psutil.Process(pid), every
        self.largest = self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes = []
            for process in processes:
                try:
                    sizes.append(process.memory_info().rss)
                except psutil.NoSuchProcess:
                    continue
            self.largest, self.total = max(self.largest, max(sizes, default=0)), max(self.total, sum(sizes))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_stage(command: list[str], env: dict) -> dict:
    """Run one `lam` command; its wall time and peak memory (GiB). A failing stage stops the benchmark."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = PeakMemory(process.pid)
    output, _ = process.communicate()
    memory.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:3])} failed ({process.returncode}):\n{output[-3000:]}")
    return {
        "wall_s": time.perf_counter() - started,
        "largest_process_gib": memory.largest / 2**30,
        "all_processes_gib": memory.total / 2**30,
    }


def job_config(folder: Path) -> Path:
    """demo.yaml with one epoch per stage and one training sample per customer."""
    config = yaml.safe_load(job_config_path("demo").read_text())
    config["pretrain"].update(epochs=1, samples_per_customer=1)
    config["finetune"].update(epochs=1)
    path = folder / "scale.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def event_count(workdir: Workdir) -> int:
    return ds.dataset(workdir.events, format="parquet", partitioning="hive").count_rows()


def measure(customers: int, folder: Path, redis: bool, stages: list[str]) -> list[dict]:
    """The named stages at `customers`, in order (each needs the ones before it); one result row per stage."""
    workdir = Workdir.at(folder / f"world-{customers}")
    lam = str(Path(sys.executable).parent / "lam")
    env = {**os.environ, "LAM_PSEUDONYM_KEY": PSEUDONYM_KEY}
    config = job_config(folder)
    common = ["--workdir", str(workdir.root)]
    rows = []

    def stage(name: str, *args: str, command: list[str] | None = None) -> None:
        if name not in stages:
            return
        result = run_stage([*(command or [lam, name]), *common, *args], env)
        rows.append({"customers": customers, "stage": name, **result})
        print(json.dumps(rows[-1]), flush=True)

    stage("simulate", "--customers", str(customers), "--seed", "7")
    as_of = world_clock(workdir).isoformat()
    stage("ingest")
    events = event_count(workdir) if workdir.events.exists() else 0
    profile = ["--profile", str(production_profile(folder)), "--switch-online-store"] if redis else []
    stage("materialize", "--as-of", as_of, *profile)
    stage("pretrain", "--config", str(config), "--as-of", as_of)
    stage("finetune", "--config", str(config), "--as-of", as_of)
    # Batch scoring as the nightly job runs it: Ray Data over the offline snapshot (`lam score` reads every
    # customer from the online store instead, the path for a base that fits one process).
    ray_score = [sys.executable, "-m", "lam_platform.ray_jobs.score"]
    stage("score", "--as-of", as_of, "--actors", "2", command=ray_score)
    for row in rows:
        row["events"] = events
        row["events_per_s"] = events / row["wall_s"]
    if redis:
        from lam_platform.features.store import open_store

        open_store(workdir).teardown()  # the benchmark's Redis keys and registry rows go
    return rows


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for stage, rows in table.groupby("stage", sort=False):
        axis.plot(rows.customers, rows.wall_s, marker="o", label=stage)
    axis.set(xscale="log", yscale="log", xlabel="customers", ylabel="wall time (s)", title="Nightly path, 2 cores")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000])
    parser.add_argument("--out", type=Path, default=None, help="append one JSON line per stage here")
    parser.add_argument("--plot", type=Path, default=None, help="draw wall time per stage against customers")
    parser.add_argument("--keep", type=Path, default=None, help="build the worlds here and keep them")
    parser.add_argument(
        "--stages",
        nargs="+",
        choices=STAGES,
        default=list(STAGES),
        help="run these stages only (each needs the ones before it: give a prefix of the list)",
    )
    args = parser.parse_args()
    redis = bool(os.environ.get("LAM_REDIS") and os.environ.get("LAM_REGISTRY_URL"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for customers in args.customers:
            measured = measure(customers, folder, redis, args.stages)
            rows += measured
            if args.out:
                with args.out.open("a") as out:
                    out.writelines(json.dumps(row) + "\n" for row in measured)
    table = pd.DataFrame(rows)
    print(f"\nnightly path, online store {'redis' if redis else 'sqlite'}, {os.cpu_count()} CPUs")
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    if args.plot:
        plot(table, args.plot)


if __name__ == "__main__":
    main()
