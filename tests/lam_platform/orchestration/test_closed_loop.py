"""Plan, do, check, act: outcomes of called lists update the campaign head, round after round."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from lam_platform.core.workdir import Workdir
from lam_platform.evaluation.report import _loop_section
from lam_platform.lightning_modules.artifact import ModelArtifact
from lam_platform.orchestration.closed_loop import close_loop, read_outcomes
from lam_platform.orchestration.simulated_loop import simulate_rounds
from lam_platform.ray_jobs.job_config import JobConfig
from lam_platform.service.model import servable_versions
from tests.conftest import TINY_JOB


def _copy(world: Workdir, to) -> Workdir:
    shutil.copytree(world.root, to, ignore=shutil.ignore_patterns("ray_results", "training", "outputs"))
    return Workdir.at(to)


def test_bad_outcome_rows_are_quarantined_with_a_reason_and_good_ones_kept(tmp_path):
    from tests.conftest import pseudonym

    workdir = Workdir.at(tmp_path)
    c1, c2, c4, c5 = (pseudonym(c) for c in ("c1", "c2", "c4", "c5"))
    rows = pd.DataFrame(
        {
            "customer_id": [c1, c2, "", c4, c5, c1],
            "event_timestamp": [
                "2026-06-05T10:00:00Z",
                "2026-06-05T10:00:00Z",
                "2026-06-05T10:00:00Z",
                "not a time",
                "2026-06-05T10:00:00Z",
                "2026-06-05T10:00:00Z",
            ],
            "campaign_id": ["k"] * 6,
            "offer": ["plan_change", "free_lunch", "plan_change", "plan_change", "plan_change", "plan_change"],
            "method": ["sms"] * 6,
            "treatment": [1, 1, 1, 1, 2, 0],
            "outcome": [0, 1, 0, 1, 0, 1],
        }
    )
    path = tmp_path / "outcomes.csv"
    rows.to_csv(path, index=False)
    good, bad = read_outcomes(workdir, path, ["plan_change"], ["sms"])
    assert good.customer_id.tolist() == [c1] and bad == 5
    [quarantine] = list(workdir.quarantine.glob("outcomes-*.parquet"))
    reasons = pd.read_parquet(quarantine).fillna({"customer_id": ""}).set_index("customer_id").reason
    assert reasons[c2].startswith("offer") and reasons[c4].startswith("event_timestamp")
    assert reasons[c5].startswith("treatment") and "second row" in reasons[c1] and "empty" in reasons[""]
    with pytest.raises(ValueError, match=r"missing columns \['outcome'\]"):
        rows.drop(columns="outcome").to_csv(path, index=False)
        read_outcomes(workdir, path, ["plan_change"], ["sms"])


def test_a_re_identified_export_is_taken_by_its_pseudonym_and_raw_ids_are_refused(tmp_path):
    from tests.conftest import pseudonym

    workdir = Workdir.at(tmp_path)
    annotated = pd.DataFrame(
        {
            "rank": [1],
            "raw_customer_id": ["CUST-000007"],
            "phone": ["+81 3 0000 0007"],
            "customer_ref": [pseudonym("CUST-000007")],
            "event_timestamp": ["2026-06-05T10:00:00Z"],
            "campaign_id": ["k"],
            "offer": ["plan_change"],
            "method": ["sms"],
            "treatment": [1],
            "outcome": [1],
        }
    )
    annotated.to_csv(tmp_path / "calls.csv", index=False)
    good, bad = read_outcomes(workdir, tmp_path / "calls.csv", ["plan_change"], ["sms"])
    assert good.customer_id.tolist() == [pseudonym("CUST-000007")] and "raw_customer_id" not in good and bad == 0
    annotated.drop(columns="customer_ref").rename(columns={"raw_customer_id": "customer_id"}).to_csv(
        tmp_path / "raw.csv", index=False
    )
    with pytest.raises(ValueError, match="not pseudonyms"):
        read_outcomes(workdir, tmp_path / "raw.csv", ["plan_change"], ["sms"])
    assert not workdir.quarantine.exists()  # no copy of a raw id was kept


def test_outcomes_of_an_erased_customer_are_neither_logged_nor_quarantined(tmp_path):
    from lam_platform.data.suppression import record_erased
    from tests.conftest import pseudonym

    workdir = Workdir.at(tmp_path)
    record_erased(workdir, [pseudonym("c1")])
    rows = pd.DataFrame(
        {
            "customer_id": [pseudonym("c1"), pseudonym("c1"), pseudonym("c2")],
            "event_timestamp": ["2026-06-05T10:00:00Z", "not a time", "2026-06-05T10:00:00Z"],
            "campaign_id": ["k"] * 3,
            "offer": ["plan_change"] * 3,
            "method": ["sms"] * 3,
            "treatment": [1, 1, 0],
            "outcome": [1, 0, 0],
        }
    )
    rows.to_csv(tmp_path / "outcomes.csv", index=False)
    good, bad = read_outcomes(workdir, tmp_path / "outcomes.csv", ["plan_change"], ["sms"])
    assert good.customer_id.tolist() == [pseudonym("c2")] and bad == 0


@pytest.mark.e2e
@pytest.mark.drill
def test_three_rounds_of_call_outcome_update_each_use_the_newest_head(trained_world, tmp_path):
    world = _copy(trained_world, tmp_path / "world")
    log_before = len(pd.read_parquet(world.campaign_log))
    table = simulate_rounds(world, JobConfig.load(TINY_JOB), rounds=3, capacity=20, seed=1)
    assert table["round"].tolist() == [1, 2, 3]
    # Each round's list came from the version the previous round's outcomes produced.
    assert table.model_version.tolist()[1:] == table.updated_to.tolist()[:-1]
    assert servable_versions(world.artifacts)[-1].name == table.updated_to.iloc[-1]
    assert (table.called + table.held_out == 20).all() and table.order_rate_called.between(0, 1).all()
    for row in table.itertuples():
        card = ModelArtifact(world.artifacts / row.updated_to).card
        head = card["heads"]["campaign_response"]
        assert head["updated_from"] == row.model_version and head["rows"] == 20
        assert {"auc", "log_loss", "observed_rate"} <= set(head["before"]) <= set(head["after_in_sample"])
        assert ModelArtifact(world.artifacts / row.updated_to).with_head("next_action").card["heads"]["next_action"]
    log = pd.read_parquet(world.campaign_log)
    assert len(log) == log_before + 60 and set(log.campaign_id) >= {"loop-1", "loop-2", "loop-3"}
    rounds = json.loads((world.outputs / "closed_loop" / "rounds.json").read_text())
    assert [r["round"] for r in rounds] == [1, 2, 3]
    section = _loop_section(rounds)  # what `lam report` shows: the order rate of each round
    assert "Closed loop: order rate per round" in section
    assert all(f"{r['order_rate_called']:.3f}" in section for r in rounds)
    # The same outcome file again adds nothing to the log (its rows are already there).
    again = close_loop(world, world.outputs / "closed_loop" / "round-1.parquet", JobConfig.load(TINY_JOB))
    assert again["new_in_log"] == 0
