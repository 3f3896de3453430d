"""The nightly path at N customers: per-stage wall time, events/s and peak memory, each stage the `lam`
command a scheduler would run, in a process of its own.

Run:
    python benchmarks/scale.py --customers 10000 100000 [--out scale.jsonl] [--plot docs/scale.png]
        [--stages simulate ingest]  (the first stages only; later ones alone need --keep with a world built)
    python benchmarks/scale.py --results a.jsonl b.jsonl --plot docs/scale.png  (the table and plot of runs made)
    (with LAM_REDIS and LAM_REGISTRY_URL set, materialize writes to Redis through the production profile;
    without them, to SQLite)
Stages: simulate (the source system), ingest, materialize (snapshot + Feast online write), pretrain (one
epoch), fine-tune (one epoch of the campaign-response head), score (Ray Data batch scoring with two actors,
`python -m lam_platform.ray_jobs.score`: the call list, each customer's best campaign written back into
`lam_scores`). The job YAML is `demo.yaml` with one epoch per stage and one sample per customer.

Peak memory is sampled every 0.2 s over the stage's process and every process it starts (Ray's GCS,
raylet and workers included): "largest process" is the biggest single resident set seen, "all processes"
the largest sum at one instant (shared pages, such as Ray's object store, count in each process that maps
them, so the sum overstates). `--out` appends one JSON line per stage as it ends; `--plot` draws wall time per stage
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


def measure(customers: int, folder: Path, redis: bool, stages: list[str], out: Path | None) -> list[dict]:
    """The named stages at `customers`, in order (each needs the ones before it); one result row per stage,
    appended to `out` as it ends (a run that fails late keeps its earlier stages)."""
    workdir = Workdir.at(folder / f"world-{customers}")
    lam = str(Path(sys.executable).parent / "lam")
    env = {**os.environ, "LAM_PSEUDONYM_KEY": PSEUDONYM_KEY}
    config = job_config(folder)
    common = ["--workdir", str(workdir.root)]
    rows: list[dict] = []

    def stage(name: str, *args: str, command: list[str] | None = None) -> None:
        if name not in stages:
            return
        result = run_stage([*(command or [lam, name]), *common, *args], env)
        row = {"customers": customers, "stage": name, **result}
        if name != "simulate" and workdir.events.exists():  # the simulator writes raw files: counted after ingest
            row["events"] = event_count(workdir)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if out:
            with out.open("a") as file:
                file.write(json.dumps(row) + "\n")

    stage("simulate", "--customers", str(customers), "--seed", "7")
    as_of = world_clock(workdir).isoformat()
    stage("ingest")
    profile = ["--profile", str(production_profile(folder)), "--switch-online-store"] if redis else []
    stage("materialize", "--as-of", as_of, *profile)
    stage("pretrain", "--config", str(config), "--as-of", as_of)
    stage("finetune", "--config", str(config), "--as-of", as_of)
    # Batch scoring as the nightly job runs it: Ray Data over the offline snapshot (`lam score` reads every
    # customer from the online store instead, the path for a base that fits one process).
    ray_score = [sys.executable, "-m", "lam_platform.ray_jobs.score"]
    stage("score", "--as-of", as_of, "--actors", "2", command=ray_score)
    if redis:
        from lam_platform.features.store import open_store

        open_store(workdir).teardown()  # the benchmark's Redis keys and registry rows go
    return rows


def with_event_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Each row's events (a simulate row takes those its world's other rows counted) and events per second."""
    if "events" not in table:
        table = table.assign(events=float("nan"))
    counted = table.dropna(subset=["events"]).groupby("customers").events.last()
    table = table.assign(events=table.events.fillna(table.customers.map(counted)))
    return table.assign(events_per_s=table.events / table.wall_s)


def plot(table: pd.DataFrame, path: Path) -> None:
    """Wall time (log-log, with a slope-1 guide: linear growth runs parallel to it) and largest process per
    stage against customers, the 8 GiB target drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (times, memory) = plt.subplots(1, 2, figsize=(11, 4))
    for stage, rows in table.groupby("stage", sort=False):
        times.plot(rows.customers, rows.wall_s, marker="o", label=stage)
        memory.plot(rows.customers, rows.largest_process_gib, marker="o", label=stage)
    low, high = table.customers.min(), table.customers.max()
    start = table[table.customers == low].wall_s.median()
    times.plot([low, high], [start, start * high / low], "k--", linewidth=0.8, label="linear")
    times.set(xscale="log", yscale="log", xlabel="customers", ylabel="wall time (s)", title="Nightly path, 2 cores")
    memory.axhline(8, color="red", linestyle=":", linewidth=1, label="8 GiB target")
    memory.set(xscale="log", xlabel="customers", ylabel="largest process (GiB)", title="Peak memory per stage")
    times.legend(fontsize=8)
    memory.legend(fontsize=8)
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
        help="run these stages only (each needs the ones before it: a prefix of the list, or, with --keep, "
        "the later stages on a world an earlier run built there)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        nargs="+",
        default=None,
        help="measure nothing: print the table (and --plot) of these --out files, the last line per "
        "(customers, stage) winning",
    )
    args = parser.parse_args()
    if args.results:
        lines = [json.loads(line) for path in args.results for line in path.read_text().splitlines() if line.strip()]
        table = with_event_rates(pd.DataFrame(lines).drop_duplicates(["customers", "stage"], keep="last"))
        table["order"] = table.stage.map(STAGES.index)
        table = table.sort_values(["order", "customers"]).drop(columns="order")
        columns = ["customers", "stage", "wall_s", "largest_process_gib", "all_processes_gib", "events_per_s"]
        print(table[columns + [c for c in ("commit",) if c in table]].to_string(index=False))
    else:
        redis = bool(os.environ.get("LAM_REDIS") and os.environ.get("LAM_REGISTRY_URL"))
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            folder = args.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            for customers in args.customers:
                rows += measure(customers, folder, redis, args.stages, args.out)
        table = with_event_rates(pd.DataFrame(rows))
        print(f"\nnightly path, online store {'redis' if redis else 'sqlite'}, {os.cpu_count()} CPUs")
        print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    if args.plot:
        plot(table, args.plot)


if __name__ == "__main__":
    main()
