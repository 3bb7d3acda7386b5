"""Per-day partial aggregates, cached on disk by what they were computed from.

Every rule, the connector usage and the report's charts aggregate one day partition of records/
at a time and merge the partial results. A day's parts written by `analyses.RecordWriter` carry
the attribution fingerprint, the run id and the part numbers (Parquet metadata), which name its
content exactly: a run's parts never change once published, and a later run that reuses them
(`analyses.reusable_parts`) links the very same files. A partial result is therefore a function
of (that content, the query), and is kept under the SHA-256 of both: the query is serialized
(polars' binary plan: every filter, threshold, literal and joined table) as built over an
empty frame with the day's schema, so the key does not depend on where the files are.

Analysing the same records again (other thresholds, another report, a records/ folder copied
elsewhere) reads the partials of the queries that did not change instead of the records. The
cache is a plain folder (``MAILFLOW_CACHE_DIR``, default ``$XDG_CACHE_HOME/mailflow/partials``);
it is best effort: a file that cannot be read or written is computed as if absent, and the
least recently used files go when it outgrows its limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from analyzer import _io

__all__ = ["DAY", "FINGERPRINT", "PART", "RUN", "SLICE_ROWS", "Cache", "Day", "canonical", "collect",
           "day_identity", "days_of", "default_cache", "part_stamps", "record_days"]

Build = Callable[[pl.LazyFrame], Sequence[pl.LazyFrame]]
# The results of a Build's queries computed a faster way, over a slice of a day at a time: each
# query's results of the slices are concatenated, so they must be partial results that the
# caller merges anyway (counts to add, distinct pairs to unique...), not a finished day's.
Compute = Callable[[pl.LazyFrame], list[pl.DataFrame]]

# The Parquet key-value metadata `analyses.RecordWriter` stamps into every records/ part: what
# attributed it (`analyses.attribution_fingerprint`), which run and part it is, and its UTC day.
FINGERPRINT, RUN, PART, DAY = "mailflow.attribution", "mailflow.run", "mailflow.part", "mailflow.day"

_STAMPS: dict[tuple, tuple[dict[str, str], int]] = {}


def part_stamps(path: Path) -> tuple[dict[str, str], int] | None:
    """A Parquet file's key-value metadata and row count, None when it cannot be read as Parquet."""
    # A run reads the same footers several times (reuse, findings, usage, report): remembered by
    # the file's identity, so a rewritten file is read again.
    try:
        st = path.stat()
    except OSError:
        return None
    seen = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if seen not in _STAMPS:
        try:
            meta = pq.read_metadata(path)  # reads the footer only; any other file fails at once
        except (OSError, ValueError):
            return None
        if len(_STAMPS) > 100_000:  # a long-lived process: forget, rather than grow forever
            _STAMPS.clear()
        _STAMPS[seen] = ({k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                          for k, v in (meta.metadata or {}).items()}, meta.num_rows)
    return _STAMPS[seen]


def day_identity(parts: Sequence[Path]) -> str | None:
    """What names a day partition's content: its parts' (attribution, run, part) stamps and row
    counts, or None when a part lacks them (written by another tool or an older version) and the
    day is therefore not cached."""
    identity = []
    for path in parts:
        found = part_stamps(path)
        if found is None or not all(found[0].get(k) for k in (FINGERPRINT, RUN, PART)):
            return None
        stamps, rows = found
        identity.append((stamps[FINGERPRINT], stamps[RUN], stamps[PART], rows))
    return repr(sorted(identity)) if identity else None


class Day:
    """One day partition: its records (lazy), when known the identity of their content, and the
    same records as `slices` of at most about `SLICE_ROWS` rows each (consecutive parts), which a
    `Compute` reads one at a time so that its memory is bounded whatever a day holds."""

    __slots__ = ("_empty", "frame", "identity", "slices")

    def __init__(self, frame: pl.LazyFrame, identity: str | None = None,
                 slices: Sequence[pl.LazyFrame] | None = None) -> None:
        self.frame = frame
        self.identity = identity
        self.slices = list(slices) if slices else [frame]
        self._empty: pl.LazyFrame | None = None

    def empty(self) -> pl.LazyFrame:
        """A frame with the day's schema and no rows: queries built over it name no file."""
        if self._empty is None:
            self._empty = pl.LazyFrame(schema=self.frame.collect_schema())
        return self._empty

    def filter(self, predicate: pl.Expr) -> Day:
        """The day's records that satisfy `predicate`, sliced alike; without an identity, since
        they are no longer what it names."""
        return Day(self.frame.filter(predicate), None, [s.filter(predicate) for s in self.slices])


# A slice's rows are what a `Compute` holds at once (a rule selects a few columns of them): about
# 250 MB at the most for the widest rule, instead of 1.2 GB for a day of 10 million records.
SLICE_ROWS = 2_000_000


def _slices(parts: Sequence[Path]) -> list[pl.LazyFrame]:
    """`parts` grouped into consecutive runs of at most `SLICE_ROWS` rows (a larger part alone),
    by the row counts in their footers."""
    groups: list[list[Path]] = [[]]
    rows = 0
    for part in parts:
        stamps = part_stamps(part)
        n = stamps[1] if stamps is not None else SLICE_ROWS
        if groups[-1] and rows + n > SLICE_ROWS:
            groups.append([])
            rows = 0
        groups[-1].append(part)
        rows += n
    return [pl.scan_parquet(group) for group in groups]


