"""Bring your own data: the whole Online Retail II year through the platform, evaluated at two as-of times.

Run:  python benchmarks/own_data.py [--as-of 2010-10-01T00:00:00+00:00 2010-11-01T00:00:00+00:00]
                                    [--config demo] [--every 1]

For each as-of time T, in one fresh workdir (the real event log, `consent: analysis_only`): ingest,
materialize at T, pretrain at T, fine-tune the `purchase_30d` head at T, then `lam evaluate --as-of T`:
the LAM's head against LightGBM on aggregates and the recency rule on what happened in the 30 days
after T, and next-item HR@10 / NDCG@10 against popularity. Prints one table row per (T, model), the
wall time of each step, and the JSON summary last. `--every k` keeps every k-th customer (a faster
smoke run); the README's figures are from the whole file (k = 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from lam_platform.core.packaged import job_config_path  # noqa: E402
from lam_platform.core.workdir import Workdir  # noqa: E402
from lam_platform.data.clock import as_of as parse_as_of  # noqa: E402
from lam_platform.data.pseudonyms import Pseudonymizer  # noqa: E402
from lam_platform.data.targets import CutoffGrid  # noqa: E402
from lam_platform.evaluation.holdout import evaluate_holdout  # noqa: E402
from lam_platform.orchestration.pipeline import finetune_step, ingest_step, materialize_step, pretrain_step  # noqa: E402
from lam_platform.ray_jobs.job_config import JobConfig  # noqa: E402

RETAIL = PROJECT.parent / "shared" / "data" / "online_retail_ii" / "online_retail_ii_2009_2010.parquet"
EXAMPLE_CONFIG = PROJECT / "infra" / "examples" / "online_retail_ii.yaml"  # the README's lam.yaml


def run_at(as_of: pd.Timestamp, source: Path, job: Path, folder: Path, pseudonymizer: Pseudonymizer) -> dict:
    workdir = Workdir.at(folder / as_of.strftime("asof-%Y%m%d"))
    workdir.root.mkdir(parents=True)
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["events"]["channels"]["shop"]["files"] = [str(source)]
    workdir.config.write_text(yaml.safe_dump(config))
    seconds = {}
    for name, step in (
        ("ingest", lambda: ingest_step(workdir, pseudonymizer)),
        ("materialize", lambda: materialize_step(workdir, as_of=as_of)),
        ("pretrain", lambda: pretrain_step(workdir, job, as_of)),
        ("finetune", lambda: finetune_step(workdir, job, as_of=as_of, target="purchase_30d")),
        ("evaluate", lambda: evaluate_holdout(workdir, as_of, CutoffGrid.from_dict(JobConfig.load(job).target))),
    ):
        started = time.perf_counter()
        result = step()
        seconds[name] = round(time.perf_counter() - started, 1)
        print(f"  {as_of.date()} {name}: {seconds[name]}s", flush=True)
    return {**result, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as-of", nargs="+", default=["2010-10-01T00:00:00+00:00", "2010-11-01T00:00:00+00:00"])
    parser.add_argument("--config", type=Path, default=job_config_path("demo"))
    parser.add_argument("--every", type=int, default=1, help="keep every k-th customer (1 = the whole file)")
    args = parser.parse_args()
    pseudonymizer = Pseudonymizer.ephemeral()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        source = RETAIL
        if args.every > 1:
            frame = pd.read_parquet(RETAIL)
            kept = sorted(frame["Customer ID"].dropna().unique())[:: args.every]
            source = Path(tmp) / "retail.parquet"
            frame[frame["Customer ID"].isin(kept)].to_parquet(source, index=False)
        for text in args.as_of:
            results.append(run_at(parse_as_of(text), source, args.config, Path(tmp), pseudonymizer))
    print(f"\n{'as of':<12}{'model':<22}{'AUC':>7}{'top-10% precision':>19}{'calibration error':>19}")
    for result in results:
        (target,) = result["targets"]
        for model, scores in target["models"].items():
            print(
                f"{target['as_of'][:10]:<12}{model:<22}{scores['auc']:>7.3f}{scores['top_decile_precision']:>19.3f}"
                f"{scores.get('calibration_error', float('nan')):>19.3f}"
            )
        item = result["next_item"]
        print(
            f"{target['as_of'][:10]:<12}{'next item (LAM)':<22} HR@10 {item['lam']['hr@10']:.3f}  NDCG@10 "
            f"{item['lam']['ndcg@10']:.3f}  (popularity HR@10 {item['popularity']['hr@10']:.3f}; "
            f"{item['customers']:,} customers with a later event)"
        )
        print(
            f"{'':<12}{target['target']}: {target['customers']:,} customers with an event before the as-of time, "
            f"base rate {target['base_rate']:.3f}"
        )
    print(
        json.dumps(
            [
                {"as_of": r["as_of"], "targets": r["targets"], "next_item": r["next_item"], "seconds": r["seconds"]}
                for r in results
            ],
            default=str,
        )
    )


if __name__ == "__main__":
    main()
