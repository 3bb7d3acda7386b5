"""The per-day partials cache (`analyzer._partials`): a cached run gives exactly what an uncached
one gives, whatever it finds in the cache; a repeat over the same records reads every partial
back; anything that changes a day's content or a query misses."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import _io, _partials, _report, analyses, findings

SAMPLE = Path(__file__).resolve().parent.parent / "sample_logs"


def _run(inputs: list[Path], staging: Path, cache: _partials.Cache | None,
         options: analyses.Options | None = None) -> analyses.Analysis:
    result = analyses.analyze(inputs, staging, connector_files=sorted((SAMPLE / "config").glob("*Connector*")),
                              domain_files=[SAMPLE / "config" / "Get-AcceptedDomain.json"],
                              options=options or analyses.Options(), cache=cache)
    assert result is not None
    return result


def _same(a: analyses.Analysis, b: analyses.Analysis) -> None:
    assert a.findings.equals(b.findings)
    assert a.hotspots.equals(b.hotspots)
    assert a.connectors.equals(b.connectors)
    assert a.period() == b.period()


@pytest.fixture()
def first(tmp_path: Path) -> analyses.Analysis:
    return _run([SAMPLE / "logs"], tmp_path / "first", None)


def test_a_repeat_reads_every_partial_back_and_gives_the_same_results(tmp_path: Path,
                                                                       first: analyses.Analysis) -> None:
    cache = _partials.Cache(tmp_path / "cache")
    filled = _run([first.records_dir], tmp_path / "filled", cache)
    queries = cache.misses + cache.hits
    assert cache.misses > 0
    again = _partials.Cache(tmp_path / "cache")
    repeat = _run([first.records_dir], tmp_path / "repeat", again)
    assert again.misses == 0 and again.hits == queries
    _same(filled, first)
    _same(repeat, first)


def test_the_report_is_the_same_from_the_cache(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from analyzer.cli import main

    out = tmp_path / "out"
    done = CliRunner().invoke(main, ["analyze", str(SAMPLE), "--out", str(out), "--quiet", "--no-cache"])
    assert done.exit_code == 0, done.output
    plain = _report.render(out)
    cache = _partials.Cache(tmp_path / "cache")
    assert _report.render(out, cache) == plain and cache.misses > 0
    hits = _partials.Cache(tmp_path / "cache")
    assert _report.render(out, hits) == plain and hits.misses == 0 and hits.hits > 0


def test_other_thresholds_recompute_what_they_change_and_match_an_uncached_run(tmp_path: Path,
                                                                                first: analyses.Analysis) -> None:
    cache = _partials.Cache(tmp_path / "cache")
    _run([first.records_dir], tmp_path / "filled", cache)
    changed = analyses.Options(findings=findings.Options(unrouted_min_messages=2, hotspot_min_deferrals=3))
    other = _partials.Cache(tmp_path / "cache")
    cached = _run([first.records_dir], tmp_path / "cached", other, changed)
    assert other.hits > 0 and other.misses > 0
    _same(cached, _run([first.records_dir], tmp_path / "plain", None, changed))


def test_a_changed_day_is_not_read_from_the_cache(tmp_path: Path, first: analyses.Analysis) -> None:
    cache = _partials.Cache(tmp_path / "cache")
    _run([first.records_dir], tmp_path / "filled", cache)
    # the same run's records, one part fewer: that day's content differs
    fewer = tmp_path / "fewer"
    shutil.copytree(first.records_dir, fewer)
    parts = sorted(fewer.rglob("*.parquet"))
    busiest = max(parts, key=lambda p: len(list(p.parent.glob("*.parquet"))) * 10**9 + p.stat().st_size)
    busiest.unlink()
    again = _partials.Cache(tmp_path / "cache")
    cached = _run([fewer], tmp_path / "cached", again)
    assert again.misses > 0
    _same(cached, _run([fewer], tmp_path / "plain", None))
    assert cached.records < first.records


def test_damaged_or_unwritable_caches_cost_time_not_results(tmp_path: Path, first: analyses.Analysis) -> None:
    cache = _partials.Cache(tmp_path / "cache")
    _run([first.records_dir], tmp_path / "filled", cache)
    files = sorted((tmp_path / "cache").glob("*/*.arrow"))
    for path in files:
        path.write_bytes(b"not arrow")
    damaged = _partials.Cache(tmp_path / "cache")
    _same(_run([first.records_dir], tmp_path / "damaged", damaged), first)
    assert damaged.hits == 0
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    nowhere = _partials.Cache(blocked / "cache")
    _same(_run([first.records_dir], tmp_path / "nowhere", nowhere), first)


def test_records_without_stamps_are_not_cached(tmp_path: Path, first: analyses.Analysis) -> None:
    plain = tmp_path / "plain" / "date=2026-11-10"
    plain.mkdir(parents=True)
    parts = sorted(first.records_dir.rglob("*.parquet"))
    pl.read_parquet(parts[0]).write_parquet(plain / "part-0.parquet")
    assert _partials.day_identity([plain / "part-0.parquet"]) is None
    assert _partials.day_identity(parts[:1]) is not None
    assert _partials.day_identity(parts[:1]) != _partials.day_identity(parts[:2])
    cache = _partials.Cache(tmp_path / "cache")
    day = _partials.record_days(tmp_path / "plain")[0]
    assert day.identity is None
    _partials.collect(day, lambda frame: [frame.select(pl.len())], cache)
    assert cache.misses == cache.hits == 0 and not (tmp_path / "cache").exists()


def test_embedded_tables_give_the_same_key_whatever_their_memory_layout(tmp_path: Path) -> None:
    values = pl.DataFrame({"v": sorted(f"a-long-enough-value-{i}" for i in range(50))})
    more = pl.DataFrame({"v": sorted(values["v"].to_list() + [f"b-another-long-value-{i}" for i in range(50)])})
    sliced = more.filter(pl.col("v").str.starts_with("a-"))  # the same values in a larger buffer
    assert sliced.equals(values)
    day = _partials.Day(pl.LazyFrame({"v": ["x"]}), "identity")
    keys = []
    for table in (values, sliced):
        cache = _partials.Cache(tmp_path / "cache")
        wanted = _partials.canonical(table).get_column("v").implode()
        _partials.collect(day, lambda frame, wanted=wanted: [frame.filter(pl.col("v").is_in(wanted))], cache)
        keys.append(cache.misses)
    assert keys == [1, 0]


def test_prune_keeps_the_most_recently_used(tmp_path: Path) -> None:
    cache = _partials.Cache(tmp_path / "cache", limit_bytes=0)
    day = _partials.Day(pl.LazyFrame({"a": list(range(1000))}), "identity")
    for n in range(4):
        _partials.collect(day, lambda frame, n=n: [frame.select((pl.col("a") + n).sum())], cache)
    files = sorted((tmp_path / "cache").glob("*/*.arrow"), key=lambda p: p.stat().st_mtime)
    assert len(files) == 4
    for age, path in enumerate(files):
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    cache.limit_bytes = files[-1].stat().st_size + files[-2].stat().st_size
    cache.prune()
    assert sorted((tmp_path / "cache").glob("*/*.arrow")) == sorted(files[-2:])


def test_default_cache_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILFLOW_CACHE_DIR", str(tmp_path / "here"))
    assert _partials.default_cache().root == tmp_path / "here"  # type: ignore[union-attr]
    monkeypatch.setenv("MAILFLOW_CACHE_DIR", "")
    assert _partials.default_cache() is None
    monkeypatch.delenv("MAILFLOW_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _partials.default_cache().root == tmp_path / "xdg" / "mailflow" / "partials"  # type: ignore[union-attr]


def test_cli_no_cache_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from analyzer.cli import main

    monkeypatch.setenv("MAILFLOW_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    done = runner.invoke(main, ["analyze", str(SAMPLE), "--out", str(tmp_path / "a"), "--quiet", "--no-cache"])
    assert done.exit_code == 0, done.output
    assert not (tmp_path / "cache").exists()
    done = runner.invoke(main, ["analyze", str(SAMPLE), "--out", str(tmp_path / "b"), "--quiet"])
    assert done.exit_code == 0, done.output
    assert any((tmp_path / "cache").glob("*/*.arrow"))
    assert (tmp_path / "a" / "findings.json").read_text() == (tmp_path / "b" / "findings.json").read_text()
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["partials_cache"] is None
    filled = json.loads((tmp_path / "b" / "summary.json").read_text())["partials_cache"]
    assert filled["folder"] == str(tmp_path / "cache") and filled["misses"] > 0 and filled["hits"] == 0
    done = runner.invoke(main, ["analyze", str(tmp_path / "b" / "records"), str(SAMPLE / "config"),
                                "--out", str(tmp_path / "c"), "--quiet"])
    assert done.exit_code == 0, done.output
    again = json.loads((tmp_path / "c" / "summary.json").read_text())["partials_cache"]
    assert again["misses"] == 0 and again["hits"] == filled["misses"] + filled["hits"]
    assert (tmp_path / "c" / "findings.json").read_text() == (tmp_path / "b" / "findings.json").read_text()


def test_a_partial_hit_takes_the_missing_results_from_compute_in_order(tmp_path: Path) -> None:
    cache = _partials.Cache(tmp_path / "cache")
    day = _partials.Day(pl.LazyFrame({"a": [3, 1, 2]}), "identity")

    def build(frame: pl.LazyFrame) -> list[pl.LazyFrame]:
        return [frame.select(pl.col("a").sum()), frame.select(pl.col("a").max()), frame.select(pl.col("a").min())]

    calls = []

    def compute(frame: pl.LazyFrame) -> list[pl.DataFrame]:
        calls.append(1)
        return [q.collect() for q in build(frame)]

    first = _partials.collect(day, lambda frame: build(frame)[1:2], cache)
    assert first[0].item() == 3 and cache.misses == 1
    got = _partials.collect(day, build, cache, compute)
    assert [g.item() for g in got] == [6, 3, 1]
    assert (cache.hits, cache.misses, len(calls)) == (1, 3, 1)
    again = _partials.collect(day, build, cache, compute)
    assert [g.item() for g in again] == [6, 3, 1] and len(calls) == 1


def test_an_output_analysed_again_in_place_keeps_its_records(tmp_path: Path) -> None:
    """The admin's loop: analyse once, then re-run on the output's own records/ with other
    thresholds into the same folder. The reused parts are linked before the old folder is
    replaced, so nothing is lost, and the findings are those of a fresh run."""
    from click.testing import CliRunner

    from analyzer.cli import main

    runner = CliRunner()
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    assert runner.invoke(main, ["analyze", str(SAMPLE), "--out", str(out), "--quiet"]).exit_code == 0
    before = sorted(p.relative_to(out) for p in (out / "records").rglob("*.parquet"))
    again = runner.invoke(main, ["analyze", str(out / "records"), str(SAMPLE / "config"), "--out", str(out),
                                 "--unrouted-min", "2", "--quiet"])
    assert again.exit_code == 0, again.output
    assert sorted(p.relative_to(out) for p in (out / "records").rglob("*.parquet")) == before
    assert all("reused" in f["notes"] for f in json.loads((out / "summary.json").read_text())["inputs"])
    assert runner.invoke(main, ["analyze", str(SAMPLE), "--out", str(fresh), "--unrouted-min", "2",
                                "--quiet", "--no-cache"]).exit_code == 0
    assert (out / "findings.json").read_text() == (fresh / "findings.json").read_text()
    assert json.loads((out / "summary.json").read_text())["records"] == \
        json.loads((fresh / "summary.json").read_text())["records"]


def _everything(root: Path) -> tuple:
    """Every aggregate the CLI computes from a records/ folder: findings, hot spots, connector
    usage, the report's traffic counts and top subjects (uncached)."""
    from analyzer import config

    configs, _ = analyses.classify_inputs([SAMPLE / "config"])
    connectors, domains = config.load_config(configs)
    options = findings.Options(unrouted_min_messages=1)  # every rule has rows to merge
    days = _partials.record_days(root)
    found, spots = analyses.findings_and_hotspots(findings.PolarsAggregator(days), connectors, domains, clouds={},
                                                  tables={}, options=options)
    traffic = _report._traffic_counts(root)
    return (found, spots, analyses.connector_usage(days, connectors),
            *(traffic[k].sort(traffic[k].columns) for k in sorted(traffic)), _report._subjects(root))


