"""The tokenizer's statistics kept as distinct values and counts give numpy's exact quartiles."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from lam_platform.lightning_modules.token_statistics import EventValueStatistics, LoggedValues

values = st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 2.5, 10.0, 99.0, 1e6]), min_size=1, max_size=60)


@given(st.lists(values, min_size=1, max_size=4), st.sampled_from([0, 10, 25, 50, 75, 90, 100]))
@settings(max_examples=200, deadline=None)
def test_percentile_of_merged_parts_is_numpys_over_every_value(parts: list[list[float]], q: int) -> None:
    merged = LoggedValues.merged([LoggedValues.of(np.array(part)) for part in parts])
    everything = np.concatenate([np.array(p) for p in parts])
    assert merged.total == len(everything)
    assert merged.percentile(q) == np.percentile(everything, q)


def test_scaling_by_parts_equals_scaling_of_the_whole_table() -> None:
    rng = np.random.default_rng(3)
    amounts = [[float(v) for v in rng.choice([1.5, 9.99, 20.0, np.nan], size=rng.integers(0, 12))] for _ in range(40)]
    tokens = pa.array([["x"] * len(row) for row in amounts], pa.list_(pa.string()))
    table = pa.table(
        {"channels": tokens, "objects": tokens, "actions": tokens, "amount": pa.array(amounts, pa.list_(pa.float64()))}
    )
    whole = EventValueStatistics.of(table)
    parts = EventValueStatistics()
    for start in range(0, 40, 7):
        parts.add(table.slice(start, 7))
    finite = np.array([v for row in amounts for v in row if np.isfinite(v)])
    logged = np.log1p(finite)
    expected = (np.percentile(logged, 50), np.percentile(logged, 75) - np.percentile(logged, 25))
    assert whole.scaling("amount") == parts.scaling("amount") == (float(expected[0]), float(expected[1]))
    assert EventValueStatistics().scaling("amount") == (0.0, 1.0)
