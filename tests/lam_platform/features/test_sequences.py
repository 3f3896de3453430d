import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lam_platform.data.events import TIMESTAMP
from lam_platform.features.sequences import build_sequences


def _events(rows):
    frame = pd.DataFrame(rows, columns=["customer_id", "event_timestamp", "object", "amount"])
    return pa.table(
        {
            "event_id": [f"e{i}" for i in range(len(frame))],
            "customer_id": frame.customer_id,
            "event_timestamp": pa.array(pd.to_datetime(frame.event_timestamp, utc=True), TIMESTAMP),
            "channel": ["app"] * len(frame),
            "object": frame.object,
            "action": ["view"] * len(frame),
            "amount": pa.array(frame.amount, pa.float64()),
            "duration_s": pa.array([None] * len(frame), pa.float64()),
        }
    )


def _times(values):
    return pa.array(pd.to_datetime(values, utc=True), TIMESTAMP)


def test_event_at_exactly_t_is_excluded_and_last_n_kept():
    events = _events([("a", "2026-01-01", "x", 1.0), ("a", "2026-01-02", "y", None), ("a", "2026-01-03", "z", 3.0)])
    out = build_sequences(events, ["a", "a"], _times(["2026-01-03", "2026-01-04"]), max_len=2).to_pylist()
    assert out[0]["objects"] == ["x", "y"]  # the event at 2026-01-03 is not before t
    assert out[1]["objects"] == ["y", "z"]  # only the latest two
    assert np.isnan(out[0]["amount_seq"][1])  # missing numeric -> NaN


def test_unknown_customer_gets_empty_sequence():
    events = _events([("a", "2026-01-01", "x", 1.0)])
    out = build_sequences(events, ["nobody"], _times(["2026-02-01"]), max_len=4).to_pylist()[0]
    assert out["seq_len"] == 0 and out["objects"] == []


def test_naive_as_of_is_rejected():
    events = _events([("a", "2026-01-01", "x", 1.0)])
    with pytest.raises(ValueError, match="timezone-aware"):
        build_sequences(events, ["a"], pa.array(pd.to_datetime(["2026-02-01"]), pa.timestamp("us")), max_len=4)


def test_matches_a_brute_force_reference_on_random_data():
    rng = np.random.default_rng(0)
    n = 400
    base = pd.Timestamp("2026-01-01", tz="UTC")
    customers = rng.choice(["a", "b", "c", "d"], size=n)
    times = base + pd.to_timedelta(rng.integers(0, 50, size=n), unit="h")  # many ties on purpose
    events = _events(list(zip(customers, times, [f"o{i}" for i in range(n)], rng.random(n))))
    queries = rng.choice(["a", "b", "c", "d", "e"], size=60)
    as_of = base + pd.to_timedelta(rng.integers(0, 55, size=60), unit="h")
    got = build_sequences(events, list(queries), _times(as_of), max_len=5).to_pylist()
    frame = events.to_pandas()
    for q, t, row in zip(queries, as_of, got):
        before = frame[(frame.customer_id == q) & (frame.event_timestamp < t)]
        expected = before.sort_values("event_timestamp", kind="stable").object.tolist()[-5:]
        assert sorted(row["objects"]) == sorted(expected)
        assert all(ts < t for ts in row["event_timestamps"])
