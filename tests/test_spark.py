"""`analyzer.spark` on a local Spark session: the same records give the same outputs as the CLI.

`mailflow analyze sample_logs` (every finding kind is planted there) runs first; `analyzer.spark`
then re-analyzes its ``records/`` folder with the same configuration, and findings, hot spots,
connector usage, findings.json and the attributed records must equal the CLI's, as must a run
with a ``--since``/``--until`` window (its input one Parquet file with duplicates to remove).
`attribute` is checked row for row against `Attributor.attribute` on a hand-made frame, and the
Spark SQL aggregations against the polars ones on random records (cases the sample lacks).

PySpark and Java are requirements of this module, not reasons to skip: CI installs both
(``.[spark]`` and Debian's ``default-jre-headless``), and a run without them proves nothing.
The session uses a time zone with a half-hour offset on purpose: no result may depend on it.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import pickle
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

try:
    from pyspark.sql import SparkSession
except ImportError as exc:  # a failure, not a skip (see the module docstring)
    raise RuntimeError("PySpark is not installed: pip install '.[spark]'") from exc

from analyzer import analyses, attribution, config, findings
from analyzer import spark as mspark
from analyzer.cli import main as cli_main
from analyzer.errors import ConfigError, InputError
from analyzer.matching import PrefixTable
from analyzer.readers import SCHEMA

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_logs"
CONFIG = sorted((SAMPLE / "config").iterdir())
SINCE = dt.datetime(2026, 11, 18, 6, 30, tzinfo=dt.timezone.utc)
UNTIL = dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        pytest.fail("Java not found: install a JRE 17+ (Debian: apt-get install default-jre-headless)")
    # The Python workers must run this interpreter (the one with the package and its compiled
    # matcher); SparkContext reads the variable once, when it starts.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        session = (
            SparkSession.builder.master("local[2]")
            .appName("mailflow-analyzer-tests")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.sql.session.timeZone", "Asia/Kolkata")  # UTC+05:30: must not matter
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _cli(out: Path, *args: str) -> Path:
    result = CliRunner().invoke(cli_main, ["analyze", str(SAMPLE), "--out", str(out), "--quiet", *args])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def cli_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cli(tmp_path_factory.mktemp("cli") / "report")


def _records(folder: Path) -> pl.DataFrame:
    """A records/ folder as one frame (with the ``date`` partition column), in a canonical order."""
    frame = pl.read_parquet(folder / "**" / "*.parquet", hive_partitioning=True)
    return frame.sort(frame.columns, nulls_last=True)


def _layout(folder: Path) -> set[str]:
    """Every file and folder below `folder`, as ``date=.../part-*.parquet`` patterns."""
    out = set()
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_dir():
            out.add(str(rel))
        else:
            assert path.suffix == ".parquet" and path.name.startswith("part-"), rel
            out.add(f"{rel.parent}/part-*.parquet")
    return out


def _assert_same_outputs(cli: Path, ours: Path) -> None:
    for name in ("findings", "hotspots", "connectors"):
        expected, got = pl.read_parquet(cli / f"{name}.parquet"), pl.read_parquet(ours / f"{name}.parquet")
        assert got.schema == expected.schema, name
        # row for row: both are sorted by the same rules
        assert got.to_dicts() == expected.to_dicts(), name
    assert (ours / "findings.json").read_bytes() == (cli / "findings.json").read_bytes()
    expected, got = _records(cli / "records"), _records(ours / "records")
    assert got.schema == expected.schema
    assert got.equals(expected)
    assert _layout(ours / "records") == _layout(cli / "records")


def test_sample_logs_give_the_cli_outputs(spark: SparkSession, cli_out: Path, tmp_path: Path) -> None:
    result = mspark.analyze(spark, cli_out / "records", tmp_path / "spark", connector_files=CONFIG)
    _assert_same_outputs(cli_out, tmp_path / "spark")
    found = pl.read_parquet(cli_out / "findings.parquet")
    assert result.findings.equals(found)
    assert len(set(found["kind"])) == 12  # every kind is planted, so every rule was compared
    assert result.records == json.loads((cli_out / "summary.json").read_text())["records"] == 1836
    assert result.records_uri == (tmp_path / "spark" / "records").as_uri()


def test_since_until_window_gives_the_cli_outputs(spark: SparkSession, cli_out: Path, tmp_path: Path) -> None:
    """Also: the input is one Parquet file (not a records/ folder) holding the CLI's attribution
    and ``date`` columns, which are dropped, and copies of records from "another export", which
    are removed as the CLI's readers remove them (trace rows by Microsoft's key, though their
    status differs; other rows by content)."""
    windowed = _cli(tmp_path / "cli", "--since", SINCE.strftime("%Y-%m-%dT%H:%M:%S"),
                    "--until", UNTIL.strftime("%Y-%m-%dT%H:%M:%S"))
    records = _records(cli_out / "records")
    copies = pl.concat([
        records.filter(pl.col("source_format") == "exo_trace").head(40).with_columns(pl.lit("Expanded").alias("status")),
        records.filter(pl.col("source_format") != "exo_trace").gather_every(7),
    ]).with_columns(pl.lit("~overlapping-export.csv").alias("source_file"))  # sorts after the originals
    pl.concat([copies, records]).write_parquet(tmp_path / "records.parquet")
    options = analyses.Options(since=SINCE, until=UNTIL)
    result = mspark.analyze(spark, tmp_path / "records.parquet", tmp_path / "spark", connector_files=CONFIG,
                            options=options)
    _assert_same_outputs(windowed, tmp_path / "spark")
    # the window matters: fewer records, other findings, partial first day
    full = pl.read_parquet(cli_out / "findings.parquet")
    assert 0 < result.records < 1836
    assert not result.findings.drop("first_seen", "last_seen").equals(full.drop("first_seen", "last_seen"))
    records = _records(tmp_path / "spark" / "records")
    assert records["timestamp"].min() >= SINCE and records["timestamp"].max() < UNTIL
    assert sorted({str(d) for d in records["date"]}) == ["2026-11-18", "2026-11-19", "2026-11-20"]


def test_window_without_records(spark: SparkSession, cli_out: Path, tmp_path: Path) -> None:
    out = tmp_path / "spark"
    shutil.copytree(cli_out, out, ignore=shutil.ignore_patterns("records"))  # an earlier CLI run's outputs
    late = analyses.Options(since=dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc))
    connectors, domains = config.load_config(CONFIG)
    result = mspark.analyze(spark, cli_out / "records", out, connector_files=CONFIG, options=late)
    assert result.records == 0
    assert result.findings.equals(attribution.config_findings(connectors, domains))  # configuration only
    assert result.hotspots.height == 0 and result.hotspots.schema == pl.Schema(findings.HOTSPOTS_SCHEMA)
    assert result.connectors.equals(analyses.connector_usage(None, connectors))
    assert sorted(p.name for p in out.iterdir()) == [
        "connectors.parquet", "findings.json", "findings.parquet", "hotspots.parquet", "records"]
    assert not list((out / "records").iterdir())


def _normalized(rows: list[dict]) -> pl.DataFrame:
    base = {c: None for c in SCHEMA} | {"timestamp": dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc),
                                         "source_format": "exo_trace", "direction": "inbound"}
    return pl.DataFrame([base | r for r in rows], schema=SCHEMA, orient="row")


def test_attribute_matches_attributor_row_for_row(spark: SparkSession) -> None:
    connectors, domains = config.load_config(CONFIG)
    for item in (connectors, domains, attribution.Options(internal_networks=("100.100.0.0/16",))):
        assert pickle.loads(pickle.dumps(item)) == item  # what the tasks receive
    asn = PrefixTable.from_pairs([("203.0.113.0/24", 0), ("198.51.100.0/24", 1), ("2001:db8::/32", 2)])
    tables = {"asn": (asn, ["AS64500", "AS64501", "AS64502"])}
    ips = ["203.0.113.5", "203.0.113.200", "198.51.100.35", "192.0.2.20", "192.0.2.70", "10.20.30.11",
           "100.100.1.1", "40.107.23.54", "2001:db8::25", "::ffff:203.0.113.6", "not an ip", "", None]
    senders = ["contoso.com", "fabrikam.com", "northwindtraders.com", "litware.com", "mail.contoso.com",
               "sub.fabrikam-legacy.com", "example.org", None]
    recipients = ["contoso.com", "fabrikam.com", "gmail.com", "contoso.co.uk", None]
    rows = [{"client_ip": ip, "sender_domain": senders[i % len(senders)],
             "recipient_domain": recipients[i % len(recipients)], "message_key": f"k{i}", "source_line": i,
             "connector_name": ["Fabrikam partner", None, " to fabrikam "][i % 3]}
            for i, ip in enumerate(ips * 3)]
    frame = _normalized(rows)
    options = attribution.Options(internal_networks=("100.100.0.0/16",))
    expected = attribution.Attributor.build(connectors, domains, ip_tables=tables, options=options).attribute(frame)
    df = spark.createDataFrame(frame.to_arrow()).repartition(3)  # several tasks, each with its own attributor
    got = mspark.attribute(df, connectors, domains, ip_tables=tables, options=options)
    assert got.columns == expected.columns
    assert [f.dataType for f in got.schema.fields[-8:]] == [mspark.spark_type(t) for t in expected.schema.dtypes()[-8:]]
    got_frame = mspark._collect(got).cast(dict(expected.schema))
    key = ["source_line"]
    assert got_frame.sort(key).equals(expected.sort(key))
    # attribution columns already present are replaced, not duplicated
    again = mspark.attribute(got, connectors, domains, ip_tables=tables, options=options)
    assert again.columns == expected.columns


def test_user_mistakes_raise_analyzer_errors(spark: SparkSession, cli_out: Path, tmp_path: Path) -> None:
    connectors, domains = config.load_config(CONFIG)
    df = spark.createDataFrame(_normalized([{"client_ip": "192.0.2.1"}]).to_arrow())
    with pytest.raises(ConfigError):  # an ip table named like an attribution column
        mspark.attribute(df, connectors, domains, ip_tables={"ip_class": (PrefixTable(), [])})
    with pytest.raises(InputError, match="attribution needs"):
        mspark.attribute(df.drop("sender_domain"), connectors, domains)
    with pytest.raises(InputError, match="cannot read Parquet records"):
        mspark.read_records(spark, tmp_path / "missing")
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "other.parquet")
    with pytest.raises(InputError, match="without the normalized columns"):
        mspark.read_records(spark, tmp_path / "other.parquet")
    with pytest.raises(InputError, match="in the output folder"):
        mspark.analyze(spark, cli_out / "records", cli_out, connector_files=CONFIG)
    assert mspark.main([str(cli_out / "records"), "--hotspot-min", "0"]) == 2  # before any session


def test_engines_agree_on_synthetic_records(spark: SparkSession) -> None:
    """Random attributed records (tests/test_findings.py's generator: nulls, IPv6, an ip-table
    column, bursts) through both engines, with a 30-minute window: the same findings and hot
    spots, though few of these cases are in the sample."""
    spec = importlib.util.spec_from_file_location("_findings_cases", REPO / "tests" / "test_findings.py")
    assert spec is not None and spec.loader is not None
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    data = cases.synthetic(20_000, seed=11)
    options = findings.Options(hotspot_window=dt.timedelta(minutes=30), hotspot_min_deferrals=5,
                               unrouted_min_messages=20, ip_tables=("asn",))
    expected = findings.traffic_findings(data.lazy(), cases.CONNECTORS, (), options)
    expected_spots = findings.hotspots(data.lazy(), cases.CONNECTORS, options)
    assert expected.height > 100 and expected_spots["hot"].any()
    assert set(expected["kind"]) >= {"greylisting_hotspot", "relay_rejected", "unrouted_inbound", "partner_bypass",
                                     "outbound_bypass", "attribution_mismatch", "disabled_connector_traffic"}
    records = spark.createDataFrame(data.to_arrow())
    with mspark.SparkAggregator(records) as aggregator:
        got = findings.traffic_findings_from(aggregator, cases.CONNECTORS, options)
        spots = findings.hotspots_from(aggregator, cases.CONNECTORS, options)
    assert got.to_dicts() == expected.to_dicts()
    assert spots.equals(expected_spots)
    usage = analyses.connector_usage(data.lazy(), cases.CONNECTORS)
    assert mspark.connector_usage(records, cases.CONNECTORS).equals(usage)
