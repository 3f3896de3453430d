"""Raw source tables: reading one file, and parsing its cells as text, numbers and timestamps.

Shared by every ingestion (events, the customer table, the contact log): a cell is read the same way
whichever table it comes from, so a value accepted in one is accepted in the others. The work is done
on Arrow arrays (`text_array`, `number_array`, `regex_mask`): a Python call per cell was most of the
cost of ingesting a large file. Each keeps the semantics of the Python it replaced, which the pandas
wrappers (`text_cells`, `to_float`) still expose.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from lam_platform.core.errors import UserError

RAW_BATCH_ROWS = 1_000_000  # rows of a source file read, checked and written at a time (about 0.6 GiB)
ARROW_BLOCK_BYTES = 1 << 24  # what Arrow's CSV reader parses at a time
ZONE_SUFFIX = r"(?:Z|[+-]\d{2}:?\d{2})$"
NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
# Zoned ISO 8601 that Arrow's cast reads exactly as pandas' ISO8601 parser does: years pandas can hold
# (1700-2259 of its 1677-2262), times within the day, at most microseconds, offsets under a day.
ISO_ZONED = (
    r"^(?:1[7-9]\d\d|2[01]\d\d|22[0-5]\d)-\d\d-\d\d[T ](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)$"
)
# What Python's str.strip() removes (every code point whose str.isspace() is true), so trimming in
# Arrow gives the same text as before; a test checks the list against Python.
WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"  # noqa: E501


class TimestampSpec(Protocol):
    """How a source writes its timestamps: a channel mapping, or lam.yaml's customers/campaigns section."""

    @property
    def timestamp_format(self) -> str | None: ...

    @property
    def time_zone(self) -> str | None: ...


def read_raw(path: Path, arrow_text: bool = False) -> pd.DataFrame:
    """A source table as text (CSV) or native types (Parquet), with 1-based source line numbers; a file that
    cannot be read as its suffix says is a UserError naming it. `arrow_text`: a CSV's cells may come as Arrow
    strings (pd.ArrowDtype) instead of Python ones, the same text (`text_array` reads them without copies)."""
    [frame] = read_raw_batches(path, batch_rows=None, arrow_text=arrow_text)  # no batch size: one frame
    return frame


def read_raw_batches(path: Path, batch_rows: int | None = RAW_BATCH_ROWS, arrow_text: bool = False):
    """`read_raw` in consecutive batches of `batch_rows` rows (None: the whole file as one), so a file
    larger than memory can be ingested; line numbers run on across batches, and a file without rows is one
    empty batch with its columns. A file that turns out unreadable part way is a UserError naming the row
    after which it stopped: the batches before it were read whole and are good."""
    is_csv = path.suffix.lower() == ".csv"
    first_line = 2 if is_csv else 1  # a CSV's line 1 is the header
    done = 0
    try:
        for frame in _csv_batches(path, batch_rows, arrow_text) if is_csv else _parquet_batches(path, batch_rows):
            frame["_line"] = np.arange(len(frame)) + first_line + done
            done += len(frame)
            yield frame
    except (OSError, ValueError, pd.errors.ParserError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise UserError(
            f"{path}: not a readable {'CSV' if is_csv else 'Parquet'} file"
            f"{f' after its first {done} rows' if done else ''} ({type(err).__name__}: {err})",
            hint="source tables are Parquet, or CSV with a .csv suffix and a header line",
        ) from err


def _parquet_batches(path: Path, batch_rows: int | None):
    if batch_rows is None:
        yield pd.read_parquet(path)
        return
    file = pq.ParquetFile(path)
    schema = file.schema_arrow
    nullable = _with_nulls(file, [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_boolean(f.type)])
    empty = True
    for batch in file.iter_batches(batch_size=batch_rows):
        empty = False
        yield _as_in_whole_file(pa.Table.from_batches([batch], schema=schema), nullable)
    if empty:
        yield schema.empty_table().to_pandas()


def _with_nulls(file: pq.ParquetFile, columns: list[str]) -> set[str]:
    """Which of `columns` hold a null anywhere in the file: from the row groups' statistics, else by reading
    those columns a batch at a time."""
    found, unknown = set(), set()
    # Statistics are per leaf column, which a list or struct column before this one shifts: found by path.
    leaf = {file.metadata.schema.column(i).path: i for i in range(file.metadata.num_columns)}
    for group in range(file.num_row_groups):
        for name in columns:
            statistics = file.metadata.row_group(group).column(leaf[name]).statistics
            if statistics is None or not statistics.has_null_count:
                unknown.add(name)
            elif statistics.null_count:
                found.add(name)
    unknown -= found
    if unknown:
        for batch in file.iter_batches(columns=sorted(unknown)):
            found.update(name for name in unknown if batch.column(name).null_count)
    return found


def _as_in_whole_file(table: pa.Table, nullable: set[str]) -> pd.DataFrame:
    """A batch as pandas types it in a read of the whole file: an integer column with a null anywhere in the file
    is float64, a boolean one object, even in a batch without nulls (the cell text, and so content ids, must
    not depend on where a batch ends)."""
    for name in nullable:
        if pa.types.is_integer(table.schema.field(name).type):
            table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(pa.float64()))
    frame = table.to_pandas()
    for name in nullable:
        if frame[name].dtype == bool:
            frame[name] = frame[name].astype(object)
    return frame


