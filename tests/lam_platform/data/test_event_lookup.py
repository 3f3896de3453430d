"""Deduplication looks stored events up through the table's id index: only the date partitions that may
hold a batch's ids are read, a re-ingest still finds its duplicates and its id conflicts (on any date), and
ids keep the values earlier versions gave them."""

import hashlib

import pandas as pd
import pyarrow as pa
import pytest

from lam_platform.core.workdir import Workdir
from lam_platform.data import event_id_index
from lam_platform.data.channels import ChannelConfig
from lam_platform.data.event_identity import content_ids, content_keys
from lam_platform.data.events import (
    TIMESTAMP,
    EventAttributes,
    event_files,
    existing_events,
    read_events,
    stored_events,
    write_events,
)
from lam_platform.data.ingest import ingest
from tests.conftest import PSEUDONYMIZER

NOW = pd.Timestamp("2026-11-21", tz="UTC")
ATTRIBUTES = EventAttributes(numeric=("amount",))
CONFIG = """
max_future: 1d
channels:
  shop:
    files: [raw/*.csv]
    event_id: id
    who: member
    when: at
    what: sku
    how: kind
    numeric: {amount: price}
"""


def _events(ids: list[str], days: list[int], customer: str = "c1") -> pa.Table:
    start = pd.Timestamp("2026-01-01", tz="UTC")
    return pa.table(
        {
            "event_id": ids,
            "customer_id": [customer] * len(ids),
            "event_timestamp": pa.array([start + pd.Timedelta(days=d, hours=10) for d in days], TIMESTAMP),
            "channel": ["shop"] * len(ids),
            "object": ["s"] * len(ids),
            "action": ["view"] * len(ids),
            "amount": pa.array([None] * len(ids), pa.float64()),
        }
    )


def _ingest(tmp_path, rows: list[str], name: str = "a.csv"):
    (tmp_path / "raw").mkdir(exist_ok=True)
    (tmp_path / "raw" / name).write_text("id,member,at,sku,kind,price\n" + "".join(r + "\n" for r in rows))
    (tmp_path / "channels.yaml").write_text(CONFIG)
    workdir = Workdir.at(tmp_path / "w")
    return ingest(ChannelConfig.load(tmp_path / "channels.yaml"), workdir, PSEUDONYMIZER, now=NOW), workdir


def test_a_lookup_reads_only_the_partitions_that_may_hold_the_ids(tmp_path, monkeypatch):
    root = tmp_path / "events"
    write_events(_events([f"e{d}" for d in range(40)], list(range(40))), root, channels=("shop",))
    read = []
    monkeypatch.setattr(
        "lam_platform.data.events.event_files", lambda root, date=None: read.append(date) or event_files(root, date)
    )
    found = stored_events(root, pa.array(["e7", "e31", "never-stored"]))  # the first lookup builds the index
    assert sorted(found.column("event_id").to_pylist()) == ["e31", "e7"]
    assert read[-2:] == ["2026-01-08", "2026-02-01"] and event_id_index.exists(root)
    read.clear()
    assert stored_events(root, pa.array(["e12"])).column("event_id").to_pylist() == ["e12"]
    assert read == ["2026-01-13"]  # from now on only the partitions the index names
    assert event_id_index.candidate_dates(root, pa.array(["never-stored"])) == []
    assert existing_events(root, ["e7"]).event_id.tolist() == ["e7"]  # what a push checks, as a DataFrame


def test_a_reingest_finds_its_duplicates_and_an_id_reused_on_another_date(tmp_path):
    first, workdir = _ingest(tmp_path, [f"e{d},c1,2026-01-{d + 1:02d}T10:00:00Z,s{d},view,{d}" for d in range(20)])
    assert first.accepted == 20
    # The same file again, and a second one that reuses e3 for an event on another day (a conflict) and
    # re-sends e5 unchanged (a duplicate) next to a new event.
    rows = ["e3,c1,2026-03-01T10:00:00Z,s3,view,3", "e5,c1,2026-01-06T10:00:00Z,s5,view,5"]
    again, _ = _ingest(tmp_path, [*rows, "e99,c1,2026-03-02T10:00:00Z,s9,view,"], name="b.csv")
    assert again.balanced() and (again.rows_in, again.accepted, again.duplicates, again.quarantined) == (23, 1, 21, 1)
    quarantine = pd.read_parquet(again.quarantine_file)
    assert quarantine.reason.tolist() == ["duplicate_event_id"] and quarantine.source_line.tolist() == [2]
    stored = read_events(workdir.events).to_pandas().set_index("event_id")
    assert len(stored) == 21 and stored.loc["e3", "event_timestamp"] == pd.Timestamp("2026-01-04T10:00:00Z")


