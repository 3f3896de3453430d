"""`lam init`'s template: the commented lam.yaml a team starts from, and writing it into a workdir.

Every section it shows is declared in `lam_platform.data.platform_config` (which loads and checks it).

Run: `lam init --workdir W`
"""

from __future__ import annotations

from pathlib import Path

from lam_platform.data.platform_config import CONFIG_NAME, PlatformConfigError

TEMPLATE = """\
# lam.yaml: what this workdir's data is and how the platform may use it (`lam init` wrote this template).
# Paths are relative to this file. Every step takes --as-of (the clock; default: now).

events:                       # raw event tables -> the 4W1H event stream (`lam ingest`)
  max_future: 1d              # reject timestamps later than ingestion time + this
  max_string_length: 256
  channels:
    shop:                     # one entry per source table (or per channel)
      files: [raw/orders/*.csv]         # CSV or Parquet globs
      who: customer_no                  # -> customer_id (pseudonymized on entry)
      when: ordered_at                  # -> event_timestamp
      time_zone: Europe/London          # for timestamps without a zone
      what: sku                         # -> object
      how_value: purchase               # one action for every row (or `how: <column>`)
      numeric: {amount: line_total}     # event attributes you declare: name <- source column; numbers are
#     categorical: {payment_method: pay_type}   # summed per channel in the aggregates, strings embedded

# Customers: profile fields and consent. Without this table, say how consent is handled:
#   consent: analysis_only   # train and score for analysis; no contact list is ever built
consent: analysis_only
# customers:
#   files: [raw/customers.csv]
#   who: customer_no
#   time_zone: Europe/London
#   profile: {age_band: categorical, region: categorical, tenure_months: numeric}
#   consent: {column: marketing_opt_in, recorded_at: updated_at}

# Campaign contact log (optional): who was contacted when, with what and how, treated or control.
# campaigns:
#   files: [raw/contacts.csv]
#   who: customer_no
#   contacted_at: called_at
#   offer: offer
#   method: channel
#   treatment: treated            # 1 = contacted, 0 = held-out control
#   propensity: p_selected        # optional: the logged chance of this assignment
#   outcome: {action: purchase, within: 14d}   # or {column: ordered}; counts only once mature
# catalogue:                      # what a call list may choose from
#   offers: [spring_sale]
#   methods: [outbound_call, sms]
#   contact_slots: [10]           # hours of the day

targets:                          # labels derived from events: one fine-tune head each
  purchase_30d: {action: purchase, within: 30d}
# churn_60d: {no_event_within: 60d}

call_list:                        # the rules every call list follows (API and batch)
  capacity: 5%                    # calls, or a share of the customers
  contact_channel: telemarketing  # events on this channel count as contacts (cool-down)
  conversion_action: purchase     # ... and this action as a conversion
  cooldown_days: 14
  converted_within_days: 30
"""


def write_template(workdir_root: Path, force: bool = False) -> Path:
    """Write the commented template to `workdir_root/lam.yaml` (never over an existing one unless forced)."""
    path = Path(workdir_root) / CONFIG_NAME
    if path.exists() and not force:
        raise PlatformConfigError(f"{path} exists; edit it, or pass --force to replace it with the template")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE)
    return path
