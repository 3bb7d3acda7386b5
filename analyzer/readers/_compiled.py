"""The readers' compiled column helpers (`analyzer._scan`) behind plain functions, each with a
polars twin used when the extension is not built; tests/test_compiled_columns.py checks that
the two agree."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

try:
    from analyzer._scan import culture_timestamps as _culture_timestamps
    from analyzer._scan import edge_space as _edge_space
    from analyzer._scan import iso_timestamps as _iso_timestamps
except ImportError:  # not built: polars does it all
    _edge_space = _iso_timestamps = _culture_timestamps = None

COMPILED = _iso_timestamps is not None
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.f"


def _buffers(text: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The offsets and bytes of a String column as Arrow lays them out (no copy of the text
    beyond polars' own export)."""
    arr = text.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    return offsets, (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8))


def iso_polars(text: pl.Series) -> pl.Series:
    """The twin of `iso_timestamps`: polars' strptime of ``YYYY-MM-DDTHH:MM:SS[.f][Z]``."""
    return text.str.strip_suffix("Z").str.strptime(pl.Datetime("us"), ISO_FORMAT, strict=False)


def iso_timestamps(text: pl.Series) -> pl.Series:
    """``YYYY-MM-DDTHH:MM:SS[.f][Z]`` texts as Datetime("us") (naive, UTC), null where the text
    has another form. The compiled parser takes the plain form of nearly every export; the few
    texts it leaves go through `iso_polars`, which is also the whole path when the extension is
    not built."""
    if _iso_timestamps is None:
        return iso_polars(text).alias("timestamp")
    return _parsed(text, _iso_timestamps, iso_polars)


def culture_polars(text: pl.Series, formats: Sequence[str]) -> pl.Series:
    """The twin of `culture_timestamps`: polars' strptime with each of `formats` in turn, on what
    the earlier ones left (chrono takes 1- or 2-digit days, months and hours, and AM/PM in any
    case)."""
    parsed = pl.repeat(None, text.len(), dtype=pl.Datetime("us"), eager=True).alias("timestamp")
    for fmt in formats:
        missing = parsed.is_null() & text.is_not_null()
        if not missing.any():
            break
        idx = missing.arg_true()
        parsed = parsed.scatter(idx, text.gather(idx).str.strptime(pl.Datetime("us"), fmt, strict=False))
    return parsed


def culture_timestamps(text: pl.Series, formats: Sequence[str], day_first: bool) -> pl.Series:
    """Texts in a file's culture form (`readers._dates`' `formats` for its day/month order) as
    Datetime("us"), null where none of them applies: the compiled parser reads the plain shapes
    (``11/8/2026 7:17:05 AM``, ``08.11.2026 17:05:00``), polars' strptime the rest."""
    if _culture_timestamps is None:
        return culture_polars(text, formats).alias("timestamp")
    return _parsed(text, lambda offsets, data: _culture_timestamps(offsets, data, day_first),
                   lambda rest: culture_polars(rest, formats))


def _parsed(text: pl.Series, compiled: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
            twin: Callable[[pl.Series], pl.Series]) -> pl.Series:
    if text.len() == 0:
        return twin(text).alias("timestamp")
    micros, ok = compiled(*_buffers(text))
    # a null text has an empty slot: never ok, so it stays null
    fast = pl.Series("timestamp", micros).cast(pl.Datetime("us"))
    fast = pl.select(pl.when(pl.Series(ok)).then(fast)).to_series()
    left = fast.is_null() & text.is_not_null()
    if left.any():
        idx = left.arg_true()
        fast = fast.scatter(idx, twin(text.gather(idx)))
    return fast.alias("timestamp")


def needs_cleaning(text: pl.Series) -> tuple[bool, bool]:
    """``(trim, blank)`` for a String column: whether trimming whitespace might change a value
    (conservatively: a value ending in a non-ASCII character counts) and whether a value is the
    empty string. Without the extension: (True, True), the safe answer."""
    if _edge_space is None:
        return True, True
    if text.len() == 0:
        return False, False
    # polars' own layout (Arrow string views): no copy of the text
    arr = text.to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string_view())
    views = np.frombuffer(arr.buffers()[1], dtype=np.uint8)[16 * arr.offset:16 * (arr.offset + len(arr))]
    edge, empty = _edge_space(views, [b if b is not None else b"" for b in arr.buffers()[2:]])
    return bool(edge), empty > text.null_count()
