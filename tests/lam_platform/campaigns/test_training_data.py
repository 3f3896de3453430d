import pandas as pd

from lam_platform.campaigns.training_data import finetune_frame
from lam_platform.data.events import read_events
from lam_platform.features.store import open_store
from tests.conftest import PSEUDONYMIZER


def test_no_training_row_sees_its_own_future(tiny_world):
    log = pd.read_parquet(tiny_world.campaign_log)
    events = read_events(tiny_world.events)
    rows, profiles, sequences, dropped = finetune_frame(
        open_store(tiny_world), events, log, max_len=16, eligible=log.customer_id.unique().tolist()
    )
    assert dropped == 0 and len(rows) == len(profiles) == sequences.num_rows == len(log)
    assert sequences.column("customer_id").to_pylist() == rows.customer_id.tolist()
    for contact, stamps in zip(rows.event_timestamp, sequences.column("event_timestamps").to_pylist()):
        assert all(t < contact for t in stamps)  # strictly before the contact
    # The customers do have events at or after their contacts, so the check above has something to catch.
    last_event = events.to_pandas().groupby("customer_id").event_timestamp.max()
    assert (last_event.reindex(rows.customer_id).to_numpy() >= rows.event_timestamp.to_numpy()).mean() > 0.9
    assert profiles.plan.notna().all()  # profiles valid as of every contact came from Feast


def test_customers_without_consent_never_reach_training(tiny_world):
    from lam_platform.campaigns.training_data import training_events
    from lam_platform.governance.consent import consenting_customers
    from lam_platform.simulation.world import load_world_config

    profiles = pd.read_parquet(tiny_world.profiles)
    refused = set(profiles.customer_id[~profiles.consent_marketing])
    assert refused  # the world has some
    assert refused & set(read_events(tiny_world.events).column("customer_id").to_pylist())  # kept in the table
    until = load_world_config(tiny_world).scoring_time
    trained_on = set(
        training_events(tiny_world, until, consenting_customers(profiles)).column("customer_id").to_pylist()
    )
    assert trained_on and not trained_on & refused


def test_logged_propensities_are_calibrated_horvitz_thompson(tmp_path):
    """Summing 1/propensity over a wave's contacted rows estimates the eligible population (HT identity)."""
    import numpy as np

    from lam_platform.core.workdir import Workdir
    from lam_platform.simulation.world import WorldConfig
    from lam_platform.simulation.world_writer import simulate

    workdir = Workdir.at(tmp_path / "w").make()
    config = WorldConfig(n_customers=4000, seed=3, train_days=70, holdout_days=5)
    simulate(config, workdir, PSEUDONYMIZER)
    log = pd.read_parquet(workdir.campaign_log)
    eligible = pd.read_parquet(workdir.profiles).consent_marketing.sum()
    assert ((log.propensity > 0) & (log.propensity <= 1)).all()
    # Each arm on its own estimates the population: propensity = P(contacted) x P(this arm).
    per_wave = (1 / log.propensity).groupby([log.treatment, log.campaign_id]).sum()
    assert np.allclose(per_wave.loc[1].to_numpy(), eligible, rtol=0.1)
    assert np.isclose(per_wave.loc[0].mean(), eligible, rtol=0.25)  # ~10% controls: noisier
    legacy = log[log.policy == "legacy"].propensity.mean()
    assert legacy > 3 * log[log.policy == "random"].propensity.mean()  # the segment rule is far from random


def test_inverse_propensity_weights_are_capped_normalised_and_checked():
    import numpy as np
    import pytest

    from lam_platform.campaigns.training_data import inverse_propensity_weights

    log = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "campaign_id": "w0",
            "treatment": [1, 1, 1, 0],
            "propensity": [0.9, 0.45, 0.09, 0.01],
        }
    )
    weights = inverse_propensity_weights(log, cap_quantile=1.0)
    assert np.allclose(weights[:3].mean(), 1) and np.allclose(weights[3], 1)
    assert np.allclose(weights[:3] / weights[0], [1, 2, 10])  # rarer contacts count more
    assert (inverse_propensity_weights(log.drop(columns="propensity")) == 1).all()
    with pytest.raises(ValueError, match="customer c in w0"):
        inverse_propensity_weights(log.assign(propensity=[0.5, 0.5, 0.0, 0.5]))