def distinct_pairs(frame: pl.LazyFrame, keys: Sequence[str | pl.Expr], value: pl.Expr, name: str) -> pl.LazyFrame:
    """The distinct (`keys`, `value`) rows of `frame`, the value named `name` (a null value
    counts as one): a day's share of a count of distinct values per group, which merges across
    days as ``n_unique`` of the days' pairs. Made unique within each group of the keys rather
    than over the pairs, which polars encodes row by row first: with few groups (the report's
    subjects) that is several times cheaper, with many (a finding's IPs) about the same."""
    return frame.group_by(keys).agg(value.unique().alias(name)).explode(name)


def canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` rebuilt from its values. A table or list a query embeds (a join's right side, an
    ``is_in`` list) is serialized with its buffers as they lie in memory, which differ from run
    to run for the same values; rebuilt, the same values give the same bytes, hence the same
    cache key."""
    return pl.DataFrame(frame.to_dict(as_series=False), schema=frame.schema)


def record_days(root: Path | None) -> list[Day]:
    """The day partitions of the records/ folder `root`, each with its identity when its parts
    carry their stamps."""
    return days_of(_io.record_day_parts(root))


def days_of(day_parts: Sequence[Sequence[Path]]) -> list[Day]:
    """`record_days` of the day partitions' parts already listed (`_io.record_day_parts`)."""
    return [Day(pl.scan_parquet(parts), day_identity(parts), _slices(parts)) for parts in day_parts]


class Cache:
    """Partial results on disk under `root` (Arrow IPC files named by their key), at most
    `limit_bytes` after `prune`."""

    def __init__(self, root: Path, limit_bytes: int = 1 << 30) -> None:
        self.root = root
        self.limit_bytes = limit_bytes
        self.hits = 0
        self.misses = 0

    def collect(self, day: Day, build: Build, compute: Compute | None = None) -> list[pl.DataFrame]:
        """``build(day.frame)`` collected (streaming engine), each query's result read from the
        cache when it holds it, the others computed and stored (by `compute` over the day's
        slices, which gives every query's result, when given: a miss then computes them all)."""
        if day.identity is None:  # nothing names its content: never from the cache
            return _compute(day, build, compute)
        head = f"{pl.__version__}\0{day.identity}\0".encode()
        try:
            keys = [hashlib.sha256(head + q.serialize(format="binary")).hexdigest() for q in build(day.empty())]
        except pl.exceptions.PolarsError:  # a plan polars cannot serialize is not cached
            return _compute(day, build, compute)
        results: list[pl.DataFrame | None] = [self._load(key) for key in keys]
        todo = [i for i, r in enumerate(results) if r is None]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            if compute is not None:
                every = _sliced(day, compute)
                computed = [every[i] for i in todo]
            else:
                queries = list(build(day.frame))
                computed = _collect([queries[i] for i in todo])
            for i, frame in zip(todo, computed):
                results[i] = frame
                self._store(keys[i], frame)
        return [r for r in results if r is not None]

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.arrow"

    def _load(self, key: str) -> pl.DataFrame | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            frame = pl.read_ipc(path)
            os.utime(path)  # recently used: kept by `prune`
        except (OSError, pl.exceptions.PolarsError):
            return None
        return frame

    def _store(self, key: str, frame: pl.DataFrame) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
            os.close(fd)
            try:
                frame.write_ipc(tmp, compression="lz4")
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        except OSError:
            pass  # a read-only or full cache costs time, never the run

    def prune(self) -> None:
        """Remove the least recently used files until the cache fits its limit."""
        try:
            files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.root.glob("*/*.arrow")]
        except OSError:
            return
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= self.limit_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
            total -= size


def default_cache() -> Cache | None:
    """The cache at ``MAILFLOW_CACHE_DIR`` (empty: none), else ``$XDG_CACHE_HOME/mailflow/partials``
    (``~/.cache`` by default); None when no such folder can be named."""
    configured = os.environ.get("MAILFLOW_CACHE_DIR")
    if configured is not None:
        return Cache(Path(configured)) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(os.path.expanduser("~"), ".cache")
                                                if os.path.expanduser("~") != "~" else "")
    return Cache(Path(base) / "mailflow" / "partials") if base else None


# Queries over the same day share their scan; polars would cache it whole for all of them (common
# subplan elimination), which costs a day of records in memory (790 MB against 350 MB for a day of
# 10 million) and no time: each query streams its own scan instead.
_STREAMED = pl.QueryOptFlags(comm_subplan_elim=False)


def _collect(queries: list[pl.LazyFrame]) -> list[pl.DataFrame]:
    # the streaming engine: a day partition is read in morsels, never whole
    return pl.collect_all(queries, engine="streaming", optimizations=_STREAMED) if queries else []


def _sliced(day: Day, compute: Compute) -> list[pl.DataFrame]:
    """`compute` over each slice of `day`, each query's results concatenated."""
    per_slice = [compute(frame) for frame in day.slices]
    return per_slice[0] if len(per_slice) == 1 else [pl.concat(results) for results in zip(*per_slice)]


def _compute(day: Day, build: Build, compute: Compute | None) -> list[pl.DataFrame]:
    return _sliced(day, compute) if compute is not None else _collect(list(build(day.frame)))


def collect(day: Day, build: Build, cache: Cache | None, compute: Compute | None = None) -> list[pl.DataFrame]:
    """``build(day.frame)`` collected, through `cache` when there is one and the day has an
    identity. `compute`, when given, computes the same partial results a faster way, a slice of
    the day at a time (``build`` then only names them: their plans are the cache keys)."""
    if cache is None or day.identity is None:
        return _compute(day, build, compute)
    return cache.collect(day, build, compute)