def test_the_first_lookup_indexes_the_table_and_later_writes_keep_the_index_whole(tmp_path):
    _, workdir = _ingest(tmp_path, [f"e{d},c1,2026-01-{d + 1:02d}T10:00:00Z,s,view," for d in range(5)])
    late = _events(["late"], [9], customer=PSEUDONYMIZER.pseudonym("c1"))
    write_events(late, workdir.events, append=True, channels=("shop",), attributes=ATTRIBUTES)
    assert not event_id_index.exists(workdir.events)  # nothing looked up yet (or an earlier version wrote it)
    rows = ["e2,c1,2026-02-01T10:00:00Z,s,view,", "late,c1,2026-01-10T10:00:00Z,s,view,"]  # e2 moved; late again
    again, _ = _ingest(tmp_path, rows, "b.csv")
    assert (again.accepted, again.duplicates, again.by_reason) == (0, 6, {"duplicate_event_id": 1})
    assert event_id_index.exists(workdir.events)
    later = _events(["later"], [30], customer=PSEUDONYMIZER.pseudonym("c1"))
    write_events(later, workdir.events, append=True, channels=("shop",), attributes=ATTRIBUTES)
    assert event_id_index.candidate_dates(workdir.events, pa.array(["late", "later"])) == ["2026-01-10", "2026-01-31"]
    third, _ = _ingest(tmp_path, ["later,c1,2026-02-02T10:00:00Z,s,view,"], "c.csv")  # "later", moved a day
    assert (third.accepted, third.duplicates, third.by_reason) == (0, 6, {"duplicate_event_id": 2})


def test_small_runs_are_merged_and_every_id_stays_findable(tmp_path):
    root = tmp_path / "events"
    write_events(_events(["e0"], [0]), root, append=True, channels=("shop",))
    stored_events(root, pa.array(["e0"]))  # builds the index
    for k in range(1, 20):
        write_events(_events([f"e{k}"], [k]), root, append=True, channels=("shop",))
    runs = list((root / event_id_index.INDEX).glob(".run-*.parquet"))
    assert len(runs) < 6 and sum(pd.read_parquet(r).shape[0] for r in runs) == 20
    first, last = (event_id_index.candidate_dates(root, pa.array([f"e{k}"])) for k in (0, 19))
    assert (first, last) == (["2026-01-01"], ["2026-01-20"])
    assert read_events(root).num_rows == 20  # readers never see the index


def test_the_index_holds_hashes_never_the_ids(tmp_path):
    secret = "0123456789abcdef0123456789abcdef-000001"  # an id that embeds a pseudonym
    root = tmp_path / "events"
    write_events(_events([secret], [0]), root, channels=("shop",))
    assert stored_events(root, pa.array([secret])).num_rows == 1
    index_bytes = b"".join(p.read_bytes() for p in (root / event_id_index.INDEX).iterdir())
    assert secret.encode() not in index_bytes and b"0123456789abcdef" not in index_bytes
    # The hash is part of the stored format: changing it would make every existing index miss.
    assert event_id_index.id_hashes(pa.array(["e1", secret, "ü"])).tolist() == [
        292540415853092123,
        -732793403339380457,
        3976460501203677525,
    ]


def test_content_ids_are_the_ones_earlier_versions_derived():
    attributes = EventAttributes(numeric=("amount", "duration_s"), categorical=("payment_method",))
    events = pa.table(
        {
            "channel": ["web", "shop"],
            "customer_id": ["0123456789abcdef0123456789abcdef"] * 2,
            "event_timestamp": pa.array(
                [pd.Timestamp("2026-01-01T10:00:00.5Z"), pd.Timestamp("1969-12-31T23:59:59Z")], TIMESTAMP
            ),
            "object": ["page:home", "sku:1"],
            "action": ["view", "purchase"],
            "amount": pa.array([None, 1.0], pa.float64()),
            "duration_s": [-0.0, 12.345678901234567],
            "payment_method": [None, "card"],
        }
    )
    keys = content_keys(events, attributes)
    web = "web\x1f0123456789abcdef0123456789abcdef\x1f1767261600500000\x1fpage:home\x1fview\x1f\x1f-0.0\x1f"
    assert keys.to_pylist()[0] == web  # core, then attributes; numbers as Python writes them, missing empty
    assert content_ids(keys).to_pylist() == ["cc7bedc7989e776a0f91574ab5ae5302", "50fda6af96e0272169ba8e8465804d4d"]
    assert content_ids(keys).to_pylist()[0] == hashlib.sha256(web.encode()).hexdigest()[:32]


