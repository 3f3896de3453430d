"""The demo path end to end at the smallest settings: simulate -> Feast -> Ray Train x2 -> online scores."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from lam_platform.cli.main import main
from lam_platform.core.packaged import job_config_path

TINY_CONFIG = job_config_path("tiny")


@pytest.mark.e2e
def test_lam_demo_runs_every_step_and_prints_its_table(tmp_path):
    workdir = tmp_path / "demo"
    result = CliRunner().invoke(
        main,
        [
            "demo",
            "--workdir",
            str(workdir),
            "--customers",
            "200",
            "--max-len",
            "16",
            "--config",
            str(TINY_CONFIG),
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    for header in [
        "[1/7] simulate",
        "[2/7] ingest",
        "[3/7] feast apply + materialize",
        "[4/7] pretrain",
        "[5/7] fine-tune",
        "[6/7] score",
        "[7/7] summary",
    ]:
        assert header in result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert set(summary["order_rate"]) == {
        "random",
        "legacy_segment",
        "gbt_aggregates",
        "lam",
        "oracle",
        "informed_ceiling",
    }
    assert all(0 <= rate <= 1 for rate in summary["order_rate"].values())
    assert summary["order_rate"]["oracle"] >= max(summary["order_rate"].values())  # nothing beats the truth

    call_list = pd.read_csv(summary["paths"]["call_list_csv"])
    assert len(call_list) == summary["capacity"] == 10
    assert list(call_list["rank"]) == list(range(1, 11)) and call_list.uplift.is_monotonic_decreasing
    profiles = pd.read_parquet(workdir / "feature_repo" / "data" / "customer_profile.parquet")
    consenting = set(profiles.customer_id[profiles.consent_marketing])
    assert set(call_list.customer_id) <= consenting  # never call a customer without consent
    # The export carries the explanation for the person who calls: a reason and the driving events.
    parquet = pd.read_parquet(Path(summary["paths"]["call_list_csv"]).with_suffix(".parquet"))
    for exported in (call_list, parquet):
        assert exported.reason.notna().all() and exported.reason.str.len().gt(0).all()
        assert all(isinstance(json.loads(events), list) for events in exported.driving_events)
    # Downstream services read the scores as ordinary online features.
    from lam_platform.core.workdir import Workdir
    from lam_platform.features.store import open_store

    top = call_list.iloc[0]
    pushed = (
        open_store(Workdir.at(workdir))
        .get_online_features(
            features=["lam_scores:uplift", "lam_scores:best_offer", "lam_scores:model_version"],
            entity_rows=[{"customer_id": top.customer_id}],
        )
        .to_dict()
    )
    assert pushed["best_offer"] == [top.offer] and abs(pushed["uplift"][0] - top.uplift) < 1e-6
    pushed_ids = set(pd.read_parquet(workdir / "feature_repo" / "data" / "lam_scores.parquet").customer_id)
    assert set(call_list.customer_id) <= pushed_ids <= consenting  # every customer the call-list rules allow
    artifact = Path(summary["paths"]["artifact"])
    assert {p.name for p in (artifact / "heads").iterdir()} == {"next_action.pt", "campaign_response.pt"}
    card = json.loads((artifact / "model_card.json").read_text())
    assert card["heads"]["campaign_response"]["compute"]["workers"] == 2
    # Training validated on the newest examples each epoch and wrote a metrics CSV; pretraining kept its best
    # epoch, the fine-tune its last (keep_weights: last, as in demo.yaml).
    for head in ("next_action", "campaign_response"):
        history = card["heads"][head]["history"]
        assert history and all({"train_loss", "val_loss"} <= set(epoch) for epoch in history), history
        assert card["heads"][head]["metrics"]["validation_rows"] >= 2
    assert "kept_epoch" in card["heads"]["campaign_response"]["metrics"]
    assert "kept_epoch" not in card["heads"]["next_action"]["metrics"]
    curves = sorted((workdir / "ray_results").glob("pretrain-*/metrics/version_*/metrics.csv"))
    assert curves and {"epoch", "val_loss", "train_loss"} <= set(pd.read_csv(curves[-1]).columns)

    # lam evaluate: the policy table, metrics of both heads, JSON and an HTML page whose images exist.
    result = CliRunner().invoke(main, ["evaluate", "--workdir", str(workdir), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "informed_ceiling" in result.output and "legacy_segment" in result.output
    evaluation = json.loads(result.output.strip().splitlines()[-1])
    details = json.loads(Path(evaluation["evaluation"]).read_text())
    assert {row["policy"] for row in details["policies"]} >= {
        "random",
        "legacy_segment",
        "gbt_aggregates",
        "gbt_aggregates+lam_state",
        "lam",
    }
    assert 0 <= details["next_action"]["lam"]["ndcg@10"] <= details["next_action"]["lam"]["hr@10"] <= 1
    assert set(details["campaign_response"]) == {"lam", "gbt_aggregates", "gbt_aggregates+lam_state"}
    assert 0 <= details["campaign_response"]["lam"]["auc"] <= 1
    page = Path(evaluation["page"])
    images = re.findall(r'<img src="([^"]+)"', page.read_text())
    assert len(images) == 5 and all((page.parent / image).stat().st_size > 1000 for image in images)