def _csv_batches(path: Path, batch_rows: int | None, arrow_text: bool):
    """Arrow's reader (several times faster) where it reads the file as pandas does, else pandas'; when Arrow
    rejects a line part way (pandas pads a short line), pandas reads on from the first row not yet given."""
    given = 0
    names = _header_names(path) if arrow_text else None
    if names is not None and _no_quote_or_nul(path):
        try:
            for frame in _arrow_csv_batches(path, names, batch_rows):
                given += len(frame)
                yield frame
            return
        except pa.ArrowInvalid:
            pass
    options = dict(dtype=str, keep_default_na=False, na_filter=False)
    if batch_rows is None:
        yield pd.read_csv(path, **options)
        return
    yielded = given > 0
    with pd.read_csv(path, chunksize=batch_rows, **options) as chunks:
        for chunk in chunks:
            skip = min(given, len(chunk))  # rows Arrow gave already: pandas reads them the same
            given -= skip
            if len(chunk) > skip:
                yielded = True
                yield chunk.iloc[skip:].reset_index(drop=True)
    if not yielded:  # a header without rows: one empty frame with the columns
        yield pd.read_csv(path, nrows=0, **options)


def _header_names(path: Path) -> list[str] | None:
    """The CSV's column names as Arrow reads them without quotes (the first line split at commas), or None
    where pandas would read them otherwise: repeated or empty names (pandas renames them), not UTF-8."""
    with path.open("rb") as file:
        first = file.readline()
    try:
        names = re.split(rb"\r\n|\r|\n", first, maxsplit=1)[0].decode("utf-8-sig").split(",")
    except UnicodeDecodeError:
        return None
    return None if len(set(names)) < len(names) or "" in names else names


def _no_quote_or_nul(path: Path) -> bool:
    """No quote (pandas rejects an unterminated one, Arrow reads on to the end) and no NUL byte; scanned a
    block at a time, so memory stays bounded."""
    with path.open("rb") as file:
        while block := file.read(1 << 24):
            if b'"' in block or b"\0" in block:
                return False
    return True


def _arrow_csv_batches(path: Path, names: list[str], batch_rows: int | None):
    """The CSV as Arrow-string frames of `batch_rows` rows (the last fewer; at least one frame)."""
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=ARROW_BLOCK_BYTES),
        convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False),
    )
    if reader.schema.names != names:
        raise pa.ArrowInvalid(f"Arrow read the header as {reader.schema.names}")
    pending, yielded = reader.schema.empty_table(), False
    for block in reader:
        pending = pa.concat_tables([pending, pa.Table.from_batches([block])])
        while batch_rows is not None and pending.num_rows >= batch_rows:
            yield pending.slice(0, batch_rows).to_pandas(types_mapper=pd.ArrowDtype)
            pending, yielded = pending.slice(batch_rows), True
    if pending.num_rows or not yielded:
        yield pending.to_pandas(types_mapper=pd.ArrowDtype)


def text_array(values: pd.Series) -> pa.Array:
    """Values as stripped strings, null where missing or empty (`text_cells` as an Arrow array)."""
    if pd.api.types.is_float_dtype(values):  # Parquet numbers: repr keeps every digit
        text = pa.array(values.map(repr, na_action="ignore"), pa.string(), from_pandas=True)
    elif isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_string(values.dtype.pyarrow_dtype):
        text = pc.utf8_trim(pa.chunked_array(pa.array(values)).combine_chunks(), WHITESPACE)
    elif values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "string":
        text = pc.utf8_trim(pa.array(values.to_numpy(), pa.string(), from_pandas=True), WHITESPACE)
    else:  # numbers, booleans, times, bytes: the text pandas gives them
        text = pc.utf8_trim(pa.array(values.astype("string"), pa.string(), from_pandas=True), WHITESPACE)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def text_cells(values: pd.Series) -> pd.Series:
    """Values as stripped strings, None where missing or empty."""
    return pd.Series(text_array(values).to_numpy(zero_copy_only=False), index=values.index, dtype=object)


