import hashlib

import numpy as np
import pandas as pd
import pytest

from lam_platform.core.workdir import Workdir
from lam_platform.data.events import read_events
from lam_platform.simulation.customers import ANSWER_BETA, NEVER_ANSWER_SHARE, expected_responsiveness
from lam_platform.simulation.evaluation import call_results
from lam_platform.simulation.ground_truth import OFFERS
from lam_platform.simulation.policies import legacy_segment_policy
from lam_platform.simulation.touchpoints import CALL_RESULTS
from lam_platform.simulation.world import WorldConfig, load_ground_truth, load_world_config
from lam_platform.simulation.world_writer import simulate
from tests.conftest import PSEUDONYMIZER


def _file_bytes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_output_across_chunks(tmp_path):
    config = WorldConfig(n_customers=50, seed=11, chunk_customers=20)  # three chunks
    a, b = Workdir.at(tmp_path / "a").make(), Workdir.at(tmp_path / "b").make()
    simulate(config, a, PSEUDONYMIZER)
    simulate(config, b, PSEUDONYMIZER)
    files = _file_bytes(a.root)
    assert any(name.startswith("feature_repo/data/events/") for name in files)
    assert files == _file_bytes(b.root)
    c = Workdir.at(tmp_path / "c").make()
    simulate(WorldConfig(n_customers=50, seed=12, chunk_customers=20), c, PSEUDONYMIZER)
    assert _file_bytes(c.root) != files  # another seed, another world


def test_world_follows_the_contracts(tiny_world):
    events = read_events(tiny_world.events).to_pandas()
    counts = events.channel.value_counts()
    assert counts["app"] > 10 * counts["shop"]  # channels of very different frequency
    assert set(counts.index) == {"app", "web", "shop", "call_centre", "telemarketing", "billing"}
    assert events.event_id.is_unique
    assert events.amount.isna().any() and events.amount.notna().any()
    log = pd.read_parquet(tiny_world.campaign_log)
    assert {
        "customer_id",
        "event_timestamp",
        "campaign_id",
        "offer",
        "method",
        "treatment",
        "policy",
        "outcome",
        "outcome_value",
    } <= set(log.columns)
    assert set(log.treatment) == {0, 1} and set(log.policy) == {"legacy", "random"}
    profiles = pd.read_parquet(tiny_world.profiles)
    assert not profiles.consent_marketing.all() and profiles.consent_marketing.any()
    assert set(log.customer_id) <= set(profiles.customer_id[profiles.consent_marketing])


def test_ground_truth_makes_targeting_matter(tiny_world):
    world = load_world_config(tiny_world)
    truth = load_ground_truth(tiny_world)
    profiles = pd.read_parquet(tiny_world.profiles)
    ids = profiles.customer_id[profiles.consent_marketing].to_numpy()
    best = truth.best_campaign(ids, world.scoring_time)
    legacy = legacy_segment_policy(profiles, 20, world.train_days, np.random.default_rng(0))
    p_legacy, _ = truth.order_probability(legacy.customer_id, legacy.offer, legacy.method, world.scoring_time)
    assert best.head(20).p_contacted.mean() > 2 * p_legacy.mean()
    p_called, p_not = truth.order_probability(
        ids, np.full(len(ids), OFFERS[0]), np.full(len(ids), "outbound_call"), world.scoring_time
    )
    assert (p_called >= p_not).all()


def test_calls_carry_the_dialers_result_and_reveal_responsiveness(tiny_world):
    """Customers who never answer have no answered call; what the calls reveal moves toward the truth."""
    world = load_world_config(tiny_world)
    truth = load_ground_truth(tiny_world).customers.set_index("customer_id").responsiveness
    events = read_events(tiny_world.events).to_pandas()
    telemarketing = events[events.channel == "telemarketing"]
    assert set(telemarketing.action) <= {*CALL_RESULTS, "sms_outbound"}
    assert {"call_answered", "call_unreachable"} <= set(telemarketing.action)
    answered = telemarketing.customer_id[telemarketing.action == "call_answered"]
    assert (truth.reindex(answered.unique()) > 0).all()  # nobody answers who never answers
    unreachable = telemarketing[telemarketing.action == "call_unreachable"]
    assert unreachable.duration_s.isna().all()  # a call that rang out has no talk time
    calls = call_results(tiny_world, world.scoring_time).reindex(truth.index, fill_value=0)
    revealed = expected_responsiveness(calls.answered.to_numpy(), calls.unanswered.to_numpy())
    called = (calls.answered + calls.unanswered).to_numpy() > 0
    never = truth.to_numpy() == 0
    # Among called customers, those who never answer look less responsive than those who do.
    assert revealed[called & never].mean() < revealed[called & ~never].mean()


def test_expected_responsiveness_is_the_posterior_mean():
    prior = (1 - NEVER_ANSWER_SHARE) * ANSWER_BETA[0] / sum(ANSWER_BETA)
    assert expected_responsiveness(np.array([0]), np.array([0]))[0] == pytest.approx(prior)
    a, b = ANSWER_BETA
    # One answered call rules out "never answers": the Beta posterior mean.
    assert expected_responsiveness(np.array([1]), np.array([0]))[0] == pytest.approx((a + 1) / (a + b + 1))
    # Unanswered calls only lower it; by Monte Carlo on the prior, 2 unanswered calls:
    rng = np.random.default_rng(0)
    r = np.where(rng.random(400_000) < NEVER_ANSWER_SHARE, 0.0, rng.beta(a, b, 400_000))
    kept = r[(rng.random(len(r)) >= r) & (rng.random(len(r)) >= r)]
    assert expected_responsiveness(np.array([0]), np.array([2]))[0] == pytest.approx(kept.mean(), abs=0.005)


def test_raw_event_times_are_written_as_each_source_system_writes_them():
    """Arrow's formatting gives pandas' strftime text for every style, zone and fraction (0 and 1 microsecond)."""
    import pandas as pd

    from lam_platform.simulation.raw_export import _render

    ts = pd.Series(
        pd.to_datetime([1_700_000_000_000_000, 1_700_000_000_000_001, 1_719_792_000_999_999], unit="us", utc=True),
        index=[7, 3, 11],
    ).astype("datetime64[us, UTC]")
    tokyo = ts.dt.tz_convert("Asia/Tokyo")
    expected = {
        "iso_utc": ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "iso_offset": tokyo.dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z"),
        "tokyo_naive": tokyo.dt.strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    for style, text in expected.items():
        pd.testing.assert_series_equal(_render(ts, style), text, check_dtype=False, obj=style)
    assert _render(ts, "native") is ts  # Parquet keeps timestamps
