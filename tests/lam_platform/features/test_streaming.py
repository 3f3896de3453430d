"""Pushes: online sequences after materialize + pushes equal offline point-in-time sequences."""

import multiprocessing

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lam_platform.core.workdir import Workdir
from lam_platform.data.events import TIMESTAMP, EventAttributes, read_events, write_events
from lam_platform.features.sequences import build_sequences, list_columns
from lam_platform.features.store import LOCAL_PROFILE, online_features, open_store
from lam_platform.features.streaming import push_events
from lam_platform.orchestration.demo import simulate_step, world_clock
from lam_platform.orchestration.pipeline import ingest_step, materialize_step
from lam_platform.simulation.world import load_world_config, raw_customer_ids
from tests.conftest import PSEUDONYMIZER, pseudonym, with_raw_ids

N = 16


def _cut_world(root, profile=LOCAL_PROFILE) -> tuple[Workdir, pa.Table]:
    """A world whose event table stops at the scoring time; the held-out events are returned to push."""
    workdir = Workdir.at(root)
    simulate_step(workdir, customers=60, seed=5, pseudonymizer=PSEUDONYMIZER)
    ingest_step(workdir, PSEUDONYMIZER)
    events = read_events(workdir.events)
    cut = pa.scalar(load_world_config(workdir).scoring_time, TIMESTAMP)
    write_events(events.filter(pc.less(events.column("event_timestamp"), cut)), workdir.events)
    materialize_step(workdir, max_len=N, profile=profile, as_of=world_clock(workdir))
    return workdir, events.filter(pc.greater_equal(events.column("event_timestamp"), cut))


def _assert_parity(workdir: Workdir, customers: list[str], t: pd.Timestamp) -> None:
    online = online_features(open_store(workdir), customers)
    offline = build_sequences(
        read_events(workdir.events), customers, pa.array([t] * len(customers), TIMESTAMP), N
    ).to_pandas()
    for column in list_columns(EventAttributes.of_events(workdir.events)):
        for customer, got, expected in zip(customers, online[column], offline[column]):
            got = pd.Series([] if got is None else list(got))  # unknown customers read as missing (found=False)
            expected = pd.Series(list(expected))
            if column == "event_timestamps":
                got, expected = pd.to_datetime(got, utc=True), pd.to_datetime(expected, utc=True)
            pd.testing.assert_series_equal(got, expected, check_dtype=False, obj=f"{customer} {column}")


@pytest.fixture(scope="module")
def cut_world(tmp_path_factory):
    return _cut_world(tmp_path_factory.mktemp("stream"))


def test_online_after_pushes_equals_offline_at_each_time(cut_world):
    workdir, future = cut_world
    start = load_world_config(workdir).scoring_time
    customers = sorted(set(future.column("customer_id").to_pylist()))[:25] + ["never-seen"]
    previous = start
    for days in (1, 3, 7):  # push the held-out stream in three chunks, checking parity after each
        t = start + pd.Timedelta(days=days)
        ts = future.column("event_timestamp")
        chunk = future.filter(
            pc.and_(pc.greater_equal(ts, pa.scalar(previous, TIMESTAMP)), pc.less(ts, pa.scalar(t, TIMESTAMP)))
        )
        result = push_events(workdir, open_store(workdir), with_raw_ids(chunk, 60), PSEUDONYMIZER)
        assert result["new"] == chunk.num_rows > 0
        _assert_parity(workdir, customers, t)
        previous = t


def test_a_repeated_push_adds_nothing(cut_world):
    workdir, future = cut_world
    first_day = future.filter(
        pc.less(
            future.column("event_timestamp"),
            pa.scalar(load_world_config(workdir).scoring_time + pd.Timedelta(days=1), TIMESTAMP),
        )
    )
    before = read_events(workdir.events).num_rows
    result = push_events(
        workdir, open_store(workdir), with_raw_ids(first_day, 60), PSEUDONYMIZER
    )  # already pushed by the test above
    assert result["new"] == 0 and result["already_present"] == first_day.num_rows
    assert read_events(workdir.events).num_rows == before


def test_a_push_for_an_erased_customer_is_suppressed(cut_world):
    from lam_platform.data.suppression import record_erased

    workdir, _ = cut_world
    record_erased(workdir, [PSEUDONYMIZER.pseudonym("CUST-000002")])
    when = load_world_config(workdir).scoring_time + pd.Timedelta(days=2)
    result = push_events(
        workdir,
        open_store(workdir),
        pa.table(
            {
                "event_id": ["erased-1"],
                "customer_id": ["CUST-000002"],
                "event_timestamp": pa.array([when], TIMESTAMP),
                "channel": ["app"],
                "object": ["page:home"],
                "action": ["view"],
            }
        ),
        PSEUDONYMIZER,
    )
    assert (result["pushed"], result["new"], result["suppressed"]) == (1, 0, 1)
    assert "erased-1" not in set(read_events(workdir.events).column("event_id").to_pylist())


