import pyarrow as pa
import pytest

from lam_platform.events import EVENT_SCHEMA, EventContractError, check_event_table


def _row(**overrides):
    row = {"event_id": "e1", "customer_id": "c1", "event_timestamp": 0, "channel": "app", "object": "page:home",
           "action": "view", "amount": None, "duration_s": None, "payment_method": None}
    row.update(overrides)
    return row


def _table(rows):
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def test_a_valid_table_passes():
    assert check_event_table(_table([_row()])).num_rows == 1


def test_unknown_channel_is_named():
    with pytest.raises(EventContractError, match="carrier_pigeon"):
        check_event_table(_table([_row(channel="carrier_pigeon")]))


def test_missing_column_is_named():
    with pytest.raises(EventContractError, match="action"):
        check_event_table(_table([_row()]).drop_columns(["action"]))
