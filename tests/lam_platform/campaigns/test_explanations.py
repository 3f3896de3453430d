"""Call-list explanations: integrated gradients in bounded batches give what one batch gives."""

from __future__ import annotations

import pandas as pd

from lam_platform.campaigns import scorer as scorer_module
from lam_platform.campaigns.scorer import CampaignScorer
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.features.store import online_features, open_store
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version
from lam_platform.simulation.world import load_world_config


def test_explanations_in_small_batches_equal_one_batch(trained_world, monkeypatch):
    profiles = pd.read_parquet(trained_world.profiles)
    rows = online_features(open_store(trained_world), profiles.customer_id.tolist()[:30])
    rows = rows[rows.event_timestamps.map(lambda v: v is not None and len(v) > 0)].reset_index(drop=True)
    scorer = CampaignScorer(ModelArtifact(latest_version(trained_world.artifacts, "campaign_response")))
    as_of = load_world_config(trained_world).scoring_time
    offer, method = PlatformConfig.load(trained_world.root).require_catalogue().campaigns[0]
    best = pd.DataFrame({"offer": offer, "method": method, "contact_time": as_of}, index=rows.index)
    whole = scorer.explain(rows, best, as_of, steps=8)
    monkeypatch.setattr(scorer_module, "EXPLAIN_BATCH", 4)  # 30 rows in 8 batches, the last one short
    batched = scorer.explain(rows, best, as_of, steps=8)
    assert len(batched) == len(whole) == len(rows)
    for (events_a, why_a), (events_b, why_b) in zip(whole, batched):
        assert why_a == why_b
        assert [(e.timestamp, e.action, e.object) for e in events_a] == [
            (e.timestamp, e.action, e.object) for e in events_b
        ]
        assert [round(e.attribution, 4) for e in events_a] == [round(e.attribution, 4) for e in events_b]
