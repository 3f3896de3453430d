"""Raw source tables: reading one file, and parsing its cells as text, numbers and timestamps.

Shared by every ingestion (events, the customer table, the contact log): a cell is read the same way
whichever table it comes from, so a value accepted in one is accepted in the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from lam_platform.core.errors import UserError

ZONE_SUFFIX = r"(?:Z|[+-]\d{2}:?\d{2})$"
NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


class TimestampSpec(Protocol):
    """How a source writes its timestamps: a channel mapping, or lam.yaml's customers/campaigns section."""

    @property
    def timestamp_format(self) -> str | None: ...

    @property
    def time_zone(self) -> str | None: ...


def read_raw(path: Path) -> pd.DataFrame:
    """A source table as text (CSV) or native types (Parquet), with 1-based source line numbers; a file that
    cannot be read as its suffix says is a UserError naming it."""
    is_csv = path.suffix.lower() == ".csv"
    try:
        frame = (
            pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False) if is_csv else pd.read_parquet(path)
        )
    except (OSError, ValueError, pd.errors.ParserError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise UserError(
            f"{path}: not a readable {'CSV' if is_csv else 'Parquet'} file ({type(err).__name__}: {err})",
            hint="source tables are Parquet, or CSV with a .csv suffix and a header line",
        ) from err
    frame["_line"] = np.arange(len(frame)) + (2 if is_csv else 1)  # a CSV's line 1 is the header
    return frame


def text_cells(values: pd.Series) -> pd.Series:
    """Values as stripped strings, None where missing or empty."""
    if pd.api.types.is_float_dtype(values):  # Parquet numbers: repr keeps every digit
        text = values.map(repr, na_action="ignore")
    else:
        text = values.astype("string").str.strip()
    text = text.astype(object)
    return text.where(text.notna() & (text != ""), None)


def to_float(values: pd.Series) -> pd.Series:
    """Numbers parsed exactly (Arrow's correctly rounded conversion; pandas' fast parser can be off
    by one ulp); NaN where the text is not a plain number."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    text = values.astype(object).where(values.notna(), None)
    ok = text.fillna("").astype(str).str.fullmatch(NUMBER)
    result = pd.Series(np.nan, index=values.index)
    if ok.any():
        result[ok] = pa.array(text[ok].astype(str).tolist(), pa.string()).cast(pa.float64()).to_numpy()
    return result


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
    text = text_cells(values).fillna("")
    has_zone = text.str.contains(ZONE_SUFFIX, regex=True)
    result = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
    fmt = mapping.timestamp_format or "ISO8601"
    zoned = pd.to_datetime(text[has_zone], utc=True, format=fmt, errors="coerce")
    result[has_zone] = zoned.astype("datetime64[us, UTC]")
    plain = pd.to_datetime(text[~has_zone], format=fmt, errors="coerce")
    if plain.dt.tz is not None:  # the format itself carried a zone (%z)
        result[~has_zone] = plain.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        naive = pd.Series(False, index=values.index)
    elif mapping.time_zone:
        localized = plain.dt.tz_localize(mapping.time_zone, ambiguous="NaT", nonexistent="NaT")
        result[~has_zone] = localized.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        naive = pd.Series(False, index=values.index)
    else:
        naive = ~has_zone & plain.reindex(values.index).notna()
    unparsable = (text != "") & result.isna() & ~naive
    return result, unparsable, naive