@pytest.mark.parametrize("content", [b"id,member,at,sku,kind,price\n", b"id,member\n\xff\xfe,1\n"])
def test_an_ingest_of_nothing_readable_balances_and_writes_nothing(tmp_path, content):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.csv").write_bytes(content)  # no rows; or not UTF-8, so unreadable
    (tmp_path / "channels.yaml").write_text(CONFIG)
    workdir = Workdir.at(tmp_path / "w")
    report = ingest(ChannelConfig.load(tmp_path / "channels.yaml"), workdir, PSEUDONYMIZER, now=NOW)
    assert report.balanced() and (report.rows_in, report.accepted) == (0, 0) and not workdir.events.exists()
    assert report.files + len(report.unreadable_files) == 1


def test_a_build_gathers_a_large_table_into_several_runs(tmp_path, monkeypatch):
    root = tmp_path / "events"
    write_events(_events([f"e{d}" for d in range(30)], list(range(30))), root, channels=("shop",))
    monkeypatch.setattr(event_id_index, "BUILD_RUN", 4)  # a run per four ids instead of per four million
    assert stored_events(root, pa.array(["e29"])).num_rows == 1
    runs = sorted((root / event_id_index.INDEX).glob(".run-*.parquet"))
    assert 1 < len(runs) < 8 and sum(pd.read_parquet(r).shape[0] for r in runs) == 30
    dates = event_id_index.candidate_dates(root, pa.array([f"e{d}" for d in range(30)]))
    assert dates == [f"2026-01-{d:02d}" for d in range(1, 31)]


def test_a_large_lookup_drops_what_the_filters_rule_out_and_finds_what_the_runs_hold(tmp_path, monkeypatch):
    import numpy as np

    from lam_platform.data import id_filter

    monkeypatch.setattr(event_id_index, "ROW_GROUP", 4)  # many row groups: a large lookup goes through the filter
    root = tmp_path / "events"
    write_events(_events([f"e{d}" for d in range(120)], [d % 40 for d in range(120)]), root, channels=("shop",))
    stored_events(root, pa.array(["e0"]))  # builds the index: one run with its filter
    (run,) = (root / event_id_index.INDEX).glob(".run-*.parquet")
    assert run.with_suffix(event_id_index.FILTER_SUFFIX).exists()
    hashes = event_id_index.id_hashes(pa.array([f"e{d}" for d in range(120)]))
    packed = id_filter.read_filter(run.with_suffix(event_id_index.FILTER_SUFFIX))
    assert id_filter.may_hold(packed, hashes).all()  # no false negatives
    new = event_id_index.id_hashes(pa.array([f"new{d}" for d in range(5000)]))
    assert id_filter.may_hold(packed, new).mean() < 0.01  # stored ids are 120 of 2,400 bits: few false positives
    assert len(event_id_index._filtered(run, np.unique(new), 30)) < 50  # so a lookup of new ids reads almost nothing
    wanted = pa.array([f"e{d}" for d in range(0, 120, 7)] + [f"new{d}" for d in range(100)])
    with_filters = event_id_index.candidate_dates(root, wanted)
    start = pd.Timestamp("2026-01-01")
    assert with_filters == sorted({f"{start + pd.Timedelta(days=d % 40):%Y-%m-%d}" for d in range(0, 120, 7)})
    event_id_index._FILTERS.clear()
    run.with_suffix(event_id_index.FILTER_SUFFIX).unlink()  # a run written before filters: read as before
    assert event_id_index.candidate_dates(root, wanted) == with_filters
    assert np.array_equal(id_filter.build_filter(hashes), packed)  # the filter is a function of the hashes


def test_runs_stop_merging_at_the_largest_merged_tier(tmp_path, monkeypatch):
    monkeypatch.setattr(event_id_index, "LARGEST_MERGED_TIER", 1)  # runs of 4 rows and more stay as they are
    root = tmp_path / "events"
    write_events(_events(["e0"], [0]), root, append=True, channels=("shop",))
    stored_events(root, pa.array(["e0"]))
    for k in range(1, 32):
        write_events(_events([f"e{k}"], [k % 28]), root, append=True, channels=("shop",))
    runs = sorted((root / event_id_index.INDEX).glob(".run-*.parquet"))
    assert [pd.read_parquet(r).shape[0] for r in runs] == [4] * 8  # 32 single rows: merged in fours, no further
    assert len(list((root / event_id_index.INDEX).glob(f".run-*{event_id_index.FILTER_SUFFIX}"))) == 8
    assert event_id_index.candidate_dates(root, pa.array(["e31"])) == ["2026-01-04"]
