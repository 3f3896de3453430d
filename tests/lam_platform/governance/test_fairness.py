"""The fairness report flags a biased selection and a miscalibrated group, and leaves a fair one alone."""

import numpy as np
import pandas as pd
import pytest

from lam_platform.governance.fairness import FairnessSettings, fairness_report
from lam_platform.simulation.policies import legacy_priority, random_policy
from lam_platform.simulation.world import load_ground_truth, load_world_config


def _eligible(world) -> pd.DataFrame:
    profiles = pd.read_parquet(world.profiles)
    return profiles[profiles.consent_marketing.astype(bool)].reset_index(drop=True)


def _selected(world, customers: np.ndarray, offer: str = "plan_change") -> pd.DataFrame:
    config, truth = load_world_config(world), load_ground_truth(world)
    p_called, _ = truth.order_probability(
        customers, np.full(len(customers), offer), np.full(len(customers), "sms"), config.scoring_time
    )
    return pd.DataFrame({"customer_id": customers, "predicted": p_called, "observed": p_called})


def test_a_legacy_rule_biased_against_women_is_flagged_by_the_four_fifths_rule(tiny_world):
    eligible = _eligible(tiny_world)
    # The legacy segment rule with a bias injected: men first.
    priority = legacy_priority(eligible, 0.0) + 1.0 * (eligible.gender == "m").to_numpy()
    chosen = eligible.customer_id.to_numpy()[np.argsort(-priority, kind="stable")[:60]]
    report = fairness_report(eligible, _selected(tiny_world, chosen))
    gender = {g["group"]: g for g in report["attributes"]["gender"]}
    assert gender["f"]["four_fifths_flag"] and not gender["m"]["four_fifths_flag"]
    assert gender["f"]["ratio_to_best"] < 0.8
    assert {"attribute": "gender", "group": "f", "kind": "four_fifths"} in [
        {k: f[k] for k in ("attribute", "group", "kind")} for f in report["flags"]
    ]
    # Calibration is perfect here (predicted = observed): no calibration flag.
    assert not any(f["kind"] == "calibration" for f in report["flags"])


def test_a_random_list_is_not_flagged_for_gender(tiny_world):
    eligible = _eligible(tiny_world)
    chosen = random_policy(eligible, 90, np.random.default_rng(0)).customer_id.to_numpy()
    report = fairness_report(eligible, _selected(tiny_world, chosen))
    assert not any(f["attribute"] == "gender" for f in report["flags"])
    rates = [g["selection_rate"] for g in report["attributes"]["gender"]]
    assert min(rates) / max(rates) >= 0.8


def test_a_group_whose_predictions_run_high_is_flagged_for_calibration(tiny_world):
    eligible = _eligible(tiny_world)
    chosen = random_policy(eligible, 120, np.random.default_rng(1)).customer_id.to_numpy()
    selected = _selected(tiny_world, chosen)
    women = selected.customer_id.isin(eligible.customer_id[eligible.gender == "f"])
    selected.loc[women, "predicted"] += 0.2  # the model over-promises for one group
    report = fairness_report(eligible, selected, FairnessSettings(calibration_margin=0.05))
    flagged = {(f["attribute"], f["group"]) for f in report["flags"] if f["kind"] == "calibration"}
    assert ("gender", "f") in flagged and ("gender", "m") in flagged  # both drift from the list's mean gap
    assert report["overall_calibration_gap"] == pytest.approx(0.2 * women.mean())


def test_bad_input_names_the_problem(tiny_world):
    eligible = _eligible(tiny_world)
    with pytest.raises(ValueError, match="not in the eligible base"):
        fairness_report(eligible, pd.DataFrame({"customer_id": ["nobody"], "predicted": [0.1]}))
    with pytest.raises(ValueError, match="lacks \\['gender'\\]"):
        fairness_report(eligible.drop(columns="gender"), pd.DataFrame({"customer_id": [], "predicted": []}))


def test_a_listed_customer_who_withdrew_since_scoring_leaves_the_report_instead_of_failing_it(tmp_path):
    from lam_platform.core.workdir import Workdir
    from lam_platform.governance.fairness import call_list_fairness

    workdir = Workdir.at(tmp_path)
    workdir.profiles.parent.mkdir(parents=True)
    ids = [f"{k:032x}" for k in range(40)]
    start = pd.Timestamp("2026-01-01", tz="UTC")
    ledger = pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": start,
            "consent_marketing": True,
            "age_band": ["18-29", "30-44"] * 20,
            "gender": ["f", "m"] * 20,
        }
    )
    withdrawal = ledger.iloc[[0]].assign(consent_marketing=False, event_timestamp=start + pd.Timedelta(days=30))
    pd.concat([ledger, withdrawal]).to_parquet(workdir.profiles, index=False)
    workdir.outputs.mkdir(parents=True)
    pd.DataFrame({"customer_id": ids[:5], "p_order_if_called": 0.2}).to_parquet(workdir.outputs / "call_list.parquet")
    report = call_list_fairness(workdir)
    assert report["left_since_listed"] == 1 and report["selected"] == 4 and report["eligible"] == 39
