"""Column helpers shared by the readers, the SMTP reply classifier and the attribution."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


def dictionary(values: pl.Series) -> pa.DictionaryArray:
    """`values` as text, dictionary-encoded by Arrow's hash kernel: ``.dictionary`` holds the
    distinct non-null values, ``.indices`` each row's position among them (null for a null).
    Work per distinct value, then a gather by the indices, costs far less than per row: logs
    repeat their addresses, domains and replies."""
    arr = values.cast(pl.String).to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.dictionary_encode(arr)