def test_latest_sampling_trains_each_customers_last_window_once(tmp_path):
    import numpy as np
    import pyarrow as pa

    from lam_platform.campaigns.training_data import build_pretrain_set
    from lam_platform.campaigns.training_shards import EXAMPLE_TIME, read_training_shards
    from lam_platform.data.events import TIMESTAMP
    from lam_platform.features.sequences import build_sequences
    from lam_platform.lightning_modules.tokenizer import EventTokenizer

    start = pd.Timestamp("2026-01-01", tz="UTC")
    rows = [("a", start + pd.Timedelta(hours=k), f"item{k}") for k in range(5)]
    rows += [("b", start + pd.Timedelta(hours=10 + k), f"item{4 - k}") for k in range(3)]
    frame = pd.DataFrame(rows, columns=["customer_id", "event_timestamp", "object"])
    events = pa.table(
        {
            "event_id": [f"e{i}" for i in range(len(frame))],
            "customer_id": frame.customer_id,
            "event_timestamp": pa.array(frame.event_timestamp, TIMESTAMP),
            "channel": ["shop"] * len(frame),
            "object": frame.object,
            "action": ["purchase"] * len(frame),
        }
    )
    snapshot = build_sequences(events, ["a", "b"], pa.array([start + pd.Timedelta(days=1)] * 2, TIMESTAMP), 10**6)
    tokenizer = EventTokenizer.fit(snapshot, pd.DataFrame(), ["-"], ["-"], 8, min_count=1)
    assert build_pretrain_set(events, tokenizer, 3, 8, 7, tmp_path / "latest", sampling="latest") == 2
    arrays = read_training_shards(tmp_path / "latest")
    ends = pd.DatetimeIndex(arrays[EXAMPLE_TIME].astype("datetime64[us]")).tz_localize("UTC")
    assert sorted(ends) == [start + pd.Timedelta(hours=4), start + pd.Timedelta(hours=12)]  # each one's last event
    last_objects = tokenizer.encode_tokens("objects", pd.Series(["item4", "item2"]))
    order = np.argsort(arrays[EXAMPLE_TIME])
    assert list(arrays["next_categorical"][order, -1, 1]) == list(last_objects)  # the final target is the last event
    assert build_pretrain_set(events, tokenizer, 3, 8, 7, tmp_path / "random") == 3 + 2  # random: up to 3 each


def test_the_tokenizer_fits_the_same_on_the_event_values_as_on_every_customers_history(tiny_world):
    import pyarrow as pa
    import pyarrow.compute as pc

    from lam_platform.campaigns.training_data import event_values
    from lam_platform.data.events import TIMESTAMP
    from lam_platform.features.sequences import build_sequences
    from lam_platform.governance.consent import consenting_customers, read_profiles
    from lam_platform.lightning_modules.tokenizer import EventTokenizer
    from lam_platform.orchestration.demo import world_clock

    events = read_events(tiny_world.events)
    profiles = read_profiles(tiny_world.profiles)
    customers = consenting_customers(profiles)[:150]  # some customers' events are left out
    until = world_clock(tiny_world) - pd.Timedelta(days=30)  # and the latest month
    history = build_sequences(events, customers, pa.array([until] * len(customers), TIMESTAMP), max_len=10**6)
    values = event_values(events, customers, until)
    assert values.num_rows == 1 and len(values.column("objects")[0].values) == pc.sum(history["seq_len"]).as_py()
    fitted = [EventTokenizer.fit(t, profiles, ["a"], ["b"], 16, min_count=2) for t in (history, values)]
    assert fitted[0] == fitted[1] and fitted[0].numeric_scaling and len(fitted[0].vocabularies["objects"]) > 10
