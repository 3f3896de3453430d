"""Ray Train throughput: training events/s with 1 and 2 CPU workers on the demo's pretraining set.

Run (after `lam demo --workdir ./lam-demo`):
    python benchmarks/training_throughput.py --workdir ./lam-demo [--epochs 2] [--repeats 2] [--workers 1 2]
On a machine with CUDA GPUs, GPU workers (one GPU each, bf16-mixed) with the gpu.yaml model's size:
    python benchmarks/training_throughput.py --workdir ./lam-demo --gpu --config gpu --workers 1
(the model's width, depth, heads and negatives then come from --config, as in benchmarks/gpu_training.py).

Events/s counts the real (unpadded) events in the input sequences of the whole set (the newest 10% that
the workers only validate on included), over the wall time of `TorchTrainer.fit` (worker start-up and Ray
Data streaming included). Median of the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lam_platform.campaigns.training_shards import read_training_shards
from lam_platform.core.packaged import job_config_path
from lam_platform.core.workdir import Workdir
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version
from lam_platform.ray_jobs.job_config import JobConfig
from lam_platform.ray_jobs.training import fit_with_ray

sys.path.insert(0, str(Path(__file__).parent))
from gpu_training import sized  # noqa: E402

DEFAULT_CONFIG = job_config_path("demo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="./lam-demo")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument("--gpu", action="store_true", help="GPU workers (one GPU each), the model sized by --config")
    args = parser.parse_args()
    workdir = Workdir.at(args.workdir)
    job = JobConfig.load(args.config)
    config = ModelArtifact(latest_version(workdir.artifacts)).with_head("next_action").config
    if args.gpu:
        config = sized(config, job)
    data = workdir.training / "pretrain"
    events = int(read_training_shards(data)["mask"].sum())
    stage = job.pretrain.model_copy(update={"epochs": args.epochs, "checkpoint_every_n_steps": 10**9})
    print(f"{events:,} input events per epoch, {args.epochs} epochs, median of {args.repeats}")
    rates = {}
    with tempfile.TemporaryDirectory() as storage:
        for workers in args.workers:
            scaling = {"num_workers": workers, "use_gpu": args.gpu}
            scaled = job.model_copy(update={"scaling": job.scaling.model_copy(update=scaling)})
            walls = []
            for r in range(args.repeats):
                started = time.perf_counter()
                fit_with_ray("next_action", data, config, stage, scaled, Path(storage), f"w{workers}-r{r}")
                walls.append(time.perf_counter() - started)
            rates[workers] = events * args.epochs / statistics.median(walls)
            print(
                f"  {workers} worker{'s' if workers > 1 else ''}: {rates[workers]:>10,.0f} events/s "
                f"(fit wall {statistics.median(walls):.1f} s)",
                flush=True,
            )
    if 1 in rates and 2 in rates:
        print(f"  2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
