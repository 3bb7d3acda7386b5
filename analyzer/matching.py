"""Longest-prefix matching of IP addresses (as text or integers) against a table of prefixes.

`PrefixTable` maps IPv4 and IPv6 prefixes to integer codes and matches a whole column in one call.
It fronts two interchangeable backends: the compiled poptrie in ``analyzer._lpm`` (built from
``_core/``) and its pure-Python twin in ``analyzer._lpm_py``. `BACKEND` says which one is in use;
set ``MAILFLOW_PURE_PYTHON=1`` to force the twin.

Codes returned by `PrefixTable.lookup`:

* ``>= 0``: the value of the longest matching prefix,
* ``NO_MATCH`` (-1): a valid address that no prefix covers,
* ``NOT_AN_IP`` (-2): text that is not an IP address,
* ``EMPTY`` (-3): null, or an empty / all-whitespace string.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from analyzer import _lpm_py
from analyzer.errors import PrefixError

try:
    from analyzer import _lpm as _compiled
except ImportError:  # not built: the twin answers, slowly but identically
    _compiled = None

__all__ = ["BACKEND", "EMPTY", "NOT_AN_IP", "NO_MATCH", "PrefixTable"]

NO_MATCH = -1
NOT_AN_IP = -2
EMPTY = -3

BACKEND = "compiled" if _compiled is not None and not os.environ.get("MAILFLOW_PURE_PYTHON") else "python"

# Below this many rows a second thread costs more than it saves.
_PARALLEL_MIN_ROWS = 1 << 19


def _core_class(backend: str | None) -> Any:
    name = backend or BACKEND
    if name == "compiled":
        if _compiled is None:
            raise RuntimeError("the compiled backend analyzer._lpm is not built; reinstall with pip")
        return _compiled.Core
    if name == "python":
        return _lpm_py.Core
    raise ValueError(f"backend must be 'compiled' or 'python', not {name!r}")


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class PrefixTable:
    """A longest-prefix-match table from IP prefixes to integer values (0..2**31-2).

    Prefixes are single addresses, CIDRs (``10.0.0.0/8``, ``2001:db8::/32``, host bits are
    cleared) or ranges ``a.b.c.d-e.f.g.h`` (split into CIDRs). Adding a prefix that is already in
    the table replaces its value: the last one added wins. IPv4-mapped IPv6 prefixes
    (``::ffff:a.b.c.d/n``, n >= 96) are stored as IPv4, and IPv4-mapped queries match IPv4
    prefixes, because dual-stack servers log IPv4 clients that way.
    """

    __slots__ = ("_core", "_backend")

    def __init__(self, *, backend: str | None = None) -> None:
        self._backend = backend or BACKEND
        self._core = _core_class(self._backend)()

    @property
    def backend(self) -> str:
        """``"compiled"`` or ``"python"``: which core this table uses."""
        return self._backend

    def add(self, prefix: str, value: int) -> None:
        """Map `prefix` to `value`; raise `PrefixError` (a ValueError) quoting a bad prefix."""
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be str, not {type(prefix).__name__}")
        self._core.add(prefix, value)

    @classmethod
    def from_pairs(
        cls, pairs: Iterable[tuple[str, int]], *, backend: str | None = None
    ) -> PrefixTable:
        """Build a table from ``(prefix, value)`` pairs; errors name the failing pair's index."""
        table = cls(backend=backend)
        add = table._core.add
        for index, (prefix, value) in enumerate(pairs):
            if not isinstance(prefix, str):
                raise TypeError(f"prefix of pair {index} must be str, not {type(prefix).__name__}")
            try:
                add(prefix, value)
            except PrefixError as exc:
                raise PrefixError(exc.what, expected=exc.expected, got=exc.got,
                                  where=f"pair {index}", hint=exc.hint) from None
        return table

    def __len__(self) -> int:
        return len(self._core)

    def __repr__(self) -> str:
        return f"<PrefixTable {len(self)} prefixes, {self._backend}>"

    def prefixes(self) -> Iterator[tuple[str, int]]:
        """Iterate ``(prefix_text, value)``: IPv4 first, then IPv6, each by address and length."""
        for family, network, length, value in self._core.items():
            net_cls = ipaddress.IPv4Network if family == 4 else ipaddress.IPv6Network
            yield str(net_cls((network, length))), int(value)

    def stats(self) -> dict[str, int]:
        """Size of the compiled structure (nodes, leaves, bytes per family)."""
        return self._core.stats()

    def lookup_one(self, text: str | bytes | None) -> int:
        """The code for one address text (see the module docstring for the codes)."""
        return int(self._core.lookup_text(text))

    def lookup(self, values: Any, *, threads: int | None = None) -> np.ndarray:
        """Codes for a whole column, one int32 per element, in order.

        `values` may be a pyarrow string / large_string / string_view (or binary) array or
        chunked array, a pyarrow dictionary array of those, a polars String or Categorical Series,
        a list of ``str | None``, or a numpy ``uint32`` array of IPv4 addresses. With the compiled
        backend the loop runs without the GIL; inputs of more than half a million rows are split
        over `threads` threads (default: the usable CPU cores).
        """
        threads = _default_threads() if threads is None else max(1, int(threads))
        if isinstance(values, np.ndarray):
            if values.dtype == np.uint32:
                out = np.empty(len(values), dtype=np.int32)
                self._core.lookup_u32(np.ascontiguousarray(values), out)
                return out
            if values.dtype.kind in "OUS":
                values = _list_to_arrow(values.tolist())
            else:
                raise TypeError(f"a numpy array of IPv4 addresses must be uint32, not {values.dtype}")
        elif isinstance(values, (list, tuple)):
            values = _list_to_arrow(values)
        elif not isinstance(values, (pa.Array, pa.ChunkedArray)):
            values = _polars_to_arrow(values)
            if isinstance(values, _Categories):
                return self._lookup_categories(values, threads)
        out = np.empty(len(values), dtype=np.int32)
        # Chunks of one column (Parquet row groups, record batches) often share one dictionary:
        # match it once per call, not once per chunk.
        dictionaries: dict[tuple[Any, ...], np.ndarray] = {}
        if isinstance(values, pa.ChunkedArray):
            start = 0
            for chunk in values.chunks:
                self._lookup_array(chunk, out[start : start + len(chunk)], threads, dictionaries)
                start += len(chunk)
        else:
            self._lookup_array(values, out, threads, dictionaries)
        return out

    def _lookup_array(
        self, arr: pa.Array, out: np.ndarray, threads: int, dictionaries: dict[tuple[Any, ...], np.ndarray]
    ) -> None:
        if pa.types.is_dictionary(arr.type):
            key = _identity(arr.dictionary)
            codes = dictionaries.get(key)
            if codes is None:
                # Each distinct value is parsed and matched once; rows only cost a gather.
                codes = dictionaries[key] = np.empty(len(arr.dictionary), dtype=np.int32)
                self._lookup_array(arr.dictionary, codes, threads, dictionaries)
            self._core.gather(arr.indices, codes, out)
        elif pa.types.is_null(arr.type):
            out.fill(EMPTY)
        elif threads > 1 and self._core.releases_gil and len(arr) >= _PARALLEL_MIN_ROWS:
            bounds = np.linspace(0, len(arr), threads + 1).astype(int)
            jobs = [
                _pool(threads).submit(self._core.lookup_arrow, arr.slice(a, b - a), out[a:b])
                for a, b in zip(bounds[:-1], bounds[1:])
            ]
            for job in jobs:
                job.result()
        else:
            self._core.lookup_arrow(arr, out)

    def _lookup_categories(self, cats: _Categories, threads: int) -> np.ndarray:
        # polars keeps a Categorical as uint32 ids into a process-wide pool it does not expose,
        # and its own conversions hash every row. One pass over the ids finds a row for each id
        # present; only those rows' strings are matched, then the ids are gathered.
        out = np.empty(len(cats.ids), dtype=np.int32)
        present, rows = self._core.first_rows(cats.ids, cats.max_id)
        codes = np.full(cats.max_id + 1, EMPTY, dtype=np.int32)
        codes[present] = self.lookup(cats.strings(rows), threads=threads)
        self._core.gather(cats.ids, codes, out)
        return out


