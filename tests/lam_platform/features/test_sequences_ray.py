import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lam_platform.data.events import TIMESTAMP, read_events
from lam_platform.features.sequences import build_sequences
from lam_platform.features.sequences_ray import build_sequences_ray


@pytest.fixture(scope="module")
def local_ray():
    from lam_platform.ray_jobs.training import ensure_ray

    ensure_ray(2)  # the platform's local Ray (it keeps a CPU slot for Ray Data, which training needs too)
    yield


def test_ray_data_builder_equals_the_single_machine_builder(tiny_world, local_ray):
    events = read_events(tiny_world.events)
    rng = np.random.default_rng(1)
    ids = list(rng.choice(events.column("customer_id").to_numpy(zero_copy_only=False), size=150)) + ["nobody"]
    times = pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(rng.integers(0, 180 * 24, size=len(ids)), unit="h")
    as_of = pa.array(times, TIMESTAMP)
    expected = build_sequences(events, ids, as_of, max_len=12)
    got = build_sequences_ray(tiny_world.events, ids, as_of, max_len=12, num_shards=3)
    assert got.num_rows == len(ids)
    pd.testing.assert_frame_equal(got.to_pandas(), expected.to_pandas())
