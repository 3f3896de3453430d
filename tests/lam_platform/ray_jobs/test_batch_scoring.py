"""Batch scoring with Ray Data over the offline snapshot gives the same scores as online scoring, and its
per-batch scorer (`SnapshotScorer`) the same as `CampaignScorer` over the same rows."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lam_platform.campaigns.call_list import call_exclusions, next_contact_time
from lam_platform.campaigns.scorer import CampaignScorer
from lam_platform.campaigns.scoring import score
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.features.store import snapshot_path
from lam_platform.governance.consent import read_profiles
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version
from lam_platform.orchestration.demo import world_clock
from lam_platform.ray_jobs import score as batch_score
from lam_platform.ray_jobs.score import SnapshotScorer, score_with_ray_data, snapshot_columns
from lam_platform.ray_jobs.training import ensure_ray

SCORE_VALUES = ("p_order_if_called", "p_order_if_not_called", "uplift")
KEYS = ["customer_id", "offer", "method"]


def _setting(world) -> dict:
    """What both scorers of a world need: its snapshot, artifact, profiles, rules and contact time."""
    as_of = world_clock(world)
    platform = PlatformConfig.load(world.root)
    catalogue = platform.require_catalogue()
    return {
        "sequences": snapshot_path(world.sequences, as_of),
        "artifact": ModelArtifact(latest_version(world.artifacts, "campaign_response")),
        "platform": platform,
        "as_of": as_of,
        "contact_time": next_contact_time(as_of, catalogue.contact_slots[0]),
    }


def _snapshot_scorer(world, s: dict) -> SnapshotScorer:
    catalogue = s["platform"].require_catalogue()
    return SnapshotScorer(
        str(s["artifact"].path),
        str(world.profiles),
        s["contact_time"],
        s["as_of"],
        catalogue.campaigns,
        s["platform"].call_list.model_dump(),
    )


def _assert_same_scores(expected: pd.DataFrame, actual: pd.DataFrame, tolerance: float) -> None:
    joined = expected.merge(actual, on=KEYS, suffixes=("_expected", "_actual"), validate="one_to_one")
    assert len(joined) == len(expected) == len(actual)
    assert (joined.contact_time_expected == joined.contact_time_actual).all()
    for column in SCORE_VALUES:
        assert (joined[f"{column}_expected"] - joined[f"{column}_actual"]).abs().max() <= tolerance, column
    assert actual.dtypes.to_dict() == expected.dtypes.to_dict()


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


@pytest.mark.e2e
def test_snapshot_scorer_equals_campaign_scorer_on_the_same_rows(trained_world):
    s = _setting(trained_world)
    platform, catalogue = s["platform"], s["platform"].require_catalogue()
    # The pandas path: whole snapshot, profiles joined, rules applied, CampaignScorer.score.
    rows = pd.read_parquet(s["sequences"]).join(
        read_profiles(trained_world.profiles).drop(columns="event_timestamp").set_index("customer_id"), on="customer_id"
    )
    excluded = call_exclusions(rows, s["as_of"], platform.call_list).notna().to_numpy()
    allowed = rows[~excluded].reset_index(drop=True)
    expected = CampaignScorer(s["artifact"]).score(allowed, s["contact_time"], catalogue.campaigns, 512)
    scorer = _snapshot_scorer(trained_world, s)
    table = pq.read_table(s["sequences"], columns=snapshot_columns(s["artifact"]))
    # One call over the whole snapshot: the same rows in the same 512-customer model batches, so bit for bit.
    pd.testing.assert_frame_equal(scorer(table), expected)
    # Small batches: other model batches (float sums in another order), the same customers and scores.
    batched = pd.concat([scorer(table.slice(lo, 16)) for lo in range(0, table.num_rows, 16)], ignore_index=True)
    _assert_same_scores(expected, batched, 1e-6)
    # A batch in which no one may be called scores nothing, with the columns and types of any other batch.
    nobody = scorer(table.filter(excluded))
    assert excluded.any() and nobody.empty
    assert nobody.dtypes.to_dict() == expected.dtypes.to_dict()


@pytest.mark.e2e
def test_score_with_ray_data_equals_the_single_process_scores(trained_world, tmp_path):
    s = _setting(trained_world)
    table = pq.read_table(s["sequences"])
    rows = table.to_pandas().join(
        read_profiles(trained_world.profiles).drop(columns="event_timestamp").set_index("customer_id"), on="customer_id"
    )
    excluded = call_exclusions(rows, s["as_of"], s["platform"].call_list).notna().to_numpy()
    batch = 8
    assert excluded.sum() >= batch
    # The customers no rule lets us call first: the first batch of 8 scores nobody (a null-typed block).
    reordered = tmp_path / "sequences.parquet"
    pq.write_table(pa.concat_tables([table.filter(excluded), table.filter(~excluded)]), reordered)
    ensure_ray(2)
    scores = score_with_ray_data(
        reordered, s["artifact"], trained_world.profiles, s["as_of"], s["platform"], actors=2, batch_size=batch
    )
    expected = _snapshot_scorer(trained_world, s)(pq.read_table(reordered, columns=snapshot_columns(s["artifact"])))
    _assert_same_scores(expected, scores, 1e-6)
