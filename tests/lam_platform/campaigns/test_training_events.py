"""Training from the event table one customer shard at a time gives what the whole table gives."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lam_platform.campaigns.training_data import build_pretrain_set, fit_tokenizer, training_events
from lam_platform.campaigns.training_events import training_events_by_shard
from lam_platform.campaigns.training_shards import (
    EXAMPLE_TIME,
    TrainingShardWriter,
    read_training_shards,
    write_training_shards,
)
from lam_platform.core.errors import UserError
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.governance.consent import consenting_customers, read_profiles
from lam_platform.orchestration.demo import world_clock


def _rows(arrays: dict[str, np.ndarray]) -> list[bytes]:
    """Each example as bytes, sorted: the set of examples whatever their order."""
    names = sorted(arrays)
    return sorted(
        b"".join(np.ascontiguousarray(arrays[n][i]).tobytes() for n in names) for i in range(len(arrays[names[0]]))
    )


def test_shards_hold_the_training_events_and_fit_and_build_what_the_whole_table_does(tiny_world, tmp_path):
    profiles = read_profiles(tiny_world.profiles)
    customers = consenting_customers(profiles)[:150]  # some customers are left out
    until = world_clock(tiny_world) - pd.Timedelta(days=30)  # and the latest month
    platform = PlatformConfig.load(tiny_world.root)
    whole = training_events(tiny_world, until, customers)
    with training_events_by_shard(tiny_world, until, customers, shard_events=whole.num_rows // 3) as events:
        assert not list(events.folder.glob("shard=*"))  # nothing is split before the events are first read
        assert events.shards.num_shards > 3  # the whole table (every customer, every time) is split
        parts = list(events.each())
        assert events.rows == whole.num_rows and len(parts) == events.shards.num_shards
        seen = [set(p.column("customer_id").to_pylist()) for p in parts]
        assert sum(map(len, seen)) == len(set().union(*seen))  # each customer in one shard
        for part in parts:  # each sorted by customer, then time
            keys = part.select(["customer_id", "event_timestamp"]).to_pandas()
            assert keys.equals(keys.sort_values(["customer_id", "event_timestamp"]))
        assert (
            pa.concat_tables(parts)
            .sort_by([("event_id", "ascending")])
            .equals(whole.sort_by([("event_id", "ascending")]))
        )
        assert fit_tokenizer(events.each(), profiles, until, 16, platform) == (
            tokenizer := fit_tokenizer(whole, profiles, until, 16, platform)
        )
        built = build_pretrain_set(events.each(), tokenizer, 3, 8, 7, tmp_path / "parts", sampling="latest")
        folder = events.shards.folder
    assert not folder.exists()  # the shards go with the block
    assert build_pretrain_set(whole, tokenizer, 3, 8, 7, tmp_path / "whole", sampling="latest") == built > 100
    assert _rows(read_training_shards(tmp_path / "parts")) == _rows(read_training_shards(tmp_path / "whole"))


def test_a_training_set_that_fails_half_written_leaves_the_previous_one(tmp_path):
    folder = tmp_path / "set"
    with TrainingShardWriter(folder, rows_per_shard=2) as writer:
        writer.write({"x": np.arange(3)})
        writer.write({"x": np.arange(0)})  # an empty part adds nothing
        writer.write({"x": np.arange(3, 5)})
    assert writer.rows == 5 and len(list(folder.glob("part-*.parquet"))) == 3
    with pytest.raises(RuntimeError), TrainingShardWriter(folder) as writer:
        writer.write({"x": np.arange(10)})
        raise RuntimeError("the job stopped")
    assert list(read_training_shards(folder)["x"]) == [0, 1, 2, 3, 4]
    assert not (tmp_path / "set.staging").exists()


def test_the_fine_tuning_sets_built_by_shard_are_those_of_the_whole_table(tiny_world, tmp_path, monkeypatch):
    from lam_platform.campaigns.training_data import finetune_arrays, target_arrays
    from lam_platform.campaigns.training_events import build_finetune_set, build_target_set
    from lam_platform.data.campaign_log import campaign_outcomes, read_campaign_log
    from lam_platform.data.platform_config import ActionWithin
    from lam_platform.data.targets import CutoffGrid, target_examples
    from lam_platform.features.store import open_store

    profiles = read_profiles(tiny_world.profiles)
    customers = consenting_customers(profiles)[:150]
    as_of = world_clock(tiny_world)
    platform, store = PlatformConfig.load(tiny_world.root), open_store(tiny_world)
    whole = training_events(tiny_world, as_of, customers)
    tokenizer = fit_tokenizer(whole, profiles, as_of, 16, platform)
    log = read_campaign_log(tiny_world)
    target, grid = ActionWithin(action="purchase", within="14d"), CutoffGrid(snapshots=3)
    # Seven rows per shard file: the merge into the log's order crosses shard files and event shards often.
    monkeypatch.setattr("lam_platform.campaigns.training_events.ROWS_PER_SHARD", 7)
    with training_events_by_shard(tiny_world, as_of, customers, shard_events=whole.num_rows // 3) as events:
        assert events.shards.num_shards > 3
        counts = build_finetune_set(store, events, log, platform.campaigns, as_of, tokenizer, tmp_path / "c", customers)
        target_counts = build_target_set(store, events, customers, as_of, target, grid, tokenizer, tmp_path / "t")
        with pytest.raises(UserError, match="may not be trained on"):  # every contact's customer left out
            build_finetune_set(store, events, log, platform.campaigns, as_of, tokenizer, tmp_path / "none", [])
    # The campaign set: the same rows in the log's order, the same weights (normalised over the whole log).
    expected, expected_counts = finetune_arrays(
        store, whole, campaign_outcomes(log, platform.campaigns, whole, as_of), tokenizer, customers
    )
    built = read_training_shards(tmp_path / "c")
    assert counts == expected_counts and counts["rows"] > 100 and counts["excluded_without_consent"] > 0
    assert sorted(built) == sorted(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(built[name], values, err_msg=name)
    # The target set: the same examples (grouped by shard, so compared as a set), the same counts.
    examples = target_examples(whole, customers, as_of, target, grid)
    assert target_counts["rows"] == len(examples) and target_counts["positives"] == int(examples.label.sum()) > 0
    assert len(target_counts["cutoffs"]) == 3
    assert _rows(read_training_shards(tmp_path / "t")) == _rows(target_arrays(store, whole, examples, tokenizer))


def test_an_array_spill_reads_back_any_row_range_of_any_part(tmp_path):
    from lam_platform.campaigns.training_shards import ArraySpill

    spill = ArraySpill(tmp_path / "spill")
    first = {"x": np.arange(24, dtype=np.float32).reshape(6, 2, 2), "t": np.arange(6), "none": np.zeros((6, 4, 0))}
    spill.add(first)
    spill.add({"x": np.zeros((0, 2, 2), np.float32), "t": np.arange(0), "none": np.zeros((0, 4, 0))})
    spill.add({"x": -np.ones((3, 2, 2), np.float32), "t": np.arange(3), "none": np.zeros((3, 4, 0))})
    back = spill.rows(0, 2, 5)
    np.testing.assert_array_equal(back["x"], first["x"][2:5])
    assert back["x"].dtype == np.float32 and list(back["t"]) == [2, 3, 4]
    assert spill.rows(2, 1, 3)["x"].shape == (2, 2, 2) and len(spill.rows(1, 0, 0)["t"]) == 0
    assert back["none"].shape == (3, 4, 0)  # a column without attributes keeps its shape
    with pytest.raises(TypeError, match="'ids' holds Python objects"):
        spill.add({"ids": np.array(["a"], dtype=object)})


def test_the_validation_rows_are_read_file_by_file_in_order(tmp_path):
    times = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 0])
    write_training_shards(
        {"x": np.arange(40, dtype=np.float32).reshape(10, 2, 2), EXAMPLE_TIME: times}, tmp_path / "s", rows_per_shard=3
    )
    newest = read_training_shards(tmp_path / "s", since_us=6)
    assert list(newest[EXAMPLE_TIME]) == [9, 7, 8, 6] and list(newest["x"][:, 0, 0]) == [8, 16, 24, 32]
    assert newest["x"].shape == (4, 2, 2) and len(read_training_shards(tmp_path / "s", since_us=10)["x"]) == 0
