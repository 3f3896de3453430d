"""Raw cells are read in Arrow with the semantics of the Python and pandas code they replaced: whitespace as
str.strip() sees it, CSV text as pandas reads it (Arrow's reader only where the two cannot differ), ISO 8601
timestamps as pandas parses them."""

import sys

import pandas as pd
import pytest

from lam_platform.data.raw_tables import (
    WHITESPACE,
    number_array,
    parse_timestamps,
    read_raw,
    read_raw_batches,
    text_array,
    text_cells,
)


class _Spec:
    timestamp_format = None
    time_zone = None


def test_trimming_removes_exactly_what_str_strip_removes():
    assert set(WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    cells = ["  a b ", "\x1c x\x85", "\u3000", "", None, "x\u200by", "\t\n"]
    expected = [c.strip() or None if c is not None else None for c in cells]
    assert text_cells(pd.Series(cells, dtype=object)).tolist() == expected
    assert text_array(pd.Series(cells, dtype="string")).to_pylist() == expected
    assert text_cells(pd.Series([1.5, float("nan"), 1e16])).tolist() == ["1.5", None, "1e+16"]  # repr of numbers


def test_numbers_parse_only_plain_ascii_numerals():
    cells = text_array(pd.Series(["1", " 2.50 ", "+.5", "1e3", "1,5", "ten", "١٢", "", "-0.0"], dtype=object))
    parsed = number_array(cells).tolist()
    assert parsed[:4] == [1.0, 2.5, 0.5, 1000.0] and parsed[8] == 0.0
    assert all(pd.isna(v) for v in parsed[4:8])  # Arabic-Indic digits: not a number (they used to crash)


@pytest.mark.parametrize(
    "text, arrow",
    [
        ("a,b,c\n1, 2 ,3\r\n\n4,5,6\n", True),
        ("\ufeffa,b,c\n1,2,3\n", True),
        ('a,b,c\n"x, y",2,3\n', False),  # quoted: pandas (Arrow reads an unterminated quote to the end)
        ("a,b,c\n1,2\n", False),  # a short line: pandas pads it
        ("a,a,c\n1,2,3\n", False),  # a repeated name: pandas renames it
        ("a,b,c\n1,\x002,3\n", False),
    ],
)
def test_a_csv_reads_the_same_whichever_reader_takes_it(tmp_path, text, arrow):
    path = tmp_path / "t.csv"
    path.write_text(text)
    fast, plain = read_raw(path, arrow_text=True), read_raw(path)
    assert isinstance(fast.dtypes.iloc[0], pd.ArrowDtype) == arrow  # which reader took it
    assert list(fast.columns) == list(plain.columns)
    pd.testing.assert_frame_equal(fast.astype(object), plain.astype(object))
    for arrow_text in (True, False):  # a row at a time: the same rows and line numbers
        batches = list(read_raw_batches(path, batch_rows=1, arrow_text=arrow_text))
        assert all(len(b) == 1 for b in batches)
        joined = pd.concat(batches, ignore_index=True).astype(object)
        pd.testing.assert_frame_equal(joined, plain.astype(object))


def test_zoned_iso_timestamps_parse_as_pandas_parses_them():
    cells = [
        "2026-01-11T09:52:40.654532Z",
        "2026-03-30T19:07:45.833738+0900",
        "2026-01-01 10:00:00.5-01:30",
        "1969-12-31T23:59:59+23:59",
        "1700-01-01T00:00:00Z",
        "2259-12-31T23:59:59Z",
    ]
    for values in (cells, [*cells, "2026-02-30T00:00:00Z"], [*cells, "2262-01-01T00:00:00Z", "2263-01-01T00:00:00Z"]):
        parsed, unparsable, naive = parse_timestamps(pd.Series(values, dtype=object), _Spec())
        expected = pd.to_datetime(pd.Series(values), utc=True, format="ISO8601", errors="coerce")
        pd.testing.assert_series_equal(parsed, expected.astype("datetime64[us, UTC]"))
        assert unparsable.tolist() == expected.isna().tolist() and not naive.any()


def test_large_files_are_read_in_batches_that_add_up_to_the_whole(tmp_path, monkeypatch):
    from lam_platform.data import raw_tables

    frame = pd.DataFrame({"customer": [f"c{i}" for i in range(10)], "amount": [f"{i}.5" for i in range(10)]})
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=4)
    parquet = list(read_raw_batches(tmp_path / "t.parquet", batch_rows=3))
    assert [len(b) for b in parquet] == [3, 3, 3, 1]
    pd.testing.assert_frame_equal(pd.concat(parquet, ignore_index=True), read_raw(tmp_path / "t.parquet"))
    # Arrow reads blocks of a few lines; the last line is short, which Arrow rejects and pandas pads: pandas
    # reads on from the first row Arrow did not give, and the rows and their line numbers are the same.
    monkeypatch.setattr(raw_tables, "ARROW_BLOCK_BYTES", 64)
    (tmp_path / "t.csv").write_text(frame.to_csv(index=False) + "c10\n")
    fast = list(read_raw_batches(tmp_path / "t.csv", batch_rows=4, arrow_text=True))
    assert [len(b) for b in fast] == [4, 4, 3] and isinstance(fast[0].dtypes.iloc[0], pd.ArrowDtype)
    joined = pd.concat(fast, ignore_index=True).astype(object)
    pd.testing.assert_frame_equal(joined, read_raw(tmp_path / "t.csv").astype(object))
    assert joined._line.tolist() == list(range(2, 13)) and joined.amount.iloc[-1] == ""
    (tmp_path / "empty.csv").write_text("customer,amount\n")
    [empty] = read_raw_batches(tmp_path / "empty.csv", batch_rows=4, arrow_text=True)
    assert list(empty.columns) == ["customer", "amount", "_line"] and empty.empty


def test_parquet_batches_type_a_column_as_the_whole_file_does(tmp_path):
    """An integer column with a null in one row group reads as float64 in every batch, as in a whole read, and a
    boolean one as object: a cell's text (and so a derived event id) does not depend on where a batch ends."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            # two leaf columns in one: the statistics of the columns after it are found by path, not position
            "where": pa.array([{"x": 1, "y": "a"}, {"x": 2, "y": "b"}, {"x": 3, "y": "c"}, {"x": 4, "y": "d"}]),
            "id": pa.array([1, 2, None, 4], pa.int64()),
            "flag": pa.array([True, False, None, True]),
        }
    )
    pq.write_table(table, tmp_path / "n.parquet", row_group_size=2)
    whole = read_raw(tmp_path / "n.parquet")
    batches = list(read_raw_batches(tmp_path / "n.parquet", batch_rows=2))
    assert [b.id.dtype for b in batches] == [whole.id.dtype] * 2 and all(b.flag.dtype == object for b in batches)
    joined = pd.concat(batches, ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole)
    assert text_array(joined.id).to_pylist() == text_array(whole.id).to_pylist() == ["1.0", "2.0", None, "4.0"]
