"""Writing outputs safely: atomically (temp file + rename) and, for CSV, with spreadsheet
formulas neutralized, since every string in these files may come from an attacker's mail."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `target` that replaces it only if the block succeeds, so readers
    of `target` see the old file or the new one, never half of one."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    readable(Path(tmp))
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def readable(path: Path) -> None:
    """Give a temporary file the mode a plain open() would (mkstemp makes it owner-only): outputs
    are read by BI tools and other accounts."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def neutralize_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix a quote to string cells a spreadsheet would run as a formula (=, +, -, @, tab, CR
    at the start), as OWASP recommends for CSV injection."""
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.String:
            col = pl.col(name)
            risky = pl.any_horizontal([col.str.starts_with(c) for c in _FORMULA_START])
            exprs.append(pl.when(risky).then(pl.lit("'") + col).otherwise(col).alias(name))
    return frame.with_columns(exprs) if exprs else frame


def write_csv(frame: pl.DataFrame, target: str | os.PathLike) -> None:
    """Write `frame` as CSV atomically, with formulas neutralized."""
    with atomic_path(target) as tmp:
        neutralize_formulas(frame).write_csv(tmp)


def write_parquet(frame: pl.DataFrame | pl.LazyFrame, target: str | os.PathLike) -> None:
    """Write `frame` (streamed when lazy) as zstd Parquet atomically."""
    with atomic_path(target) as tmp:
        if isinstance(frame, pl.LazyFrame):
            frame.sink_parquet(tmp, compression="zstd")
        else:
            frame.write_parquet(tmp, compression="zstd")


def record_day_parts(root: Path | None) -> list[list[Path]]:
    """The Parquet parts of each day partition under `root` (``date=YYYY-MM-DD/part-*.parquet``),
    day by day."""
    if root is None or not root.is_dir():
        return []
    days = (sorted(day.glob("*.parquet"))
            for day in sorted(d for d in root.iterdir() if d.is_dir() and d.name.startswith("date=")))
    return [parts for parts in days if parts]
