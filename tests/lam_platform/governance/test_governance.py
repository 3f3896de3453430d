"""Privacy and governance promises, each on a copy of the trained tiny world:
pseudonymous ids everywhere, consent with an as-of time, erasure with a crash midway, retention, the
fairness report over the API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from lam_platform.campaigns.scoring import score
from lam_platform.campaigns.training_data import finetune_frame, training_events
from lam_platform.core.workdir import Workdir
from lam_platform.data.events import read_events
from lam_platform.data.ingest import ingest
from lam_platform.features.online_backends import online_store_for
from lam_platform.features.store import historical_profiles, online_features, open_store
from lam_platform.governance.consent import consenting_customers
from lam_platform.governance.reidentify import export_call_list
from lam_platform.governance.retention import purge_events
from lam_platform.orchestration.demo import simulate_step, world_clock
from lam_platform.orchestration.pipeline import ingest_step, materialize_step
from lam_platform.service.app import create_app
from lam_platform.service.auth import parse_tokens
from lam_platform.service.settings import ServiceSettings
from lam_platform.simulation.policies import legacy_priority
from lam_platform.simulation.raw_export import write_customer_master
from lam_platform.simulation.world import load_world_config, raw_customer_ids
from tests.conftest import PSEUDONYMIZER, TEST_PSEUDONYM_KEY, TINY_CUSTOMERS, TINY_MAX_LEN
from tests.lam_platform.data.test_ingest import NOW, _write_config

TOKEN = "governance-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
RAW_IDS = raw_customer_ids(TINY_CUSTOMERS)
RAW_OF = PSEUDONYMIZER.matcher(RAW_IDS)  # pseudonym -> raw id, as the CRM export step computes it


def _copy(world: Workdir, tmp_path_factory, name: str) -> Workdir:
    """A private copy of the trained world (the Feast repo uses relative paths, so the copy stands alone)."""
    root = tmp_path_factory.mktemp(name) / "w"
    shutil.copytree(world.root, root, ignore=shutil.ignore_patterns("ray_results"))
    return Workdir.at(root)


def _client(world: Workdir) -> TestClient:
    settings = ServiceSettings.from_workdir(world, clock=load_world_config(world).scoring_time)
    return TestClient(
        create_app(
            settings, parse_tokens([{"name": "governance", "token": TOKEN, "scopes": ["score", "call-list"]}], "test")
        )
    )


def _lam(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lam_platform.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )  # the same CLI as the `lam` script


def _files_holding(root, needles: list[str]) -> dict[str, list[str]]:
    """Every file under `root` (hidden ones too) whose bytes, or whose Parquet string cells, hold a needle."""
    found = {}
    pattern = "|".join(needles)
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        hits = {n for n in needles if n.encode() in data}
        if path.suffix == ".parquet":  # compressed pages could hide a string from a byte search
            table = pq.ParquetFile(path).read()
            for column, field in zip(table.columns, table.schema):
                values = column
                if pa.types.is_dictionary(field.type):
                    values = column.cast(field.type.value_type)
                    field = pa.field(field.name, field.type.value_type)
                if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
                    values = pc.list_flatten(values)
                    field = pa.field(field.name, field.type.value_type)
                if pa.types.is_string(field.type) and pc.any(pc.match_substring_regex(values, pattern)).as_py():
                    hits.add(f"parquet column {field.name}")
        if hits:
            found[str(path.relative_to(root))] = sorted(hits)
    return found


@pytest.fixture(scope="module")
def scored_world(trained_world, tmp_path_factory) -> Workdir:
    world = _copy(trained_world, tmp_path_factory, "scored")
    score(world, world_clock(world), capacity=60)
    return world


def test_no_raw_id_and_no_key_reach_any_store_output_log_or_metric(scored_world, tmp_path):
    world = scored_world
    with _client(world) as client:
        ids = pd.read_parquet(world.outputs / "call_list.parquet").customer_id.tolist()[:3]
        answers = [
            client.post("/v1/score", json={"customer_ids": ids, "explain": True}, headers=HEADERS),
            client.post("/v1/call-list", json={"capacity": 5, "explain": True}, headers=HEADERS),
            client.get("/v1/fairness", headers=HEADERS),
            client.get("/metrics"),
        ]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert not any("CUST-" in a.text for a in answers)
    # Ingestion, quarantine included, into a workdir of its own: raw ids in, pseudonyms stored.
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.csv").write_text(
        "id,member,at,sku,kind,price,email\n"  # email: a column no mapping reads
        "e1,CUST-000007,2026-01-01T10:00:00Z,sku1,view,1,CUST-000007@example.com\n"
        "e2,CUST-000008,yesterday,sku1,view,1,CUST-000008@example.com\n"
    )
    ingested = Workdir.at(tmp_path / "ingested")
    report = ingest(_write_config(tmp_path), ingested, PSEUDONYMIZER, now=NOW)
    assert (report.accepted, report.quarantined) == (1, 1)
    # The re-identifying export: the one output with raw ids, written outside the workdir and only with the key.
    master = tmp_path / "crm.csv"
    write_customer_master(RAW_IDS, master)
    refused = _lam(
        "export-call-list",
        "--workdir",
        str(world.root),
        "--customers",
        str(master),
        "--out",
        str(world.outputs / "calls.csv"),
    )
    assert refused.returncode != 0 and "inside the workdir" in refused.stderr
    exported = _lam(
        "export-call-list",
        "--workdir",
        str(world.root),
        "--customers",
        str(master),
        "--out",
        str(tmp_path / "calls.csv"),
        "--json",
    )
    assert exported.returncode == 0, exported.stderr
    assert "CUST-" not in exported.stdout + exported.stderr
    assert "calls.csv" in _files_holding(tmp_path, ["CUST-"])  # the scan below does find raw ids where they are
    calls = pd.read_csv(tmp_path / "calls.csv")
    stored = pd.read_parquet(world.outputs / "call_list.parquet")
    assert calls.raw_customer_id.tolist() == [RAW_OF[c] for c in stored.customer_id]  # every one, in rank order
    assert calls.customer_ref.tolist() == stored.customer_id.tolist()
    assert (tmp_path / "calls.csv").stat().st_mode & 0o077 == 0  # readable by its owner only
    exports = [
        e for e in map(json.loads, world.governance_log.read_text().splitlines()) if e["action"] == "export-call-list"
    ]
    assert exports and exports[-1]["exported"] == len(calls) and "CUST-" not in json.dumps(exports)
    without_key = {k: v for k, v in os.environ.items() if k != "LAM_PSEUDONYM_KEY"}
    no_key = subprocess.run(
        [
            sys.executable,
            "-m",
            "lam_platform.cli.main",
            "export-call-list",
            "--workdir",
            str(world.root),
            "--customers",
            str(master),
            "--out",
            str(tmp_path / "x.csv"),
        ],
        capture_output=True,
        text=True,
        env=without_key,
        timeout=300,
    )
    assert no_key.returncode != 0 and "LAM_PSEUDONYM_KEY" in no_key.stderr
    # Now scan everything the platform wrote: events, Feast (registry, SQLite online store), artifacts,
    # training sets, call lists, scores, audit log, quarantine.
    for root in (world.root, ingested.root):
        assert _files_holding(root, ["CUST-", TEST_PSEUDONYM_KEY]) == {}
    assert (world.root / "audit" / "api.jsonl").exists() and any(ingested.quarantine.iterdir())


def test_a_withdrawal_at_t_reaches_training_sets_scores_call_lists_and_the_api(trained_world, tmp_path_factory):
    world = _copy(trained_world, tmp_path_factory, "consent")
    score(world, world_clock(world), capacity=60)
    call_list = pd.read_parquet(world.outputs / "call_list.parquet")
    log = pd.read_parquet(world.campaign_log)
    who = next(c for c in call_list.customer_id if c in set(log.customer_id))
    other = next(c for c in call_list.customer_id if c != who)
    store = open_store(world)
    assert online_store_for(store).holds(who, ("lam_scores",))
    t = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(minutes=1)

    future = _lam("consent", "--workdir", str(world.root), "--withdraw", RAW_OF[who], "--as-of", "2099-01-01T00:00Z")
    assert future.returncode != 0 and "in the future" in future.stderr
    withdrawn = _lam(
        "consent", "--workdir", str(world.root), "--withdraw", RAW_OF[who], "--as-of", t.isoformat(), "--json"
    )
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert json.loads(withdrawn.stdout.splitlines()[-1])["recorded"] == 1

    # The online path reads the current flag at once: no materialization in between.
    with _client(world) as client:
        scored = client.post("/v1/score", json={"customer_ids": [who, other]}, headers=HEADERS).json()["customers"]
        listed = client.post(
            "/v1/call-list", json={"customer_ids": [who, other], "capacity": 2}, headers=HEADERS
        ).json()
    assert scored[0]["status"] == "excluded" and scored[0]["excluded_reason"] == "no_consent"
    assert scored[1]["status"] != "excluded"
    assert who not in [e["customer_id"] for e in listed["call_list"]] and listed["excluded"]["no_consent"] == 1
    assert not online_store_for(store).holds(who, ("lam_scores",))  # its published score is gone
    assert online_store_for(store).holds(other, ("lam_scores",))

    # The stored list was scored before t: the export for the callers leaves the customer out now.
    master = tmp_path_factory.mktemp("crm") / "crm.csv"
    write_customer_master(RAW_IDS, master)
    out = master.with_name("calls.csv")
    result = export_call_list(world, PSEUDONYMIZER, master, out)
    assert result["left_out_no_consent_now"] == 1 and RAW_OF[who] not in set(pd.read_csv(out).raw_customer_id)

    # Scoring from t on, and after a full re-materialization, leaves the customer out.
    score(world, world_clock(world), capacity=60)
    assert who not in set(pd.read_parquet(world.outputs / "call_list.parquet").customer_id)
    materialize_step(world, max_len=TINY_MAX_LEN, as_of=world_clock(world))
    assert not online_features(open_store(world), [who]).consent_marketing.iloc[0]

    # Training sets built after t: no events and no campaign rows of the customer, although the
    # point-in-time profile at the old contacts still says consent was given then.
    ledger = pd.read_parquet(world.profiles)
    eligible = consenting_customers(ledger)
    until = load_world_config(world).scoring_time
    assert who not in eligible and other in eligible
    assert who not in set(training_events(world, until, eligible).column("customer_id").to_pylist())
    rows, _, _, dropped = finetune_frame(open_store(world), read_events(world.events), log, TINY_MAX_LEN, eligible)
    assert who not in set(rows.customer_id) and dropped >= (log.customer_id == who).sum() > 0
    earlier = log[log.customer_id == who][["customer_id", "event_timestamp"]]
    assert historical_profiles(open_store(world), earlier).consent_marketing.all()


def test_forget_removes_customers_everywhere_and_a_crash_midway_resumes(trained_world, tmp_path_factory):
    world = _copy(trained_world, tmp_path_factory, "forget")
    score(world, world_clock(world), capacity=60)
    contacted = set(pd.read_parquet(world.campaign_log).customer_id)
    listed = pd.read_parquet(world.outputs / "call_list.parquet").customer_id
    victims = sorted(c for c in listed if c in contacted)[:2]
    events_before = read_events(world.events).to_pandas()
    # They are everywhere to begin with: events, profiles, campaign log, call list, online sequences and scores.
    assert len(victims) == 2 and set(victims) <= set(events_before.customer_id)
    assert set(victims) <= set(pd.read_parquet(world.profiles).customer_id)
    assert all(
        online_store_for(open_store(world)).holds(v, (view,))
        for v in victims
        for view in ("customer_event_sequence", "customer_profile", "lam_scores")
    )

    crash = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys; from lam_platform.governance.erasure import forget; "
                "from lam_platform.core.workdir import Workdir; "
                f"forget(Workdir.at({str(world.root)!r}), {victims!r}, crash_after_files=5)"
            ),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert crash.returncode == 137, crash.stderr
    # Killed midway: every file is whole and readable, some still hold the customers, the request is pending.
    for path in world.root.rglob("*.parquet"):
        pq.ParquetFile(path).read()
    assert len(read_events(world.events)) < len(events_before)
    assert _files_holding(world.data, victims)
    pending = json.loads(_lam("forget", "--workdir", str(world.root), "--resume", "list", "--json").stdout)["pending"]
    assert len(pending) == 1

    resumed = _lam("forget", "--workdir", str(world.root), "--resume", pending[0], "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1])["status"] == "complete"
    # Nothing anywhere holds them: stores, outputs, the SQLite online store's pages, the journal, the logs.
    assert _files_holding(world.root, victims) == {}
    assert not any(online_store_for(open_store(world)).holds(v) for v in victims)
    events_after = read_events(world.events).to_pandas()
    assert len(events_after) == (~events_before.customer_id.isin(victims)).sum()
    until = load_world_config(world).scoring_time
    assert not set(victims) & set(
        training_events(world, until, consenting_customers(pd.read_parquet(world.profiles)))
        .column("customer_id")
        .to_pylist()
    )
    governance = [json.loads(line) for line in world.governance_log.read_text().splitlines()]
    assert [(e["action"], e["status"], e["request"]) for e in governance] == [
        ("forget", "started", pending[0]),
        ("forget", "complete", pending[0]),
    ]


def test_purge_keeps_exactly_the_retention_window(tmp_path):
    world = Workdir.at(tmp_path / "w")
    simulate_step(world, customers=30, seed=6, pseudonymizer=PSEUDONYMIZER)
    ingest_step(world, PSEUDONYMIZER)
    before = read_events(world.events).to_pandas()
    now = load_world_config(world).scoring_time
    result = purge_events(world, retention_days=45, now=now)
    cutoff = now - pd.Timedelta(days=45)
    after = read_events(world.events).to_pandas()
    assert after.event_timestamp.min() >= cutoff
    assert set(after.event_id) == set(before.event_id[before.event_timestamp >= cutoff])
    assert result["events_removed"] == (before.event_timestamp < cutoff).sum() > 0
    assert purge_events(world, retention_days=45, now=now)["events_removed"] == 0
    with pytest.raises(ValueError, match="positive"):
        purge_events(world, retention_days=0, now=now)


def test_the_fairness_report_is_served_as_json_and_flags_a_biased_legacy_list(scored_world, tmp_path_factory):
    world = _copy(scored_world, tmp_path_factory, "fairness")
    profiles = pd.read_parquet(world.profiles)
    eligible = profiles[profiles.consent_marketing.astype(bool)].reset_index(drop=True)
    priority = legacy_priority(eligible, 0.0) + 1.0 * (eligible.gender == "m").to_numpy()  # injected: men first
    chosen = eligible.customer_id.to_numpy()[np.argsort(-priority, kind="stable")[:60]]
    pd.DataFrame(
        {
            "rank": np.arange(1, 61),
            "customer_id": chosen,
            "offer": "plan_change",
            "method": "sms",
            "p_order_if_called": 0.1,
        }
    ).to_parquet(world.outputs / "call_list.parquet", index=False)
    with _client(world) as client:
        assert client.get("/v1/fairness").status_code == 401
        body = client.get("/v1/fairness", params={"calibration_margin": 0.05}, headers=HEADERS).json()
        assert client.get("/v1/fairness", params={"calibration_margin": 2}, headers=HEADERS).status_code == 422
    gender = {g["group"]: g for g in body["attributes"]["gender"]}
    assert gender["f"]["four_fifths_flag"] and not gender["m"]["four_fifths_flag"]
    assert any(f["kind"] == "four_fifths" and f["group"] == "f" for f in body["flags"])


@pytest.mark.e2e
@pytest.mark.drill
def test_a_forgotten_customer_stays_gone_through_reingest_push_close_loop_materialize_and_finetune(
    trained_world, tmp_path_factory
):
    """forget, then re-ingest every source, push again, close-loop the old export, re-materialize and
    re-finetune: the customer is nowhere (every file's bytes and Parquet cells, the online store)."""
    from lam_platform.features.streaming import push_events
    from lam_platform.governance.erasure import forget
    from lam_platform.orchestration.closed_loop import close_loop
    from lam_platform.orchestration.pipeline import finetune_step
    from lam_platform.ray_jobs.job_config import JobConfig
    from tests.conftest import TINY_JOB

    world = _copy(trained_world, tmp_path_factory, "stays-gone")
    sources = trained_world.root.with_name(f"{trained_world.root.name}-sources")
    shutil.copytree(sources, world.root.parent / sources.name)  # lam.yaml names them relative to the workdir
    score(world, world_clock(world), capacity=30)
    master = world.root.parent / "crm.csv"
    write_customer_master(RAW_IDS, master)
    export = world.root.parent / "calls.csv"
    export_call_list(world, PSEUDONYMIZER, master, export)
    calls = pd.read_csv(export, dtype=str)
    victim = calls.customer_ref.iloc[0]
    raw_id = RAW_OF[victim]

    assert forget(world, [victim])["status"] == "complete"
    reingested = ingest_step(world, PSEUDONYMIZER)
    assert reingested["events"]["accepted"] == 0 and reingested["events"]["rows_in"] > 0
    assert json.loads(world.governance_log.read_text().splitlines()[-1])["action"] == "forget"
    event = (
        read_events(trained_world.events)
        .filter(pc.equal(read_events(trained_world.events).column("customer_id"), victim))
        .slice(0, 1)
        .to_pandas()
        .assign(customer_id=raw_id, event_id="again-1")
    )
    pushed = push_events(world, open_store(world), event, PSEUDONYMIZER)
    assert pushed["suppressed"] == 1 and pushed["new"] == 0
    called = calls.assign(
        event_timestamp=world_clock(world).isoformat(), campaign_id="old-export", treatment=1, outcome=1
    )
    called.to_csv(world.root.parent / "called.csv", index=False)
    job = JobConfig.load(TINY_JOB)
    close_loop(world, world.root.parent / "called.csv", job)
    materialize_step(world, max_len=TINY_MAX_LEN, as_of=world_clock(world))
    finetune_step(world, TINY_JOB, as_of=world_clock(world))

    assert _files_holding(world.root, [victim, raw_id]) == {}
    assert not online_store_for(open_store(world)).holds(victim)
    assert victim not in set(pd.read_parquet(world.campaign_log).customer_id)