class _Categories:
    """A polars Categorical/Enum Series seen as its category ids (see _lookup_categories)."""

    __slots__ = ("series", "ids", "max_id")

    def __init__(self, series: Any, ids: pa.Array, max_id: int) -> None:
        self.series = series
        self.ids = ids
        self.max_id = max_id

    def strings(self, rows: np.ndarray) -> pa.Array:
        """The text of the given rows, as a plain string array."""
        import polars as pl

        return self.series.gather(rows).cast(pl.String).to_arrow()


def _identity(arr: pa.Array) -> tuple[Any, ...]:
    """Same key, same array memory: two chunks' dictionaries are the same one."""
    return (str(arr.type), arr.offset, len(arr),
            tuple(0 if b is None else (b.address, b.size) for b in arr.buffers()))


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """A long-lived pool per thread count: starting threads on every call costs more than it saves."""
    with _POOLS_LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            pool = _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="mailflow-lpm")
        return pool


def _list_to_arrow(items: list[Any]) -> pa.Array:
    try:
        return pa.array(items, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid, TypeError):
        bad = next((x for x in items if x is not None and not isinstance(x, str)), None)
        if bad is not None:
            raise TypeError(f"expected str or None in the list, got {type(bad).__name__}") from None
        raise
    except UnicodeEncodeError:
        # Lone surrogates cannot be UTF-8; they can never be part of an address either.
        return pa.array(
            [None if x is None else x.encode("utf-8", "surrogatepass") for x in items],
            type=pa.binary(),
        )


def _polars_to_arrow(values: Any) -> pa.Array | pa.ChunkedArray | _Categories:
    import polars as pl

    if isinstance(values, pl.Series):
        if values.dtype == pl.String:
            return values.to_arrow()
        if values.dtype == pl.Categorical or isinstance(values.dtype, pl.Enum):
            ids = values.to_physical().cast(pl.UInt32)  # Enum ids may be narrower
            max_id = ids.max()
            # The id pool is process-wide: when it is far larger than this column, converting
            # the column is cheaper than a table indexed by id.
            if max_id is not None and max_id <= 4 * len(values) + 65536:
                return _Categories(values, ids.to_arrow(), int(max_id))
            return values.to_arrow()
        raise TypeError(f"a polars Series of IP addresses must be String or Categorical, not {values.dtype}")
    raise TypeError(
        "expected a pyarrow array, polars Series, list of str | None or numpy uint32 array, "
        f"got {type(values).__name__}"
    )
