import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lam_platform.campaigns.training_data import training_events
from lam_platform.data.events import TIMESTAMP
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.evaluation.baselines import AggregateUpliftModel
from lam_platform.evaluation.stacking import lam_states
from lam_platform.governance.consent import consenting_customers
from lam_platform.lightning_modules.artifact import ModelArtifact, latest_version
from lam_platform.simulation.world import load_world_config


def _world(trained_world):
    world = load_world_config(trained_world)
    profiles = pd.read_parquet(trained_world.profiles)
    eligible = consenting_customers(profiles)
    events = training_events(trained_world, world.scoring_time, eligible)
    artifact = ModelArtifact(latest_version(trained_world.artifacts, "campaign_response"))
    return world, profiles, eligible, events, artifact


def test_states_are_point_in_time_and_independent_of_the_batch(trained_world):
    world, _, eligible, events, artifact = _world(trained_world)
    customers = eligible[:12]
    at = world.scoring_time - pd.Timedelta(days=20)
    states = lam_states(artifact, events, customers, [at] * len(customers), batch_size=5)
    assert states.shape == (len(customers), artifact.with_head("next_action").config.d_model)
    assert states.dtype == np.float32 and np.isfinite(states).all()
    # Events at or after a customer's time do not reach its state: the same as on the table cut at that time.
    before = events.filter(pc.less(events.column("event_timestamp"), pa.scalar(at, TIMESTAMP)))
    np.testing.assert_allclose(lam_states(artifact, before, customers, [at] * len(customers)), states, atol=1e-5)
    # Customers with different histories get different states; a later time sees more events.
    assert np.abs(states[0] - states[1]).max() > 1e-4
    later = lam_states(artifact, events, customers[:1], [world.scoring_time])
    assert np.abs(later[0] - states[0]).max() > 1e-4


def test_states_must_align_with_customers(trained_world):
    world, _, eligible, events, artifact = _world(trained_world)
    with pytest.raises(ValueError, match="2 times for 3 customers"):
        lam_states(artifact, events, eligible[:3], [world.scoring_time] * 2)


def test_the_baseline_with_lam_states_as_columns_scores_every_customer(trained_world):
    world, profiles, eligible, events, artifact = _world(trained_world)
    platform = PlatformConfig.load(trained_world.root)
    log = pd.read_parquet(trained_world.campaign_log)
    log = log[(log.event_timestamp < world.scoring_time) & log.customer_id.isin(eligible)].reset_index(drop=True)
    model = AggregateUpliftModel.of_workdir(trained_world, platform, seed=3, rounds=30)
    fit_states = lam_states(artifact, events, log.customer_id.tolist(), log.event_timestamp)
    with pytest.raises(ValueError, match="customer states for"):
        model.fit(events, log, profiles, fit_states[:-1])
    model.fit(events, log, profiles, fit_states)
    assert sum(name.startswith("lam_state_") for name in model.booster.feature_name()) == fit_states.shape[1]
    score_states = lam_states(artifact, events, eligible, [world.scoring_time] * len(eligible))
    scores = model.score(events, eligible, profiles, world.scoring_time, score_states)
    assert len(scores) == len(eligible) * len(platform.require_catalogue().campaigns)
    assert scores.p_order_if_called.between(0, 1).all()