def regex_mask(text: pa.Array, pattern: str) -> np.ndarray:
    """Where `re.search(pattern, cell)` matches (never on a null). Arrow's RE2 does the ASCII cells; Python's
    `re` the others, where a class like \\d also matches non-ASCII digits and RE2 would disagree."""
    found = pc.fill_null(pc.match_substring_regex(text, pattern), False).to_numpy(zero_copy_only=False)
    other = np.flatnonzero(pc.fill_null(pc.invert(pc.string_is_ascii(text)), False).to_numpy(zero_copy_only=False))
    if len(other):
        compiled = re.compile(pattern)
        found[other] = [compiled.search(cell) is not None for cell in text.take(other).to_pylist()]
    return found


def number_array(text: pa.Array) -> np.ndarray:
    """Cells parsed as float64 (Arrow's correctly rounded conversion; pandas' fast parser can be off by one
    ulp); NaN where the text is not a plain number. Digits are ASCII (RE2's \\d): Arrow parses no others."""
    result = np.full(len(text), np.nan)
    ok = pc.fill_null(pc.match_substring_regex(text, NUMBER), False).to_numpy(zero_copy_only=False)
    if ok.any():
        result[ok] = text.filter(pa.array(ok)).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return result


def to_float(values: pd.Series) -> pd.Series:
    """Numbers parsed exactly (see `number_array`); NaN where the text is not a plain number."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    cells = values.astype(object).where(values.notna(), None).map(str, na_action="ignore")
    text = pa.array(cells, pa.string(), from_pandas=True)
    return pd.Series(number_array(text), index=values.index)


def _texts(cells: pa.Array, index: pd.Index) -> pd.Series:
    """Cells as a pandas Series of Python strings, "" where missing (what pandas' parsers take)."""
    return pd.Series(pc.fill_null(cells, "").to_numpy(zero_copy_only=False), index=index, dtype=object)


def _zoned(cells: pa.Array, timestamp_format: str | None, index: pd.Index) -> pd.Series:
    """Cells that carry a zone, in UTC (NaT where they do not parse). ISO 8601 text of the usual shape,
    which pandas and Arrow read alike, is parsed by Arrow (30 times faster); anything else, or a date Arrow
    refuses (February 30), by pandas, as before."""
    if timestamp_format is None and len(cells) and pc.all(pc.match_substring_regex(cells, ISO_ZONED)).as_py():
        try:
            return cells.cast(pa.timestamp("us", tz="UTC")).to_pandas().set_axis(index)
        except pa.ArrowInvalid:
            pass
    zoned = pd.to_datetime(_texts(cells, index), utc=True, format=timestamp_format or "ISO8601", errors="coerce")
    return zoned.astype("datetime64[us, UTC]")


def parse_timestamps(values: pd.Series, mapping: TimestampSpec) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(UTC timestamps, unparsable mask, naive-without-zone mask); failed rows hold NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):  # Parquet timestamps
        parsed = values
        if parsed.dt.tz is None:
            if not mapping.time_zone:
                return pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]"), values.isna(), values.notna()
            parsed = parsed.dt.tz_localize(mapping.time_zone, ambiguous="NaT", nonexistent="NaT")
        return (
            parsed.dt.tz_convert("UTC").astype("datetime64[us, UTC]"),
            values.isna(),
            pd.Series(False, index=values.index),
        )
    cells = text_array(values)
    has_zone = regex_mask(cells, ZONE_SUFFIX)
    result = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
    fmt = mapping.timestamp_format or "ISO8601"
    result[has_zone] = _zoned(cells.filter(pa.array(has_zone)), mapping.timestamp_format, values.index[has_zone])
    plain = pd.to_datetime(
        _texts(cells.filter(pa.array(~has_zone)), values.index[~has_zone]), format=fmt, errors="coerce"
    )
    if plain.dt.tz is not None:  # the format itself carried a zone (%z)
        result[~has_zone] = plain.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        naive = pd.Series(False, index=values.index)
    elif mapping.time_zone:
        localized = plain.dt.tz_localize(mapping.time_zone, ambiguous="NaT", nonexistent="NaT")
        result[~has_zone] = localized.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        naive = pd.Series(False, index=values.index)
    else:
        naive = ~pd.Series(has_zone, index=values.index) & plain.reindex(values.index).notna()
    unparsable = pd.Series(cells.is_valid().to_numpy(zero_copy_only=False), index=values.index) & result.isna() & ~naive
    return result, unparsable, naive