def test_a_day_read_in_slices_gives_what_it_gives_whole(tmp_path: Path, first: analyses.Analysis,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule that selects a day's rows into memory does so a slice of parts at a time (memory
    bounded whatever a day holds): each slice's partial results merge into the same answers."""
    split = tmp_path / "split"
    for day_parts in _io.record_day_parts(first.records_dir):
        rows = pl.concat([pl.read_parquet(p) for p in day_parts])
        target = split / day_parts[0].parent.name
        target.mkdir(parents=True)
        for n, chunk in enumerate(rows.iter_slices(25)):
            chunk.write_parquet(target / f"part-{n:04d}.parquet")
    whole = _everything(first.records_dir)
    monkeypatch.setattr(_partials, "SLICE_ROWS", 60)
    days = _partials.record_days(split)
    assert max(len(day.slices) for day in days) > 3
    assert all(len(day.slices) == 1 for day in _partials.record_days(first.records_dir))
    sliced = _everything(split)
    assert sliced[0].height > 5  # the comparison has findings to compare
    for a, b in zip(whole, sliced):
        assert a == b if isinstance(a, list) else a.equals(b)
    narrowed = days[0].filter(pl.col("event") == "defer")
    assert narrowed.identity is None and len(narrowed.slices) == len(days[0].slices)
    assert sum(s.select(pl.len()).collect().item() for s in narrowed.slices) == \
        narrowed.frame.select(pl.len()).collect().item()


_CELL = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_CELL, _CELL, st.one_of(st.none(), st.integers(0, 4))), max_size=40))
def test_distinct_pairs_are_the_unique_pairs(rows: list) -> None:
    """`distinct_pairs` gives the rows of ``unique()`` over the keys and the value, null keys and
    null values counting as one, and counts merge as ``n_unique`` of them."""
    frame = pl.DataFrame(rows, schema={"k1": pl.String, "k2": pl.String, "v": pl.Int64}, orient="row")
    got = _partials.distinct_pairs(frame.lazy(), ["k1", "k2"], pl.col("v") * 2, "_v").collect()
    want = frame.select("k1", "k2", (pl.col("v") * 2).alias("_v")).unique()
    order = ["k1", "k2", "_v"]
    assert got.sort(order, nulls_last=True).equals(want.sort(order, nulls_last=True))
    counts = got.group_by("k1", "k2").agg(pl.col("_v").n_unique().alias("n"))
    expected = want.group_by("k1", "k2").agg(pl.len().alias("n"))
    assert counts.sort("k1", "k2", nulls_last=True).equals(expected.sort("k1", "k2", nulls_last=True))
