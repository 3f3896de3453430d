"""Batch scoring with Ray Data over the offline snapshot gives the same scores as online scoring."""

import pandas as pd
import pytest

from lam_platform.campaigns.scoring import score
from lam_platform.orchestration.demo import world_clock
from lam_platform.ray_jobs import score as batch_score


@pytest.mark.e2e
def test_ray_data_batch_scores_equal_online_scores(trained_world):
    tiny_world = trained_world
    online = score(tiny_world, world_clock(tiny_world))
    online_scores = pd.read_parquet(tiny_world.outputs / "scores.parquet")
    result = batch_score.run(tiny_world, world_clock(tiny_world), actors=2, batch_size=64)
    batch_scores = pd.read_parquet(tiny_world.outputs / "scores.parquet")
    assert result["scored"] == online["scored"] and result["actors"] == 2
    keys = ["customer_id", "offer", "method"]
    joined = online_scores.merge(batch_scores, on=keys, suffixes=("_online", "_batch"), validate="one_to_one")
    assert len(joined) == len(online_scores) == len(batch_scores)
    for column in ("p_order_if_called", "p_order_if_not_called", "uplift"):
        assert (joined[f"{column}_online"] - joined[f"{column}_batch"]).abs().max() < 1e-5, column
    profiles = pd.read_parquet(tiny_world.profiles)
    consenting = set(profiles.customer_id[profiles.consent_marketing.astype(bool)])
    # Both apply the call-list rules of lam.yaml (consent, cool-down, already converted) to the same customers.
    assert set(batch_scores.customer_id) == set(online_scores.customer_id) < consenting
