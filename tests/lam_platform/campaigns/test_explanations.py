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


def test_the_grid_encodes_each_customer_once_and_gives_what_the_head_gives_on_every_row(trained_world):
    """score_grid runs the head's customer side once per row and repeats it: the same numbers as the whole head
    over every (campaign, time, row) triple, and empty arrays when there is nothing to score."""
    import numpy as np
    import torch

    profiles = pd.read_parquet(trained_world.profiles)
    rows = online_features(open_store(trained_world), profiles.customer_id.tolist()[:12])
    rows = rows[rows.event_timestamps.map(lambda v: v is not None and len(v) > 0)].reset_index(drop=True)
    scorer = CampaignScorer(ModelArtifact(latest_version(trained_world.artifacts, "campaign_response")))
    campaigns = PlatformConfig.load(trained_world.root).require_catalogue().campaigns
    as_of = load_world_config(trained_world).scoring_time
    times = [as_of + pd.Timedelta(hours=h) for h in (9, 14)]
    state, last_event_us = scorer.encode(rows)
    grid = scorer.score_grid(rows, state, last_event_us, campaigns, times)
    with torch.inference_mode():
        context = scorer.contexts(rows, last_event_us, campaigns, times)
        whole = scorer.head(state.repeat(len(campaigns) * len(times), 1), context)
    shape = (len(campaigns), len(times), len(rows))
    np.testing.assert_allclose(grid["uplift"], whole.uplift.numpy().reshape(shape), atol=1e-6)
    np.testing.assert_allclose(
        grid["p_order_if_called"], torch.sigmoid(whole.logit_contacted).numpy().reshape(shape), atol=1e-6
    )
    empty = scorer.score_grid(rows, state, last_event_us, [], times)
    assert all(v.shape == (0, len(times), len(rows)) for v in empty.values())


def test_contexts_are_what_training_encodes_for_each_triple_whatever_was_asked_before(trained_world):
    """The (campaign, time) part of a context is encoded once per candidate set and kept: each set asked for
    gives the contexts that `encode_campaigns` (the training path) gives its (campaign, time, row) triples."""
    import numpy as np

    profiles = pd.read_parquet(trained_world.profiles)
    rows = online_features(open_store(trained_world), profiles.customer_id.tolist()[:5])
    rows = rows[rows.event_timestamps.map(lambda v: v is not None and len(v) > 0)].reset_index(drop=True)
    scorer = CampaignScorer(ModelArtifact(latest_version(trained_world.artifacts, "campaign_response")))
    campaigns = PlatformConfig.load(trained_world.root).require_catalogue().campaigns
    as_of = load_world_config(trained_world).scoring_time
    _, last_event_us = scorer.encode(rows)
    for times in ([as_of + pd.Timedelta(hours=9)], [as_of + pd.Timedelta(hours=h) for h in (14, 33)]) * 2:
        context = scorer.contexts(rows, last_event_us, campaigns, times)
        triples = [(o, m, t, i) for o, m in campaigns for t in times for i in range(len(rows))]
        row = np.array([i for *_, i in triples])
        expected = scorer.tokenizer.encode_campaigns(
            rows.iloc[row],
            [o for o, *_ in triples],
            [m for _, m, *_ in triples],
            pd.Series([t for *_, t, _ in triples]),
            last_event_us[row],
        )
        for name, value in expected.items():
            actual = getattr(context, name).numpy()
            np.testing.assert_array_equal(actual, value, err_msg=name)
            assert actual.dtype == value.dtype, name
    # The same instants in another zone are the same candidate set; the kept arrays cannot be written into.
    scorer.contexts(rows, last_event_us, campaigns, [t.tz_convert("Asia/Tokyo") for t in times])
    assert len(scorer._slots) == 2
    kept = scorer.contact_slots(campaigns, times)
    assert not any(array.flags.writeable for array in kept.values())
