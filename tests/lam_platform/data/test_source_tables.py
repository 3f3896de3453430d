"""Customers and campaign-log ingestion: conservation, quarantine with reasons, idempotent re-runs, pseudonyms,
and outcomes derived from events only once mature."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from lam_platform.core.workdir import Workdir
from lam_platform.data.campaign_log import campaign_outcomes, read_campaign_log
from lam_platform.data.events import CORE_SCHEMA as EVENT_SCHEMA
from lam_platform.data.ingest_all import ingest_sources
from lam_platform.data.platform_config import PlatformConfig
from lam_platform.data.source_rows import SourceSchemaError
from tests.conftest import PSEUDONYMIZER, pseudonym

NOW = pd.Timestamp("2026-06-01T00:00:00+00:00")
CONFIG = """\
customers:
  files: [raw/customers.csv]
  who: member
  profile: {{region: categorical, tenure: numeric}}
  consent: {{column: {consent}, recorded_at: updated}}
campaigns:
  files: [raw/contacts.csv]
  who: member
  contacted_at: called
  offer: offer
  method: how
  treatment: treated
  propensity: p
  outcome: {outcome}
catalogue: {{offers: [upgrade, plan], methods: [call, sms]}}
"""
CUSTOMERS = """member,region,tenure,opt_in,updated
A1,north,12,yes,2026-01-01T00:00:00Z
A2,south,,no,2026-01-01T00:00:00Z
A3,east,7,,2026-01-01T00:00:00Z
A4,west,many,yes,2026-01-01T00:00:00Z
A5,west,3,perhaps,2026-01-01T00:00:00Z
,west,3,yes,2026-01-01T00:00:00Z
"""
CONTACTS = """member,called,offer,how,treated,p,ordered
A1,2026-03-01T10:00:00Z,upgrade,call,1,0.5,1
A2,2026-03-01T10:00:00Z,plan,sms,0,0.5,0
A3,2026-03-01T10:00:00Z,holiday,sms,1,0.5,0
A1,2026-03-02T10:00:00Z,plan,fax,1,0.5,0
A1,2026-03-03T10:00:00Z,plan,sms,1,1.5,0
A1,2026-05-30T10:00:00Z,plan,sms,1,0.5,1
"""


def _workdir(tmp_path, consent="opt_in", outcome="{column: ordered}") -> Workdir:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "customers.csv").write_text(CUSTOMERS)
    (tmp_path / "raw" / "contacts.csv").write_text(CONTACTS)
    (tmp_path / "lam.yaml").write_text(CONFIG.format(consent=consent, outcome=outcome))
    return Workdir.at(tmp_path)


def test_customers_and_contacts_conserve_rows_quarantine_with_reasons_and_rerun_adds_nothing(tmp_path):
    workdir = _workdir(tmp_path)
    first = ingest_sources(workdir, PSEUDONYMIZER)
    customers, contacts = first["customers"], first["campaigns"]
    assert customers["balanced"] and customers["rows_in"] == 6 and customers["accepted"] == 3
    assert customers["by_reason"] == {"non_numeric": 1, "not_boolean": 1, "missing_required_field": 1}
    assert contacts["balanced"] and contacts["rows_in"] == 6 and contacts["accepted"] == 3
    assert contacts["by_reason"] == {
        "offer_not_in_catalogue": 1,
        "method_not_in_catalogue": 1,
        "propensity_out_of_range": 1,
    }
    quarantined = pd.read_parquet(contacts["quarantine_file"])
    assert "holiday" in quarantined.detail.iloc[0] and "A1" not in quarantined.raw.str.cat()  # pseudonyms only

    profiles = pd.read_parquet(workdir.profiles).set_index("customer_id")
    assert set(profiles.index) == {pseudonym("A1"), pseudonym("A2"), pseudonym("A3")}
    assert profiles.consent_marketing[pseudonym("A1")] and not profiles.consent_marketing[pseudonym("A2")]
    assert pd.isna(profiles.consent_marketing[pseudonym("A3")])  # unknown stays unknown: never contacted
    assert pd.isna(profiles.tenure[pseudonym("A2")]) and profiles.tenure[pseudonym("A1")] == 12.0

    second = ingest_sources(workdir, PSEUDONYMIZER)
    assert second["customers"]["accepted"] == 0 and second["customers"]["duplicates"] == 3
    assert second["campaigns"]["accepted"] == 0 and second["campaigns"]["duplicates"] == 3
    assert len(read_campaign_log(workdir)) == 3


def test_a_customers_file_without_the_declared_consent_column_stops_naming_key_and_columns(tmp_path):
    workdir = _workdir(tmp_path, consent="marketing_ok")
    with pytest.raises(SourceSchemaError, match=r"'marketing_ok' \(customers.consent.column\).*opt_in"):
        ingest_sources(workdir, PSEUDONYMIZER)
    assert not workdir.profiles.exists()  # nothing of the file was taken


def test_an_outcome_derived_from_events_counts_only_once_mature(tmp_path):
    workdir = _workdir(tmp_path, outcome="{action: purchase, within: 14d}")
    ingest_sources(workdir, PSEUDONYMIZER)
    platform = PlatformConfig.load(workdir.root)
    log = read_campaign_log(workdir)
    assert log.outcome.isna().all()  # derived later, from events
    events = pa.Table.from_pylist(
        [
            {
                "event_id": "e1",
                "customer_id": pseudonym("A1"),
                "event_timestamp": pd.Timestamp("2026-03-05T09:00:00Z"),
                "channel": "shop",
                "object": "phone",
                "action": "purchase",
            },
            {
                "event_id": "e2",
                "customer_id": pseudonym("A2"),
                "event_timestamp": pd.Timestamp("2026-03-20T09:00:00Z"),
                "channel": "shop",
                "object": "phone",
                "action": "purchase",
            },
        ],
        schema=EVENT_SCHEMA,
    )
    known = campaign_outcomes(log, platform.campaigns, events, NOW)
    # A1's March contact converted within 14 days; A2 bought 19 days later (no); A1's May contact is not mature.
    assert dict(zip(known.customer_id, known.outcome)) == {pseudonym("A1"): 1.0, pseudonym("A2"): 0.0}
    assert len(campaign_outcomes(log, platform.campaigns, events, pd.Timestamp("2026-06-20T00:00:00Z"))) == 3


def test_reingesting_an_undated_customer_table_never_undoes_a_recorded_withdrawal(tmp_path):
    from lam_platform.data.profile_ledger import write_profiles
    from lam_platform.governance.consent import current_profiles

    workdir = _workdir(tmp_path)
    config = (tmp_path / "lam.yaml").read_text().replace(", recorded_at: updated", "")
    (tmp_path / "lam.yaml").write_text(config)
    ingest_sources(workdir, PSEUDONYMIZER)
    ledger = pd.read_parquet(workdir.profiles)
    withdrawal = ledger[ledger.customer_id == pseudonym("A1")].assign(
        consent_marketing=False, origin="lam consent", event_timestamp=pd.Timestamp.now(tz="UTC")
    )
    write_profiles(pd.concat([ledger, withdrawal], ignore_index=True), workdir)
    again = ingest_sources(workdir, PSEUDONYMIZER)["customers"]
    assert again["accepted"] == 0 and again["balanced"]  # the unchanged source adds nothing ...
    current = current_profiles(pd.read_parquet(workdir.profiles)).set_index("customer_id")
    assert not current.consent_marketing[pseudonym("A1")]  # ... and A1 stays withdrawn
    # A real change in the source (another region) is taken, with the recorded withdrawal kept.
    (tmp_path / "raw" / "customers.csv").write_text(CUSTOMERS.replace("A1,north", "A1,south"))
    changed = ingest_sources(workdir, PSEUDONYMIZER)["customers"]
    assert changed["accepted"] == 1
    current = current_profiles(pd.read_parquet(workdir.profiles)).set_index("customer_id")
    assert current.region[pseudonym("A1")] == "south" and not current.consent_marketing[pseudonym("A1")]


def test_absolute_globs_are_read_and_an_unreadable_file_is_reported_while_the_rest_is_taken(tmp_path):
    workdir = _workdir(tmp_path)
    (tmp_path / "raw" / "broken.parquet").write_bytes(b"not parquet")
    config = (
        (tmp_path / "lam.yaml")
        .read_text()
        .replace("files: [raw/customers.csv]", f"files: [{tmp_path / 'raw' / 'customers.csv'}, raw/broken.parquet]")
    )
    (tmp_path / "lam.yaml").write_text(config)
    customers = ingest_sources(workdir, PSEUDONYMIZER)["customers"]
    assert customers["accepted"] == 3 and customers["rows_in"] == 6 and customers["balanced"]
    assert list(customers["unreadable_files"]) == [str(tmp_path / "raw" / "broken.parquet")]


def test_the_campaign_holdout_needs_randomized_controls_after_t_and_a_head_trained_by_t(tmp_path):
    from lam_platform.evaluation.holdout import campaign_holdout

    workdir = _workdir(tmp_path)
    ingest_sources(workdir, PSEUDONYMIZER)
    platform = PlatformConfig.load(workdir.root)
    ledger = pd.read_parquet(workdir.profiles)
    events = pa.Table.from_pylist(
        [
            {
                "event_id": "e1",
                "customer_id": pseudonym("A1"),
                "event_timestamp": pd.Timestamp("2026-02-05T09:00:00Z"),
                "channel": "shop",
                "object": "phone",
                "action": "purchase",
            }
        ],
        schema=EVENT_SCHEMA,
    )
    customers = ledger.customer_id.tolist()
    # After mid-March only A1's treated May contact is logged: nothing to compare it with.
    with pytest.raises(ValueError, match="no randomized controls.*1 contacts.*0 of them controls"):
        campaign_holdout(workdir, platform, pd.Timestamp("2026-03-15T00:00:00Z"), events, ledger, customers)
    # From February both arms are there; the head must have been trained by then.
    with pytest.raises(FileNotFoundError, match="no model with a 'campaign_response' head"):
        campaign_holdout(workdir, platform, pd.Timestamp("2026-02-01T00:00:00Z"), events, ledger, customers)


def test_a_forgotten_customer_is_not_ingested_again_from_the_same_sources(tmp_path):
    from lam_platform.governance.erasure import forget

    workdir = _workdir(tmp_path)
    ingest_sources(workdir, PSEUDONYMIZER)
    forget(workdir, [pseudonym("A1")])
    assert pseudonym("A1") not in workdir.erased_customers.read_text()  # a digest, not the pseudonym
    again = ingest_sources(workdir, PSEUDONYMIZER)
    customers, contacts = again["customers"], again["campaigns"]
    # A1's customer row and all four of A1's contact rows (two valid, two invalid) are suppressed: neither
    # taken in nor quarantined; everyone else's rows are counted as before.
    assert (customers["suppressed"], customers["duplicates"], customers["accepted"]) == (1, 2, 0)
    assert (contacts["suppressed"], contacts["duplicates"], contacts["accepted"]) == (4, 1, 0)
    assert customers["balanced"] and contacts["balanced"]
    assert pseudonym("A1") not in set(pd.read_parquet(workdir.profiles).customer_id)
    assert pseudonym("A1") not in set(read_campaign_log(workdir).customer_id)
    quarantine = pd.concat(pd.read_parquet(p) for p in workdir.quarantine.glob("*.parquet"))
    assert not quarantine.raw.str.contains(pseudonym("A1")).any()
