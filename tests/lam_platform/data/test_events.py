import numpy as np
import pyarrow as pa
import pytest

from lam_platform.data.events import EventAttributes, EventContractError, check_event_table, read_events, write_events

ATTRIBUTES = EventAttributes(numeric=("amount", "duration_s"), categorical=("payment_method",))
EVENT_SCHEMA = ATTRIBUTES.schema()


def _row(**overrides):
    row = {
        "event_id": "e1",
        "customer_id": "c1",
        "event_timestamp": 0,
        "channel": "app",
        "object": "page:home",
        "action": "view",
        "amount": None,
        "duration_s": None,
        "payment_method": None,
    }
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


def test_an_undeclared_column_is_named():
    with pytest.raises(EventContractError, match="weight_kg"):
        check_event_table(_table([_row()]).append_column("weight_kg", pa.array([1.0])), attributes=ATTRIBUTES)


def test_attribute_names_are_checked():
    with pytest.raises(EventContractError, match="'Weight-kg' is not allowed"):
        EventAttributes(numeric=("Weight-kg",))
    with pytest.raises(EventContractError, match="both numeric and categorical"):
        EventAttributes(numeric=("size",)).union(EventAttributes(categorical=("size",)))


def test_the_table_records_its_attributes_and_old_files_read_a_later_one_as_missing(tmp_path):
    root = tmp_path / "events"
    write_events(_table([_row()]).select(EVENT_SCHEMA.names[:7]), root)  # amount only
    assert EventAttributes.of_events(root) == EventAttributes(numeric=("amount",))
    later = EventAttributes(numeric=("amount", "quantity"), categorical=("payment_method",))
    rows = pa.Table.from_pylist([_row(event_id="e2", quantity=3.0, payment_method="card")], schema=None)
    write_events(rows.select(later.schema().names), root, append=True, attributes=later)
    assert EventAttributes.of_events(root) == later
    table = read_events(root).to_pandas().set_index("event_id")
    assert table.loc["e2", "quantity"] == 3.0 and table.loc["e2", "payment_method"] == "card"
    assert np.isnan(table.loc["e1", "quantity"]) and table.loc["e1", "payment_method"] is None
