import pandas as pd

from lam_platform.events import read_events
from lam_platform.features import open_store
from lam_platform.training_data import finetune_frame


def test_no_training_row_sees_its_own_future(tiny_world):
    log = pd.read_parquet(tiny_world.campaign_log)
    events = read_events(tiny_world.events)
    rows, profiles, sequences, dropped = finetune_frame(open_store(tiny_world), events, log, max_len=16)
    assert dropped == 0 and len(rows) == len(profiles) == sequences.num_rows == len(log)
    assert (sequences.column("customer_id").to_pylist() == rows.customer_id.tolist())
    for contact, stamps in zip(rows.event_timestamp, sequences.column("event_timestamps").to_pylist()):
        assert all(t < contact for t in stamps)  # strictly before the contact
    # The customers do have events at or after their contacts, so the check above has something to catch.
    last_event = events.to_pandas().groupby("customer_id").event_timestamp.max()
    assert (last_event.reindex(rows.customer_id).to_numpy() >= rows.event_timestamp.to_numpy()).mean() > 0.9
    assert profiles.plan.notna().all()  # profiles valid as of every contact came from Feast


def test_customers_without_consent_never_reach_training(tiny_world):
    from lam_platform.simulator import load_world_config
    from lam_platform.training_data import consenting_customers, training_events

    profiles = pd.read_parquet(tiny_world.profiles)
    refused = set(profiles.customer_id[~profiles.consent_marketing])
    assert refused  # the world has some
    assert refused & set(read_events(tiny_world.events).column("customer_id").to_pylist())  # kept in the table
    until = load_world_config(tiny_world).scoring_time
    trained_on = set(training_events(tiny_world, until, consenting_customers(profiles)).column("customer_id").to_pylist())
    assert trained_on and not trained_on & refused
