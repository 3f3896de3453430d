import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.data.events import TIMESTAMP, read_events
from lam_platform.features.aggregates import WINDOWS_DAYS, AggregateSpec, build_aggregates


def test_aggregates_match_a_brute_force_count(tiny_world):
    events = read_events(tiny_world.events)
    frame = events.to_pandas()
    rng = np.random.default_rng(3)
    ids = list(rng.choice(frame.customer_id.unique(), size=15)) + ["nobody"]
    times = pd.Timestamp("2026-02-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 120 * 24, len(ids)), unit="h")
    got = build_aggregates(events, ids, pa.array(times, TIMESTAMP), AggregateSpec.of(events)).to_pandas()
    for row, customer, t in zip(got.itertuples(), ids, times):
        for days in WINDOWS_DAYS:
            window = frame[
                (frame.customer_id == customer)
                & (frame.event_timestamp < t)
                & (frame.event_timestamp >= t - pd.Timedelta(days=days))
            ]
            assert getattr(row, f"app_events_{days}d") == (window.channel == "app").sum()
            assert getattr(row, f"view_events_{days}d") == (window.action == "view").sum()
            assert np.isclose(
                getattr(row, f"billing_amount_sum_{days}d"), window.amount[window.channel == "billing"].sum()
            )
    assert got.iloc[-1].app_events_90d == 0  # unknown customer: zeros, not an error
