"""Ingestion loses nothing: rows in = accepted + duplicates + quarantined, and good rows arrive unchanged."""

import json
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lam_platform.core.workdir import Workdir
from lam_platform.data.channels import ChannelConfig, ChannelConfigError
from lam_platform.data.events import event_batches, read_events
from lam_platform.data.ingest import ingest
from lam_platform.simulation.raw_export import export_raw_channels
from lam_platform.simulation.world import WorldConfig, raw_customer_ids
from lam_platform.simulation.world_writer import simulate
from tests.conftest import PROJECT_ROOT, PSEUDONYMIZER

NOW = pd.Timestamp("2026-11-21", tz="UTC")
CONTENT = ["customer_id", "event_timestamp", "channel", "object", "action", "amount", "duration_s", "payment_method"]

SHOP_CONFIG = """
max_future: 1d
max_string_length: 20
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


def _write_config(folder, text=SHOP_CONFIG):
    (folder / "channels.yaml").write_text(text)
    return ChannelConfig.load(folder / "channels.yaml")


def _raw_csv(tmp_path, text: str, name: str = "a.csv") -> Workdir:
    """A raw shop file under tmp_path/raw (the SHOP_CONFIG layout), and the workdir it is ingested into."""
    (tmp_path / "raw").mkdir(exist_ok=True)
    (tmp_path / "raw" / name).write_text(text)
    return Workdir.at(tmp_path / "w")


def test_simulated_raw_tables_round_trip_and_reingest_adds_nothing(tmp_path):
    source = Workdir.at(tmp_path / "src")
    simulate(WorldConfig(n_customers=40, seed=2), source.make(), PSEUDONYMIZER)  # the world's own tables
    raw_ids = raw_customer_ids(40)
    export_raw_channels(read_events(source.events), tmp_path / "raw", PSEUDONYMIZER.matcher(raw_ids))
    shop = pd.read_parquet(next((tmp_path / "raw" / "shop").glob("*.parquet")))
    assert set(shop.member_no) <= set(raw_ids)  # the source systems know raw ids only
    (tmp_path / "channels.yaml").write_text((PROJECT_ROOT / "infra" / "channels.example.yaml").read_text())
    config = ChannelConfig.load(tmp_path / "channels.yaml")
    target = Workdir.at(tmp_path / "dst")
    first = ingest(config, target, PSEUDONYMIZER, now=NOW)
    assert first.balanced() and first.quarantined == 0 and first.accepted == first.rows_in
    expected = read_events(source.events).to_pandas()
    got = read_events(target.events).to_pandas()
    key = ["customer_id", "event_timestamp", "channel", "object", "action"]
    pd.testing.assert_frame_equal(
        expected.sort_values(key)[CONTENT].reset_index(drop=True), got.sort_values(key)[CONTENT].reset_index(drop=True)
    )
    with_ids = expected[expected.channel != "web"]  # web sources carry no id: ingestion derives one
    assert set(with_ids.event_id) <= set(got.event_id)
    second = ingest(config, target, PSEUDONYMIZER, now=NOW)
    assert second.balanced() and second.duplicates == second.rows_in and second.accepted == 0
    assert len(read_events(target.events)) == len(expected)
    assert not set(got.customer_id) & set(raw_ids)


def test_the_raw_export_streams_a_world_batch_by_batch_into_the_same_rows(tmp_path):
    source = Workdir.at(tmp_path / "src")
    simulate(WorldConfig(n_customers=30, seed=3), source.make(), PSEUDONYMIZER)
    raw_ids = PSEUDONYMIZER.matcher(raw_customer_ids(30))
    whole = export_raw_channels(read_events(source.events), tmp_path / "whole", raw_ids)
    streamed = export_raw_channels(event_batches(source.events, rows=500), tmp_path / "streamed", raw_ids)
    assert streamed == whole and sum(whole.values()) == len(read_events(source.events)) > 1000
    for channel in whole:
        frames = {}
        for name in ("whole", "streamed"):
            files = sorted((tmp_path / name / channel).iterdir())
            assert [f.name for f in files] in (["part-0.csv", "part-1.csv"], ["part-0.parquet", "part-1.parquet"])
            read = pd.read_csv if files[0].suffix == ".csv" else pd.read_parquet
            frame = pd.concat([read(f) for f in files], ignore_index=True)
            frames[name] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
        pd.testing.assert_frame_equal(frames["streamed"], frames["whole"])


def test_every_reason_is_named_with_its_source_line(tmp_path):
    config = _write_config(tmp_path)
    (tmp_path / "raw").mkdir()
    rows = [
        "id,member,at,sku,kind,price",
        "e1,c1,2026-01-01T10:00:00Z,sku1,purchase,10.5",  # good
        "e2,,2026-01-01T10:00:00Z,sku1,purchase,1",  # missing_required_field
        "e3,c1,yesterday,sku1,purchase,1",  # unparsable_timestamp
        "e4,c1,2026-01-01 10:00:00,sku1,purchase,1",  # naive_timestamp (no zone configured)
        "e5,c1,2030-01-01T00:00:00Z,sku1,purchase,1",  # future_timestamp
        "e6,c1,2026-01-01T10:00:00Z,sku1,purchase,ten",  # non_numeric
        "e7,c1,2026-01-01T10:00:00Z,sku1,purchase,inf",  # not_finite
        "e8,c1,2026-01-01T10:00:00Z," + "x" * 30 + ",purchase,1",  # oversized_string
        "e1,c1,2026-01-01T11:00:00Z,sku2,purchase,3",  # duplicate_event_id (different content)
        "e1,c1,2026-01-01T10:00:00Z,sku1,purchase,10.5",  # exact duplicate of line 2
        "e9,c2,2026-01-01T10:00:00+09:00,sku1,view,",  # good, empty price = missing
    ]
    (tmp_path / "raw" / "a.csv").write_text("\n".join(rows) + "\n")
    report = ingest(config, Workdir.at(tmp_path / "w"), PSEUDONYMIZER, now=NOW)
    assert report.balanced() and (report.rows_in, report.accepted, report.duplicates) == (11, 2, 1)
    assert report.by_reason == {
        r: 1
        for r in [
            "missing_required_field",
            "unparsable_timestamp",
            "naive_timestamp",
            "future_timestamp",
            "non_numeric",
            "not_finite",
            "oversized_string",
            "duplicate_event_id",
        ]
    }
    quarantine = pd.read_parquet(report.quarantine_file)
    assert dict(zip(quarantine.reason, quarantine.source_line))["non_numeric"] == 7
    assert json.loads(quarantine.set_index("reason").raw["not_finite"])["price"] == "inf"
    # The quarantine keeps the source row, with the who column pseudonymized like accepted events.
    assert json.loads(quarantine.set_index("reason").raw["not_finite"])["member"] == PSEUDONYMIZER.pseudonym("c1")
    assert not quarantine.raw.str.contains('"c1"').any()
    events = read_events(Workdir.at(tmp_path / "w").events).to_pandas().set_index("event_id")
    assert events.loc["e1", "amount"] == 10.5 and np.isnan(events.loc["e9", "amount"])
    assert events.loc["e9", "event_timestamp"] == pd.Timestamp("2026-01-01T01:00:00Z")


def test_a_file_read_in_batches_ingests_as_it_does_whole(tmp_path):
    """Rows checked and appended a few at a time: the same report, events and quarantine as one pass, with the
    duplicates and id conflicts of lines 10 and 11 found against line 2 in an earlier batch."""
    test_every_reason_is_named_with_its_source_line(tmp_path)  # writes raw/a.csv and ingests it whole
    config = ChannelConfig.load(tmp_path / "channels.yaml")
    whole = Workdir.at(tmp_path / "w")
    events = read_events(whole.events).to_pandas().sort_values("event_id").reset_index(drop=True)
    rejected = pd.read_parquet(next(whole.quarantine.glob("*.parquet")))
    rejected = sorted(zip(rejected.reason, rejected.source_line, rejected.raw))
    assert len(rejected) == 8
    for batch_rows in (1, 2, 4):
        workdir = Workdir.at(tmp_path / f"w{batch_rows}")
        report = ingest(config, workdir, PSEUDONYMIZER, now=NOW, batch_rows=batch_rows)
        assert report.balanced() and (report.rows_in, report.accepted, report.duplicates, report.files) == (11, 2, 1, 1)
        got = read_events(workdir.events).to_pandas().sort_values("event_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, events)
        quarantine = pd.read_parquet(report.quarantine_file)
        assert sorted(zip(quarantine.reason, quarantine.source_line, quarantine.raw)) == rejected


def test_a_file_without_the_mapped_event_id_column_is_quarantined_and_the_report_balances(tmp_path):
    config = _write_config(tmp_path)
    workdir = _raw_csv(tmp_path, "member,at,sku,kind,price\nc1,2026-01-01T10:00:00Z,sku1,purchase,1\n")
    report = ingest(config, workdir, PSEUDONYMIZER, now=NOW)
    assert report.balanced() and (report.rows_in, report.accepted, report.quarantined) == (1, 0, 1)
    assert pd.read_parquet(report.quarantine_file).reason.tolist() == ["missing_required_field"]


def test_unknown_channel_from_a_column_is_quarantined(tmp_path):
    config = _write_config(tmp_path, SHOP_CONFIG.replace("    how: kind", "    how: kind\n    channel_from: ch"))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.csv").write_text(
        "id,member,at,sku,kind,price,ch\n"
        "e1,c1,2026-01-01T10:00:00Z,s,view,,shop\n"
        "e2,c1,2026-01-01T10:00:00Z,s,view,,fax\n"
    )
    report = ingest(config, Workdir.at(tmp_path / "w"), PSEUDONYMIZER, now=NOW)
    assert report.by_reason == {"unknown_channel": 1} and report.accepted == 1


def test_an_unreadable_file_is_reported_and_the_others_still_load(tmp_path):
    config = _write_config(tmp_path, SHOP_CONFIG.replace("[raw/*.csv]", "[raw/*.csv, raw/*.parquet]"))
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "raw" / "a.csv").write_text("id,member,at,sku,kind,price\ne1,c1,2026-01-01T10:00:00Z,s,view,\n")
    report = ingest(config, Workdir.at(tmp_path / "w"), PSEUDONYMIZER, now=NOW)
    assert report.accepted == 1 and list(report.unreadable_files) == [str(tmp_path / "raw" / "broken.parquet")]


@pytest.mark.parametrize(
    "edit, message",
    [
        ("    who: member\n", "'who' is required"),
        ("    numeric: {amount: price}", "'Weight-kg' is not allowed"),
        ("    how: kind", "exactly one of 'how'"),
    ],
)
def test_config_errors_name_the_channel_and_key(tmp_path, edit, message):
    broken = {
        "    who: member\n": SHOP_CONFIG.replace("    who: member\n", ""),
        "    numeric: {amount: price}": SHOP_CONFIG.replace("{amount: price}", "{Weight-kg: price}"),
        "    how: kind": SHOP_CONFIG.replace("    how: kind", "    how: kind\n    how_value: view"),
    }[edit]
    with pytest.raises(ChannelConfigError, match=message):
        _write_config(tmp_path, broken)


CORRUPTIONS = {
    "missing_required_field": lambda row: {**row, "member": ""},
    "unparsable_timestamp": lambda row: {**row, "at": "31/31/2026"},
    "naive_timestamp": lambda row: {**row, "at": row["at"].rstrip("Z")},
    "future_timestamp": lambda row: {**row, "at": "2031-01-01T00:00:00Z"},
    "non_numeric": lambda row: {**row, "price": "12,5 EUR"},
    "not_finite": lambda row: {**row, "price": "NaN"},
    "oversized_string": lambda row: {**row, "sku": "s" * 25},
}

good_rows = st.lists(
    st.fixed_dictionaries(
        {
            "member": st.text(string.ascii_lowercase, min_size=1, max_size=6),
            "seconds": st.integers(0, 5 * 10**7),  # up to mid-2025: never in the future of NOW
            "sku": st.text(string.ascii_letters + string.digits, min_size=1, max_size=10),
            "kind": st.sampled_from(["view", "purchase", "search"]),
            "price": st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False, allow_infinity=False)),
        }
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=good_rows,
    corrupt=st.lists(st.tuples(st.integers(0, 39), st.sampled_from(sorted(CORRUPTIONS))), max_size=15),
    data=st.data(),
)
def test_corrupted_batches_conserve_rows_and_keep_good_rows_unchanged(tmp_path_factory, rows, corrupt, data):
    folder = tmp_path_factory.mktemp("prop")
    config = _write_config(folder)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    records = [
        {
            "id": f"e{i}",
            "member": r["member"],
            "at": (start + pd.Timedelta(seconds=r["seconds"])).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "sku": r["sku"],
            "kind": r["kind"],
            "price": "" if r["price"] is None else repr(r["price"]),
        }
        for i, r in enumerate(rows)
    ]
    spoiled = {}
    for index, reason in corrupt:
        if index < len(records) and index not in spoiled:
            records[index] = CORRUPTIONS[reason](records[index])
            spoiled[index] = reason
    repeats = data.draw(st.lists(st.integers(0, len(records) - 1), max_size=5))  # exact re-sent rows
    (folder / "raw").mkdir()
    pd.DataFrame(records + [records[i] for i in repeats]).to_csv(folder / "raw" / "batch.csv", index=False)
    workdir = Workdir.at(folder / "w")
    report = ingest(config, workdir, PSEUDONYMIZER, now=NOW)
    assert report.balanced() and report.rows_in == len(records) + len(repeats)
    assert report.quarantined == len(spoiled) + sum(i in spoiled for i in repeats)
    reasons = sorted(r for r, n in report.by_reason.items() for _ in range(n))
    assert reasons == sorted(list(spoiled.values()) + [spoiled[i] for i in repeats if i in spoiled])
    stored = read_events(workdir.events).to_pandas().set_index("event_id") if workdir.events.exists() else None
    good = [i for i in range(len(records)) if i not in spoiled]
    assert report.accepted == len(good)
    for i in good:  # every good row arrives unchanged
        row, event = rows[i], stored.loc[f"e{i}"]
        assert (
            event.customer_id == PSEUDONYMIZER.pseudonym(row["member"])
            and event.object == row["sku"]
            and event.action == row["kind"]
        )
        assert event.event_timestamp == start + pd.Timedelta(seconds=row["seconds"])
        assert np.isnan(event.amount) if row["price"] is None else event.amount == row["price"], (
            row["price"],
            event.amount,
            repr(row["price"]),
        )


def test_declared_attributes_are_carried_and_a_later_declaration_keeps_earlier_events(tmp_path):
    workdir = _raw_csv(
        tmp_path, "id,member,at,sku,kind,price,qty,colour\ne1,c1,2026-01-01T10:00:00Z,s,purchase,2.5,3,red\n"
    )
    assert ingest(_write_config(tmp_path), workdir, PSEUDONYMIZER, now=NOW).accepted == 1
    declared = SHOP_CONFIG.replace(
        "{amount: price}", "{amount: price, quantity: qty}\n    categorical: {colour: colour}"
    )
    (tmp_path / "raw" / "b.csv").write_text(
        "id,member,at,sku,kind,price,qty,colour\ne2,c1,2026-01-02T10:00:00Z,s,purchase,1.0,-1,\n"
    )
    report = ingest(_write_config(tmp_path, declared), workdir, PSEUDONYMIZER, now=NOW)
    assert (report.accepted, report.duplicates, report.quarantined) == (1, 1, 0)  # e1 again: same content
    events = read_events(workdir.events).to_pandas().set_index("event_id")
    assert events.loc["e2", "quantity"] == -1.0 and events.loc["e2", "colour"] is None
    assert np.isnan(events.loc["e1", "quantity"]) and events.loc["e1", "amount"] == 2.5


def test_one_attribute_name_has_one_kind(tmp_path):
    two_kinds = (
        SHOP_CONFIG
        + """  web:
    files: [raw/*.csv]
    who: member
    when: at
    what: sku
    how_value: view
    categorical: {amount: price}
"""
    )
    with pytest.raises(ChannelConfigError, match="both numeric and categorical"):
        _write_config(tmp_path, two_kinds)


def test_events_of_a_forgotten_customer_are_suppressed_on_the_next_ingest(tmp_path):
    from lam_platform.governance.erasure import forget
    from tests.conftest import pseudonym

    workdir = _raw_csv(
        tmp_path,
        "id,member,at,sku,kind,price\n"
        "e1,c1,2026-01-01T10:00:00Z,s,view,\ne2,c2,2026-01-01T11:00:00Z,s,view,\n"
        "e3,c1,2026-01-01T12:00:00Z,s,view,oops\n",
    )
    first = ingest(_write_config(tmp_path), workdir, PSEUDONYMIZER, now=NOW)
    assert (first.accepted, first.quarantined) == (2, 1)
    forget(workdir, [pseudonym("c1")])
    again = ingest(_write_config(tmp_path), workdir, PSEUDONYMIZER, now=NOW)
    assert (again.accepted, again.duplicates, again.quarantined, again.suppressed) == (0, 1, 0, 2)
    assert again.balanced()
    assert set(read_events(workdir.events).column("customer_id").to_pylist()) == {pseudonym("c2")}


def test_forget_with_pseudonyms_of_another_key_refuses_instead_of_reporting_complete(tmp_path):
    from lam_platform.data.pseudonyms import Pseudonymizer
    from lam_platform.governance.erasure import forget
    from tests.conftest import pseudonym

    workdir = _raw_csv(tmp_path, "id,member,at,sku,kind,price\ne1,c1,2026-01-01T10:00:00Z,s,view,\n")
    ingest(_write_config(tmp_path), workdir, PSEUDONYMIZER, now=NOW)
    rotated = Pseudonymizer(b"another key, not the one this workdir was ingested with").pseudonym("c1")
    with pytest.raises(ValueError, match="LAM_PSEUDONYM_KEY"):
        forget(workdir, [rotated])
    assert read_events(workdir.events).num_rows == 1  # nothing was erased
    (workdir.ray_results / "finetune-v1-0123abcd").mkdir(parents=True)  # a run that trained on c1's events
    (workdir.outputs / "report").mkdir(parents=True)
    (workdir.outputs / "report" / "index.html").write_text(f"<h3>#1 {pseudonym('c1')}</h3>")
    (workdir.outputs / "report" / "timeline_1.png").write_bytes(b"\x89PNG titled with the pseudonym")
    summary = forget(workdir, [pseudonym("c1"), rotated])  # one known, one not: erased, and said so
    assert summary["status"] == "complete" and summary["not_found"] == 1
    assert summary["ray_runs_deleted"] == 1 and not list(workdir.ray_results.iterdir())
    assert not list((workdir.outputs / "report").iterdir())  # the page and its plots


def test_purged_events_do_not_come_back_when_the_sources_are_ingested_again(tmp_path):
    from lam_platform.governance.retention import purge_events

    workdir = _raw_csv(
        tmp_path,
        "id,member,at,sku,kind,price\nold,c1,2024-01-01T10:00:00Z,s,view,\nnew,c1,2026-11-01T10:00:00Z,s,view,\n",
    )
    assert ingest(_write_config(tmp_path), workdir, PSEUDONYMIZER, now=NOW).accepted == 2
    assert purge_events(workdir, retention_days=365, now=NOW)["events_removed"] == 1
    again = ingest(_write_config(tmp_path), workdir, PSEUDONYMIZER, now=NOW)
    assert (again.accepted, again.duplicates, again.suppressed) == (0, 1, 1) and again.balanced()
    assert read_events(workdir.events).column("event_id").to_pylist() == ["new"]


def test_an_ingest_waits_for_an_erasure_holding_the_governance_lock(tmp_path):
    import threading
    import time

    from lam_platform.core.atomic_files import governance_lock

    workdir = _raw_csv(tmp_path, "id,member,at,sku,kind,price\ne1,c1,2026-01-01T10:00:00Z,s,view,\n")
    config = _write_config(tmp_path)
    finished = threading.Event()
    with governance_lock(workdir.root):  # what forget, consent and purge hold
        writer = threading.Thread(target=lambda: (ingest(config, workdir, PSEUDONYMIZER, now=NOW), finished.set()))
        writer.start()
        time.sleep(1.0)
        assert not finished.is_set() and not workdir.events.exists()  # it has not read or written anything
    writer.join(timeout=60)
    assert finished.is_set() and read_events(workdir.events).num_rows == 1


def test_an_unreadable_file_leaves_the_erasure_open_and_everything_else_scrubbed(tmp_path):
    from lam_platform.governance.erasure import forget, pending_requests, resume
    from tests.conftest import pseudonym

    workdir = _raw_csv(
        tmp_path,
        "id,member,at,sku,kind,price\ne1,c1,2026-01-01T10:00:00Z,s,view,\ne2,c2,2026-01-01T10:00:00Z,s,view,\n",
    )
    ingest(_write_config(tmp_path), workdir, PSEUDONYMIZER, now=NOW)
    broken = workdir.outputs / "broken.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"PAR1 not really")
    result = forget(workdir, [pseudonym("c1")])
    assert result["status"] == "incomplete" and list(result["unreadable_files"]) == ["outputs/broken.parquet"]
    assert set(read_events(workdir.events).column("customer_id").to_pylist()) == {pseudonym("c2")}  # the rest: done
    assert pending_requests(workdir) == [result["request"]]
    broken.unlink()
    assert resume(workdir, result["request"])["status"] == "complete" and pending_requests(workdir) == []
