"""What a scheduled (cron) run remembers between runs: which input files were ingested, and
their normalized records.

``--state DIR`` holds ``manifest.json`` (per input file: path, size, modification time, content
hash, the records file and the reader's report) and ``files/<id>.parquet`` (that file's
normalized records with their de-duplication key). A run fingerprints its inputs, reads only the
new or changed ones, and analyses the union of every file ever ingested (a rotated-away log keeps
its records). The manifest is replaced atomically after the outputs are published, so a run that
dies half-way leaves the previous state and outputs as they were, and the next run redoes the
work; records files the manifest does not name are leftovers of such a run and are removed.

The manifest also names the current ``records/<generation>/``: the attributed, de-duplicated
records of the last run (``records/``, the parts the output holds as well, hard-linked where
the file system allows), the de-duplication hashes of their rows (``keys/``) and ``meta.json``
(the attribution fingerprint, the files they hold, per day the source files and whether copies
were removed, the next batch and part numbers). A later run with the same attribution adds only
its new records to them (`analyses.analyze`) instead of attributing every record again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from analyzer.errors import ConfigError

__all__ = ["Entry", "State", "digest", "fingerprint"]

_VERSION = 1
# what a generation's meta.json must hold to be resumed from (written by `analyses`)
_GENERATION_KEYS = {"fingerprint", "filtered", "files", "next_batch", "next_part", "days", "duplicates", "parts"}
_HASH_BLOCK = 1 << 20


def digest(path: Path) -> str:
    """SHA-256 of a file's content, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def _rejects_name(records: str) -> str:
    return records.removesuffix(".parquet") + ".rejects.parquet"


@dataclass
class Entry:
    """One ingested input file."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    records: str  # file name under files/ (its rejects: the same name with .rejects)
    report: dict[str, Any] = field(default_factory=dict)


def fingerprint(path: Path, known: Entry | None) -> tuple[int, int, str]:
    """(size, mtime_ns, sha256) of `path`; the hash is reused when size and mtime are unchanged,
    so an unchanged file costs a stat, not a read."""
    st = path.stat()
    if known is not None and known.size == st.st_size and known.mtime_ns == st.st_mtime_ns:
        return st.st_size, st.st_mtime_ns, known.sha256
    return st.st_size, st.st_mtime_ns, digest(path)


class State:
    """The state directory of scheduled runs."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)
        self.files_dir = self.dir / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, Entry] = {}
        self.last_run: str | None = None
        self.records: str | None = None  # the current generation under records/
        self._pending: str | None = None  # this run's, once `new_generation` made it
        manifest = self.dir / "manifest.json"
        if manifest.exists():
            try:
                doc = json.loads(manifest.read_text(encoding="utf-8"))
                if doc.get("version") != _VERSION:
                    raise ValueError(f"version {doc.get('version')!r}")
                self.entries = {e["path"]: Entry(**e) for e in doc["files"]}
                self.last_run = doc.get("last_run")
                self.records = doc.get("records")
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError("unreadable state directory", expected=f"a manifest.json of version {_VERSION}",
                                  got=str(exc), where=str(manifest),
                                  hint="point --state at an empty folder, or remove this one to start over") from None

    def plan(self, paths: Iterable[Path]) -> tuple[list[Path], dict[str, tuple[int, int, str]]]:
        """The inputs that are new or changed since they were ingested, and every input's
        fingerprint (path -> size, mtime, hash)."""
        todo, prints = [], {}
        for path in paths:
            key = str(path.resolve())
            known = self.entries.get(key)
            fp = fingerprint(path, known)
            prints[key] = fp
            if known is None or known.sha256 != fp[2]:
                todo.append(path)
        return todo, prints

    def store(self, path: Path, fp: tuple[int, int, str], records: pl.DataFrame | pl.LazyFrame,
              rejects: pl.DataFrame, report: dict[str, Any]) -> None:
        """Keep `records` (the normalized columns) and `rejects` as those of `path`, replacing
        what an earlier version of the file gave. The manifest is only updated by `commit`.
        Lazy records are streamed to disk, never held whole."""
        key = str(path.resolve())
        name = hashlib.sha1(f"{key}\0{fp[2]}".encode()).hexdigest()[:20] + ".parquet"
        for frame, target in ((records, name), (rejects, _rejects_name(name))):
            tmp = self.files_dir / (target + ".tmp")
            if isinstance(frame, pl.LazyFrame):
                frame.sink_parquet(tmp, compression="zstd")
            else:
                frame.write_parquet(tmp, compression="zstd")
            os.replace(tmp, self.files_dir / target)
        self.entries[key] = Entry(key, fp[0], fp[1], fp[2], name, report)

    def touch(self, prints: dict[str, tuple[int, int, str]]) -> None:
        """Record new sizes/mtimes of files whose content did not change (hash equal)."""
        for key, (size, mtime, digest) in prints.items():
            entry = self.entries.get(key)
            if entry is not None and entry.sha256 == digest:
                entry.size, entry.mtime_ns = size, mtime

    def parts(self) -> list[Path]:
        """The records files of every ingested input, in path order."""
        return [self.files_dir / e.records for _, e in sorted(self.entries.items())]

    def totals(self) -> pl.DataFrame:
        """Per ingested file, as `Ingest.totals` (duplicates are counted by the caller)."""
        from analyzer.readers import FileReport, totals_frame

        return totals_frame([FileReport(**e.report) for _, e in sorted(self.entries.items())], {})

    def rejects(self) -> pl.DataFrame:
        """The rejected rows of every ingested input."""
        from analyzer.readers import REJECTS_SCHEMA

        parts = [self.files_dir / _rejects_name(e.records) for _, e in sorted(self.entries.items())]
        parts = [p for p in parts if p.exists()]
        return pl.concat([pl.read_parquet(p) for p in parts]) if parts else pl.DataFrame(schema=REJECTS_SCHEMA)

    def run_key(self, extra: str) -> str:
        """A fingerprint of (every stored file, `extra`): equal when a run would change nothing."""
        h = hashlib.sha256(extra.encode())
        for key, entry in sorted(self.entries.items()):
            h.update(f"{key}\0{entry.sha256}\n".encode())
        return h.hexdigest()

    def generation(self) -> tuple[Path, dict[str, Any]] | None:
        """The current records generation: its folder and meta.json (None: none, or unreadable,
        which costs a full run, never a wrong one)."""
        if not self.records:
            return None
        folder = self.dir / "records" / self.records
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or not _GENERATION_KEYS <= meta.keys():
            return None
        return folder, meta

    def new_generation(self) -> Path:
        """A fresh folder for this run's records generation; current once `commit` names it."""
        name = uuid.uuid4().hex[:16]
        folder = self.dir / "records" / name
        folder.mkdir(parents=True)
        self._pending = name
        return folder

    def commit(self, run_key: str) -> None:
        """Atomically replace the manifest (naming the generation `new_generation` made, if
        any), then remove records files and generations it no longer names."""
        self.records = self._pending or self.records
        doc = {"version": _VERSION, "last_run": run_key, "records": self.records,
               "files": [asdict(e) for _, e in sorted(self.entries.items())]}
        tmp = self.dir / "manifest.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        os.replace(tmp, self.dir / "manifest.json")
        self.last_run = run_key
        named = {e.records for e in self.entries.values()} | {_rejects_name(e.records) for e in self.entries.values()}
        for path in self.files_dir.iterdir():
            if path.name not in named:
                path.unlink(missing_ok=True)
        generations = self.dir / "records"
        if generations.is_dir():
            for folder in generations.iterdir():
                if folder.name != self.records:
                    shutil.rmtree(folder, ignore_errors=True)
