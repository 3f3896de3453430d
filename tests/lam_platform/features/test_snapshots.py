"""Snapshots built shard by shard equal the ones built from the whole event table, row for row."""

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lam_platform.core.workdir import Workdir
from lam_platform.data.events import TIMESTAMP, read_events
from lam_platform.features import snapshots
from lam_platform.features.aggregates import AggregateSpec, build_aggregates
from lam_platform.features.sequences import build_sequences
from lam_platform.features.snapshots import EventShards
from lam_platform.features.store import materialize_incremental, online_features, open_store, snapshot_path
from lam_platform.governance.consent import read_profiles
from lam_platform.orchestration.demo import world_clock
from lam_platform.orchestration.pipeline import materialize_step
from tests.conftest import TINY_MAX_LEN


def _by_customer(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas().sort_values("customer_id").reset_index(drop=True)


def test_shards_hold_each_customer_whole_and_what_the_table_holds(tiny_world, tmp_path):
    events = read_events(tiny_world.events)
    as_of = world_clock(tiny_world)
    window = (as_of - pd.Timedelta(days=7), as_of)
    shards = EventShards.split(tiny_world.events, tmp_path / "shards", window, shard_events=events.num_rows // 3)
    assert shards.num_shards == 4 and len(list((tmp_path / "shards").iterdir())) == 4
    assert shards.spec() == AggregateSpec.of(events)
    ts = events.column("event_timestamp")
    inside = pc.and_(
        pc.greater_equal(ts, pa.scalar(window[0], TIMESTAMP)), pc.less(ts, pa.scalar(window[1], TIMESTAMP))
    )
    assert shards.active == set(events.filter(inside).column("customer_id").to_pylist()) != set()
    customers = sorted(set(events.column("customer_id").to_pylist())) + ["nobody"]
    sequences, aggregates, seen = [], [], []
    for shard_events, mine in shards.each(customers):
        times = pa.array([as_of] * len(mine), TIMESTAMP)
        sequences.append(build_sequences(shard_events, mine, times, TINY_MAX_LEN))
        aggregates.append(build_aggregates(shard_events, mine, times, shards.spec()))
        seen += mine
    assert sorted(seen) == sorted(customers)  # every customer in exactly one shard
    times = pa.array([as_of] * len(customers), TIMESTAMP)
    pd.testing.assert_frame_equal(
        _by_customer(pa.concat_tables(sequences)), _by_customer(build_sequences(events, customers, times, TINY_MAX_LEN))
    )
    pd.testing.assert_frame_equal(
        _by_customer(pa.concat_tables(aggregates)),
        _by_customer(build_aggregates(events, customers, times, shards.spec())),
    )


def test_a_sharded_materialization_writes_the_snapshots_of_a_whole_one(tiny_world, tmp_path, monkeypatch):
    copy = Workdir.at(tmp_path / "workdir")
    shutil.copytree(tiny_world.root, copy.root, ignore=shutil.ignore_patterns("artifacts", "ray_results", "training"))
    monkeypatch.setattr(snapshots, "SHARD_EVENTS", read_events(tiny_world.events).num_rows // 2)
    as_of = world_clock(tiny_world)
    materialize_step(copy, max_len=TINY_MAX_LEN, as_of=as_of)
    events = read_events(copy.events)
    customers = read_profiles(copy.profiles, columns=["customer_id"]).customer_id.tolist()
    times = pa.array([as_of] * len(customers), TIMESTAMP)
    whole = {
        "sequences": build_sequences(events, customers, times, TINY_MAX_LEN),
        "aggregates": build_aggregates(events, customers, times, AggregateSpec.of(events)),
    }
    for view, expected in whole.items():
        sharded = pq.read_table(snapshot_path(getattr(copy, view), as_of))
        pd.testing.assert_frame_equal(_by_customer(sharded), _by_customer(expected))
    assert str(tiny_world.root) not in (copy.feature_repo / "feature_store.yaml").read_text()
    # A snapshot an incremental run wrote but did not load (it failed after writing) is loaded by the next run.
    later = pq.read_table(snapshot_path(copy.sequences, as_of)).slice(0, 3).to_pandas()
    later["event_timestamp"], later["seq_len"] = as_of + pd.Timedelta(hours=1), 999
    pq.write_table(
        pa.Table.from_pandas(later, preserve_index=False), snapshot_path(copy.sequences, later.event_timestamp[0])
    )
    store = open_store(copy)
    materialize_incremental(store, copy, as_of + pd.Timedelta(hours=2))
    online = online_features(store, later.customer_id.tolist())
    assert online.seq_len.tolist() == [999] * 3
    assert not list(copy.events.parent.glob(".shards-*"))  # the shards are gone


def test_a_killed_jobs_shard_folder_is_removed_by_the_next_job_and_a_live_ones_is_not(tmp_path):
    import subprocess
    import sys
    import textwrap

    # A job that makes its folder and is killed outright (no cleanup), and one that is still running.
    job = textwrap.dedent(
        f"""
        import os, sys, time
        from lam_platform.features.snapshots import ShardFolder
        owner = ShardFolder({str(tmp_path / "events")!r})  # kept: its lock lives as long as the object
        folder = owner.__enter__()
        print(folder, flush=True)
        os.kill(os.getpid(), 9) if sys.argv[1] == "killed" else time.sleep(60)
        """
    )
    running = subprocess.Popen([sys.executable, "-c", job, "running"], stdout=subprocess.PIPE, text=True)
    try:
        live = Path(running.stdout.readline().strip())
        killed = subprocess.run([sys.executable, "-c", job, "killed"], capture_output=True, text=True)
        abandoned = Path(killed.stdout.strip())
        unowned = tmp_path / ".shards-xyz"  # no owner file (an earlier release's, or one being made): left alone
        unowned.mkdir()
        assert abandoned.is_dir() and live.is_dir()
        with snapshots.ShardFolder(tmp_path / "events") as made:
            assert Path(made).is_dir() and (Path(made) / ".owner").exists()
            assert not abandoned.exists() and live.is_dir() and unowned.is_dir()
        assert not Path(made).exists()
    finally:
        running.kill()
        running.wait()