def test_a_push_is_validated_as_ingestion_validates(cut_world, tmp_path):
    from lam_platform.data.raw_tables import read_raw

    workdir, _ = cut_world
    when = (load_world_config(workdir).scoring_time + pd.Timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
    csv = tmp_path / "pushed.csv"
    csv.write_text(
        "event_id,customer_id,event_timestamp,channel,object,action,amount\n"
        f"v1,000042,{when}+00:00,app,page:home,view,\n"
        f"v2,42,{when}+00:00,app,page:home,view,\n"
        f"v3,42,{when},app,page:home,view,\n"  # no zone
        f"v4,42,{when}+00:00,shop,phone,purchase,inf\n"
        f"v5,42,{when}+00:00,carrier_pigeon,page:home,view,\n"
    )
    result = push_events(workdir, open_store(workdir), read_raw(csv), PSEUDONYMIZER, source=str(csv))
    assert (result["pushed"], result["new"], result["quarantined"]) == (5, 2, 3)
    reasons = pd.read_parquet(result["quarantine_file"]).set_index("source_line").reason.to_dict()
    assert reasons == {4: "naive_timestamp", 5: "not_finite", 6: "unknown_channel"}
    stored = read_events(workdir.events).to_pandas().set_index("event_id").customer_id
    assert stored["v1"] == PSEUDONYMIZER.pseudonym("000042") != stored["v2"] == PSEUDONYMIZER.pseudonym("42")


def _push_many(root: str, worker: int, count: int, start: str) -> None:
    workdir = Workdir.at(root)
    store = open_store(workdir)
    for k in range(count):
        when = pd.Timestamp(start) + pd.Timedelta(minutes=worker * count + k)
        push_events(
            workdir,
            store,
            pa.table(
                {
                    "event_id": [f"w{worker}-{k}"],
                    "customer_id": ["CUST-000001"],
                    "event_timestamp": pa.array([when], TIMESTAMP),
                    "channel": ["app"],
                    "object": ["page:home"],
                    "action": ["view"],
                    "amount": pa.array([None], pa.float64()),
                    "duration_s": pa.array([None], pa.float64()),
                    "payment_method": pa.array([None], pa.string()),
                }
            ),
            PSEUDONYMIZER,
        )


def test_concurrent_pushes_for_one_customer_lose_no_event(tmp_path):
    # CUST-000001 has only app/web events in its last N, so its amounts are all NaN: this also guards the
    # Feast write path that once turned an all-NaN list into zeros.
    workdir, _ = _cut_world(tmp_path / "concurrent")
    start = load_world_config(workdir).scoring_time + pd.Timedelta(days=40)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_push_many, args=(str(workdir.root), w, 5, start.isoformat())) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=240)
        assert p.exitcode == 0
    events = read_events(workdir.events).to_pandas()
    pushed = events[events.event_id.str.match(r"w\d-\d")]
    assert len(pushed) == 20 and pushed.event_id.is_unique
    online = online_features(open_store(workdir), [pseudonym("CUST-000001")]).iloc[0]
    newest = [f"w{i // 5}-{i % 5}" for i in range(20)][-N:]  # pushed at increasing minutes; N=16 kept
    assert list(online.event_ids) == newest
    _assert_parity(workdir, [pseudonym("CUST-000001")], start + pd.Timedelta(days=1))


def test_incremental_materialize_refreshes_only_what_changed(tmp_path):
    workdir, future = _cut_world(tmp_path / "incremental")
    start = load_world_config(workdir).scoring_time
    t = start + pd.Timedelta(days=3)
    new = future.filter(pc.less(future.column("event_timestamp"), pa.scalar(t, TIMESTAMP)))
    write_events(new, workdir.events, append=True)  # a batch load, not a push
    result = materialize_step(workdir, incremental=True, as_of=t)
    changed = set(new.column("customer_id").to_pylist())
    assert result["mode"] == "incremental" and result["customers_refreshed"] == len(changed) < 60
    customers = sorted(changed)[:15] + sorted(set(PSEUDONYMIZER.pseudonyms(raw_customer_ids(60))) - changed)[:5]
    _assert_parity(workdir, customers, t)  # refreshed customers moved to t; the others had nothing new
    with pytest.raises(ValueError, match="not after the last snapshot"):
        materialize_step(workdir, incremental=True, as_of=t)
