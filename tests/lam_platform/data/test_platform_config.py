"""lam.yaml: the template loads, and every mistake names the key and what is allowed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lam_platform.cli.main import main
from lam_platform.data.clock import ClockError, as_of
from lam_platform.data.platform_config import CONFIG_NAME, PlatformConfig, PlatformConfigError

BASE = """\
events:
  channels:
    shop: {files: [raw/*.csv], who: member, when: at, what: sku, how_value: purchase}
"""


def _load(tmp_path, text: str) -> PlatformConfig:
    (tmp_path / CONFIG_NAME).write_text(text)
    return PlatformConfig.load(tmp_path)


def test_lam_init_writes_a_template_that_loads_and_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--workdir", str(tmp_path)]).exit_code == 0
    config = PlatformConfig.load(tmp_path)
    assert config.consent_mode == "analysis_only" and not config.contact_allowed
    assert set(config.targets) == {"purchase_30d"} and config.target("purchase_30d").horizon.days == 30
    assert config.channel_config().channels["shop"].how_value == "purchase"
    again = runner.invoke(main, ["init", "--workdir", str(tmp_path)])
    assert again.exit_code == 2 and "--force" in again.output


def test_a_workdir_without_a_customer_table_must_say_how_consent_is_handled(tmp_path):
    with pytest.raises(PlatformConfigError, match="consent.*analysis_only"):
        _load(tmp_path, BASE)
    assert _load(tmp_path, BASE + "consent: analysis_only\n").consent_mode == "analysis_only"


@pytest.mark.parametrize(
    "extra, key, allowed",
    [
        ("consent: maybe\n", "consent", "ledger"),
        ("consent: analysis_only\ntargets:\n  buy: {action: purchase, within: soon}\n", "targets.buy", "duration"),
        ("consent: analysis_only\ncall_list: {capacity: lots}\n", "call_list.capacity", "percentage"),
        (
            "consent: analysis_only\ncatalogue: {offers: [a], methods: [b], contact_slots: [25]}\n",
            "catalogue.contact_slots",
            "0..23",
        ),
        ("consent: analysis_only\ncall_lst: {}\n", "call_lst", "unknown key"),
    ],
)
def test_errors_name_the_key_and_the_allowed_values(tmp_path, extra, key, allowed):
    with pytest.raises(PlatformConfigError) as error:
        _load(tmp_path, BASE + extra)
    assert key in str(error.value) and allowed in str(error.value)


def test_a_campaign_log_needs_a_catalogue_and_channel_errors_name_the_channel(tmp_path):
    contacts = (
        "customers: {files: [c.csv], who: id, consent: {column: ok}}\n"
        "campaigns: {files: [k.csv], who: id, contacted_at: at, offer: o, method: m, treatment: t, "
        "outcome: {column: y}}\n"
    )
    with pytest.raises(PlatformConfigError, match="catalogue"):
        _load(tmp_path, BASE + contacts)
    bad_channel = BASE.replace("how_value: purchase", "how_value: purchase, numeric: {channel: kg}")
    with pytest.raises(PlatformConfigError, match="channel 'shop'.*'channel' is not allowed"):
        _load(tmp_path, bad_channel + "consent: analysis_only\n")


def test_a_target_naming_an_action_no_event_has_lists_the_actions_seen(tmp_path):
    config = _load(tmp_path, BASE + "consent: analysis_only\ntargets:\n  buy_30d: {action: buy, within: 30d}\n")
    with pytest.raises(PlatformConfigError, match=r"targets.buy_30d.action.*'buy'.*\['purchase', 'view'\]"):
        config.check_actions({"purchase", "view"})
    config.check_actions({"buy"})


def test_the_clock_needs_a_zone_and_defaults_to_now():
    assert as_of("2010-10-01T00:00:00+01:00").isoformat() == "2010-09-30T23:00:00+00:00"
    assert as_of(None).tzinfo is not None
    for bad in ("2010-10-01T00:00:00", "yesterday"):
        with pytest.raises(ClockError, match="--as-of"):
            as_of(bad)


def test_call_list_rules_must_name_a_channel_and_an_action_the_events_have(tmp_path):
    config = _load(
        tmp_path,
        BASE + "customers: {files: [c.csv], who: id, consent: {column: ok}}\n"
        "catalogue: {offers: [a], methods: [call]}\n",
    )
    with pytest.raises(PlatformConfigError, match=r"call_list.contact_channel.*'telemarketing'.*\['shop'\]"):
        config.check_actions({"purchase"}, {"shop"})
    with pytest.raises(PlatformConfigError, match=r"call_list.conversion_action.*'purchase'"):
        config.check_actions({"order"}, {"telemarketing"})
    config.check_actions({"purchase"}, {"shop", "telemarketing"})
