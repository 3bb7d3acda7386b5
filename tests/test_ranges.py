"""`read_ranges` / `label_codes` / `load_table` on every real range file and on small synthetic ones.

Error messages are compared in full: they are what the CLI prints (one line, naming the file and,
for line formats, the line).
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import json
from pathlib import Path

import pytest

from analyzer.errors import AnalyzerError, PrefixError
from analyzer.matching import NO_MATCH, PrefixTable
from analyzer.ranges import RangeFileError, label_codes, load_table, read_ranges

HINT = "hint: write a CIDR (192.0.2.0/24, 2001:db8::/32), a single address or a range a.b.c.d-e.f.g.h"

# file name: (pairs, IPv6 pairs, distinct prefixes, distinct labels, first pair, last pair, first labels)
REAL_FILES = {
    "aws_ip-ranges.json": (
        13_344, 4_373, 9_066, 25,
        ("3.4.12.4/32", "AMAZON"), ("2600:1f14:802:7300::/56", "AURORA_DSQL"),
        ["AMAZON", "CHIME_VOICECONNECTOR", "ROUTE53_HEALTHCHECKS"],
    ),
    "azure_ServiceTags_Public.json": (
        90_493, 23_415, 50_887, 2_967,
        ("4.145.74.52/30", "ActionGroup"), ("2a01:111:f403:f910::/62", "AzureCloud"),
        ["ActionGroup", "ApplicationInsightsAvailability", "AutonomousDevelopmentPlatform"],
    ),
    "google_cloud.json": (
        782, 46, 782, 46,
        ("34.1.208.0/20", "africa-south1"), ("2600:1900:4280::/44", "us-west8"),
        ["africa-south1", "asia-east1", "asia-east2"],
    ),
    "ipverse_country_prefixes_v4v6.csv": (
        243_034, 67_839, 243_034, 237,
        ("46.172.224.0/19", "ad"), ("2c0f:fd48::/32", "zw"),
        ["ad", "ae", "af"],
    ),
    "lord-alfred_microsoft_ipv4.txt": (
        49_110, 0, 49_110, 1,
        ("1.186.0.0/16", "lord-alfred_microsoft_ipv4"), ("217.177.96.0/19", "lord-alfred_microsoft_ipv4"),
        ["lord-alfred_microsoft_ipv4"],
    ),
    "lord-alfred_microsoft_ipv6.txt": (
        18_510, 18_510, 18_510, 1,
        ("2a01:110::/32", "lord-alfred_microsoft_ipv6"), ("2801:80:1d0::/48", "lord-alfred_microsoft_ipv6"),
        ["lord-alfred_microsoft_ipv6"],
    ),
    "natecohen_m365_worldwide_exchange_ip_cidr.txt": (
        34, 18, 34, 1,
        ("2603:1006::/40", "natecohen_m365_worldwide_exchange_ip_cidr"),
        ("204.79.197.215/32", "natecohen_m365_worldwide_exchange_ip_cidr"),
        ["natecohen_m365_worldwide_exchange_ip_cidr"],
    ),
    "routeviews-rv2-20160202-1200.pfx2as.gz": (
        615_842, 0, 615_842, 53_975,
        ("1.0.0.0/24", "15169"), ("223.255.254.0/24", "55415"),
        ["15169", "56203", "38803"],
    ),
    "routeviews-rv6-20160202-1200.pfx2as.gz": (
        28_744, 28_744, 28_744, 10_949,
        ("2001::/32", "6939_1101_25192"), ("2c0f:ffd8::/32", "33762"),
        ["6939_1101_25192", "112", "2500"],
    ),
}


@functools.lru_cache(maxsize=None)
def _read(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """The file's pairs (a fresh read per test module run) and each prefix normalized."""
    pairs = read_ranges(path)
    return pairs, [str(ipaddress.ip_network(p, strict=False)) for p, _ in pairs]


def _param(name: str):  # type: ignore[no-untyped-def]
    big = REAL_FILES[name][0] > 200_000
    return pytest.param(name, marks=[pytest.mark.slow] if big else [])


REAL_NAMES = [_param(name) for name in sorted(REAL_FILES)]


# ---------------------------------------------------------------------------------------------
# the real files


def test_every_real_file_is_covered(shared_data: Path) -> None:
    assert sorted(p.name for p in (shared_data / "ip_prefixes").iterdir()) == sorted(REAL_FILES)


@pytest.mark.parametrize("name", REAL_NAMES)
def test_read_real_file(shared_data: Path, name: str) -> None:
    count, v6, distinct, n_labels, first, last, first_labels = REAL_FILES[name]
    pairs, normalized = _read(shared_data / "ip_prefixes" / name)
    assert len(pairs) == count
    assert sum(":" in p for p, _ in pairs) == v6
    assert pairs[0] == first
    assert pairs[-1] == last
    assert all(isinstance(p, str) and isinstance(label, str) for p, label in pairs)
    assert all(p == p.strip() and p for p, _ in pairs)
    assert len(set(normalized)) == distinct

    coded, labels = label_codes(pairs)
    assert len(labels) == n_labels == len(set(labels))
    assert labels[: len(first_labels)] == first_labels
    assert [p for p, _ in coded] == [p for p, _ in pairs]
    assert [labels[c] for _, c in coded] == [label for _, label in pairs]


@pytest.mark.parametrize("name", REAL_NAMES)
def test_every_real_prefix_is_accepted_by_both_backends(shared_data: Path, name: str) -> None:
    path = shared_data / "ip_prefixes" / name
    raw, normalized = _read(path)
    pairs, labels = label_codes(raw)
    compiled = PrefixTable.from_pairs(pairs, backend="compiled")  # raises PrefixError on any reject
    twin = PrefixTable.from_pairs(pairs, backend="python")
    assert len(compiled) == len(twin) == REAL_FILES[name][2]
    stored = dict(compiled.prefixes())
    # A prefix listed more than once keeps the code of its last listing.
    assert stored == {key: code for key, (_, code) in zip(normalized, pairs)}
    if len(pairs) < 100_000:  # the twin's prefixes() costs seconds on the two biggest tables
        assert dict(twin.prefixes()) == stored
    # load_table builds the same table.
    table, loaded_labels = load_table(path)
    assert loaded_labels == labels
    assert dict(table.prefixes()) == stored


def test_pfx2as_keeps_as_field_as_written(shared_data: Path) -> None:
    v4 = dict(read_ranges(shared_data / "ip_prefixes" / "routeviews-rv2-20160202-1200.pfx2as.gz"))
    assert v4["37.1.241.0/24"] == "31167,65623"  # multi-origin, comma-separated
    assert v4["37.142.0.0/17"] == "21450_21450,65500"  # AS-set and multi-origin mixed
    v6 = dict(read_ranges(shared_data / "ip_prefixes" / "routeviews-rv6-20160202-1200.pfx2as.gz"))
    assert v6["2001:410::/32"] == "271,8111,26677"


def test_pfx2as_non_canonical_ipv6_is_normalized_by_the_table(shared_data: Path) -> None:
    # RouteViews writes a few IPv6 prefixes with '::' standing for a single zero group; the text is
    # passed through as written and the table stores the canonical form.
    pairs = read_ranges(shared_data / "ip_prefixes" / "routeviews-rv6-20160202-1200.pfx2as.gz")
    written = [p for p, _ in pairs if str(ipaddress.ip_network(p, strict=False)) != p]
    assert written == [
        "2001:668::3:ffff:0:adcd:3354/126", "2001:668::3:ffff:0:adcd:3838/126",
        "2001:668::3:ffff:0:adcd:383c/126", "2001:4860:1:1::799d:0:4/126",
        "2607:f010:3fe:3::ff:fe00:0/124", "2607:f010:3fe:3::ff:fe00:10/124",
        "2607:f010:3fe:b::ff:fe00:0/124", "2607:f010:3fe:b::ff:fe00:10/124",
    ]
    table = PrefixTable.from_pairs([(p, i) for i, p in enumerate(written)])
    assert [p for p, _ in table.prefixes()] == [
        "2001:668:0:3:ffff:0:adcd:3354/126", "2001:668:0:3:ffff:0:adcd:3838/126",
        "2001:668:0:3:ffff:0:adcd:383c/126", "2001:4860:1:1:0:799d:0:4/126",
        "2607:f010:3fe:3:0:ff:fe00:0/124", "2607:f010:3fe:3:0:ff:fe00:10/124",
        "2607:f010:3fe:b:0:ff:fe00:0/124", "2607:f010:3fe:b:0:ff:fe00:10/124",
    ]
    # 'ffff:0' inside such an address is not the IPv4-mapped prefix.
    assert table.lookup_one("2001:668:0:3:ffff:0:adcd:3355") == 0
    assert table.lookup_one("173.205.51.85") == NO_MATCH


def test_load_table_real_azure_known_answer(shared_data: Path) -> None:
    table, labels = load_table(shared_data / "ip_prefixes" / "azure_ServiceTags_Public.json")
    assert labels[table.lookup_one("40.107.23.54")] == "EOPExternalPublishedIPs"
    assert table.lookup_one("104.47.41.33") == NO_MATCH


# ---------------------------------------------------------------------------------------------
# synthetic files, one per format


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_azure_json(tmp_path: Path) -> None:
    doc = {
        "changeNumber": 1,
        "cloud": "Public",
        "values": [
            {"name": "TagA", "properties": {"addressPrefixes": ["10.0.0.0/8", "2001:db8::/32"]}},
            {"name": "TagB", "properties": {"addressPrefixes": []}},
            {"name": "TagC", "properties": {"addressPrefixes": None}},
            {"name": "TagD"},  # no properties at all
            {"name": "TagE", "properties": {"addressPrefixes": ["10.0.0.0/8", "10.1.0.0/16"]}},
            {"properties": {"addressPrefixes": ["192.0.2.0/24"]}},  # no name
        ],
    }
    path = _write(tmp_path / "ServiceTags_Public_20250721.json", json.dumps(doc, indent=2))
    assert read_ranges(path) == [
        ("10.0.0.0/8", "TagA"),
        ("2001:db8::/32", "TagA"),
        ("10.0.0.0/8", "TagE"),
        ("10.1.0.0/16", "TagE"),
        ("192.0.2.0/24", ""),
    ]
    table, labels = load_table(path)
    assert labels == ["TagA", "TagE", ""]
    assert labels[table.lookup_one("10.200.0.1")] == "TagE"  # listed twice: the later tag wins
    assert labels[table.lookup_one("10.1.0.1")] == "TagE"
    assert labels[table.lookup_one("2001:db8::1")] == "TagA"
    assert len(table) == 4


def test_aws_json(tmp_path: Path) -> None:
    doc = {
        "syncToken": "1",
        "prefixes": [
            {"ip_prefix": "3.4.12.4/32", "region": "eu-west-1", "service": "AMAZON"},
            {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "EC2"},
            {"ip_prefix": "", "service": "EMPTY"},  # no prefix: skipped
            {"ip_prefix": "198.51.100.0/24"},  # no service: empty label
        ],
        "ipv6_prefixes": [
            {"ipv6_prefix": "2600:1f14::/35", "region": "us-west-2", "service": "S3"},
        ],
    }
    path = _write(tmp_path / "ip-ranges.json", json.dumps(doc))
    assert read_ranges(path) == [
        ("3.4.12.4/32", "AMAZON"),
        ("3.5.140.0/22", "EC2"),
        ("198.51.100.0/24", ""),
        ("2600:1f14::/35", "S3"),
    ]


def test_aws_json_without_ipv6_list(tmp_path: Path) -> None:
    path = _write(tmp_path / "ip-ranges.json", '{"prefixes": [{"ip_prefix": "3.4.12.4/32", "service": "AMAZON"}]}')
    assert read_ranges(path) == [("3.4.12.4/32", "AMAZON")]


def test_google_json(tmp_path: Path) -> None:
    doc = {
        "syncToken": "1",
        "prefixes": [
            {"ipv4Prefix": "34.1.208.0/20", "service": "Google Cloud", "scope": "africa-south1"},
            {"ipv6Prefix": "2600:1900:8000::/44", "service": "Google Cloud", "scope": "africa-south1"},
            {"ipv4Prefix": "34.35.0.0/16", "service": "Google Cloud"},  # no scope: empty label
        ],
    }
    path = _write(tmp_path / "cloud.json", json.dumps(doc))
    assert read_ranges(path) == [
        ("34.1.208.0/20", "africa-south1"),
        ("2600:1900:8000::/44", "africa-south1"),
        ("34.35.0.0/16", ""),
    ]


def test_gzipped_json(tmp_path: Path) -> None:
    path = tmp_path / "cloud.json.gz"
    path.write_bytes(gzip.compress(b'{"prefixes": [{"ipv4Prefix": "34.1.208.0/20", "scope": "x"}]}'))
    assert read_ranges(path) == [("34.1.208.0/20", "x")]


def test_unknown_json(tmp_path: Path) -> None:
    path = _write(tmp_path / "other.json", '{"items": [{"cidr": "10.0.0.0/8"}]}')
    with pytest.raises(RangeFileError) as info:
        read_ranges(path)
    assert str(info.value) == (
        "unrecognized JSON range file: expected Azure service tags, AWS ip-ranges or Google cloud.json, "
        f"got another JSON object ({path})"
    )
    assert isinstance(info.value, AnalyzerError)
    assert isinstance(info.value, ValueError)


def test_json_values_not_a_list_is_unknown(tmp_path: Path) -> None:
    path = _write(tmp_path / "odd.json", '{"values": {"name": "x"}}')
    with pytest.raises(RangeFileError, match=r"^unrecognized JSON range file: .*\(.*odd\.json\)$"):
        read_ranges(path)


def test_pfx2as(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "routeviews-rv2-20990101-1200.pfx2as",
        "1.0.0.0\t24\t15169\n"
        "\n"
        "1.0.4.0\t22\t56203\r\n"  # CRLF
        "37.1.241.0\t24\t31167,65623\n"
        "2001:db8::\t32\t 6939_1101 \n",  # the AS field is stripped
    )
    assert read_ranges(path) == [
        ("1.0.0.0/24", "15169"),
        ("1.0.4.0/22", "56203"),
        ("37.1.241.0/24", "31167,65623"),
        ("2001:db8::/32", "6939_1101"),
    ]


def test_pfx2as_gz(tmp_path: Path) -> None:
    path = tmp_path / "x.pfx2as.gz"
    path.write_bytes(gzip.compress(b"1.0.0.0\t24\t15169\n1.0.0.0\t16\t64496\n"))
    pairs = read_ranges(path)
    assert pairs == [("1.0.0.0/24", "15169"), ("1.0.0.0/16", "64496")]
    table, labels = load_table(path)
    assert labels[table.lookup_one("1.0.0.1")] == "15169"
    assert labels[table.lookup_one("1.0.1.1")] == "64496"


def test_pfx2as_line_with_two_fields(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.pfx2as", "1.0.0.0\t24\t15169\n\n1.0.4.0\t22\n1.0.5.0\t24\t1\n")
    with pytest.raises(RangeFileError) as info:
        read_ranges(path)
    # Line numbers count every physical line, blank ones included.
    assert str(info.value) == (
        f"malformed pfx2as line: expected prefix<TAB>length<TAB>asn, got 2 fields ({path}:3)"
    )


def test_pfx2as_line_with_four_fields(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.pfx2as", "1.0.0.0\t24\t15169\t\n")
    with pytest.raises(RangeFileError) as info:
        read_ranges(path)
    assert str(info.value) == (
        f"malformed pfx2as line: expected prefix<TAB>length<TAB>asn, got 4 fields ({path}:1)"
    )


def test_csv_with_comments(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "countries.csv",
        "# derived from somewhere, CC0\n"
        "prefix,country\n"
        "46.172.224.0/19,ad\n"
        "# a comment between rows\n"
        "\n"
        " 2001:db8::/32 , zz \r\n"
        "192.0.2.0/24,xx,extra column ignored\n",
    )
    assert read_ranges(path) == [
        ("46.172.224.0/19", "ad"),
        ("2001:db8::/32", "zz"),
        ("192.0.2.0/24", "xx"),
    ]


@pytest.mark.parametrize("header", ["prefix,label", "CIDR,name", " Network , tag", "ip_prefix,service"])
def test_csv_header_names(tmp_path: Path, header: str) -> None:
    path = _write(tmp_path / "r.csv", f"{header}\n10.0.0.0/8,a\n")
    assert read_ranges(path) == [("10.0.0.0/8", "a")]


def test_csv_header_only(tmp_path: Path) -> None:
    assert read_ranges(_write(tmp_path / "r.csv", "prefix,label\n")) == []


def test_csv_wrong_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", "# comment\nip,country\n10.0.0.0/8,a\n")
    with pytest.raises(RangeFileError) as info:
        read_ranges(path)
    assert str(info.value) == (
        f"unrecognized CSV range file: expected a header 'prefix,<label>', got 'ip,country' ({path}:2)"
    )


def test_csv_without_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", "10.0.0.0/8,a\n")
    with pytest.raises(RangeFileError) as info:
        read_ranges(path)
    assert str(info.value) == (
        f"unrecognized CSV range file: expected a header 'prefix,<label>', got '10.0.0.0/8,a' ({path}:1)"
    )


def test_csv_long_header_is_cut_in_message(tmp_path: Path) -> None:
    header = "address," + "x" * 100
    path = _write(tmp_path / "r.csv", header + "\n")
    with pytest.raises(RangeFileError) as info:
        read_ranges(path)
    assert str(info.value) == (
        f"unrecognized CSV range file: expected a header 'prefix,<label>', got {header[:60]!r} ({path}:1)"
    )


def test_csv_line_without_label(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", "prefix,label\n10.0.0.0/8,a\n\n10.1.0.0/16\n")
    with pytest.raises(RangeFileError) as info:
        read_ranges(path)
    assert str(info.value) == f"malformed CSV range line: expected prefix,label, got '10.1.0.0/16' ({path}:4)"


def test_plain_list(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "m365.exchange.txt",
        "# Microsoft 365 Exchange Online\n40.92.0.0/15\n\n  2a01:111:f400::/48  \r\n13.107.6.152/31\n",
    )
    # The label is the file name without any extension.
    assert read_ranges(path) == [
        ("40.92.0.0/15", "m365"),
        ("2a01:111:f400::/48", "m365"),
        ("13.107.6.152/31", "m365"),
    ]


def test_plain_list_gz(tmp_path: Path) -> None:
    path = tmp_path / "relays.txt.gz"
    path.write_bytes(gzip.compress(b"192.0.2.1\n198.51.100.0/24\n2001:db8::/48\n"))
    assert read_ranges(path) == [
        ("192.0.2.1", "relays"),
        ("198.51.100.0/24", "relays"),
        ("2001:db8::/48", "relays"),
    ]
    table, labels = load_table(path)
    assert labels == ["relays"]
    assert table.lookup_one("198.51.100.7") == 0
    assert table.lookup_one("192.0.2.2") == NO_MATCH


def test_utf8_bom_plain_list(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf10.0.0.0/8\r\n192.0.2.0/24\r\n")
    assert read_ranges(path) == [("10.0.0.0/8", "bom"), ("192.0.2.0/24", "bom")]
    table, _ = load_table(path)  # the BOM does not end up in the first prefix
    assert len(table) == 2


def test_utf8_bom_csv_and_json(tmp_path: Path) -> None:
    csv = tmp_path / "bom.csv"
    csv.write_bytes(b"\xef\xbb\xbfprefix,label\n10.0.0.0/8,a\n")
    assert read_ranges(csv) == [("10.0.0.0/8", "a")]
    doc = tmp_path / "bom.json"
    doc.write_bytes(b'\xef\xbb\xbf{"values": [{"name": "T", "properties": {"addressPrefixes": ["10.0.0.0/8"]}}]}')
    assert read_ranges(doc) == [("10.0.0.0/8", "T")]


@pytest.mark.parametrize(
    "content",
    [b"", b"\n\n", b"  \r\n\t\n", b"# only a comment\n#another\n", b"\xef\xbb\xbf", gzip.compress(b"")],
    ids=["empty", "blank-lines", "whitespace", "comments", "bom-only", "empty-gz"],
)
def test_empty_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    assert read_ranges(path) == []
    table, labels = load_table(path)
    assert len(table) == 0 and labels == []


def test_label_codes_order() -> None:
    pairs = [("10.0.0.0/8", "b"), ("10.1.0.0/16", "a"), ("10.2.0.0/16", "b"), ("::/0", "c"), ("10.0.0.0/8", "a")]
    coded, labels = label_codes(pairs)
    assert labels == ["b", "a", "c"]  # order of first appearance
    assert coded == [("10.0.0.0/8", 0), ("10.1.0.0/16", 1), ("10.2.0.0/16", 0), ("::/0", 2), ("10.0.0.0/8", 1)]
    assert label_codes([]) == ([], [])


def test_load_table_bad_prefix_names_file_and_entry(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", "prefix,label\n10.0.0.0/8,a\n10.0.0.300/8,b\n")
    with pytest.raises(RangeFileError) as info:
        load_table(path)
    assert str(info.value) == (
        "invalid prefix '10.0.0.300/8': expected an IPv4 or IPv6 address, got text that is not one "
        f"({path}: entry 2); {HINT}"
    )
    # read_ranges itself passes the text through unparsed; PrefixTable names the pair.
    pairs, _ = label_codes(read_ranges(path))
    with pytest.raises(PrefixError, match=r"\(pair 1\)"):
        PrefixTable.from_pairs(pairs)


def test_range_file_error_message_is_one_line(tmp_path: Path) -> None:
    # Even a file name holding a line break gives a one-line message (the break is escaped).
    path = _write(tmp_path / "evil\nname.csv", "prefix,label\n10.0.0.0/8\n")
    with pytest.raises(RangeFileError) as info:
        read_ranges(path)
    assert "\n" not in str(info.value)
    assert str(info.value) == (
        "malformed CSV range line: expected prefix,label, got '10.0.0.0/8' "
        f"({str(path).replace(chr(10), chr(92) + 'n')}:2)"
    )


# ---------------------------------------------------------------------------------------------
# malformed content must be a RangeFileError naming the file (so the CLI prints one line and
# exits 2), not a stray JSONDecodeError / UnicodeDecodeError / AttributeError / EOFError.


def _malformed_cases() -> list:  # type: ignore[type-arg]
    return [
        pytest.param("truncated.json", b'{"values": [', id="truncated-json"),
        pytest.param("latin1.txt", "10.0.0.0/8\nr\xe9seau\n".encode("latin-1"), id="not-utf8"),
        pytest.param("aws.json", b'{"prefixes": ["3.4.12.4/32"]}', id="json-entry-not-object"),
        pytest.param("azure.json", b'{"values": [null]}', id="json-tag-null"),
        pytest.param("list.txt.gz", gzip.compress(b"10.0.0.0/8\n" * 100)[:30], id="truncated-gzip"),
    ]


@pytest.mark.parametrize(("name", "content"), _malformed_cases())
def test_malformed_content_is_a_range_file_error(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RangeFileError) as info:
        read_ranges(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_top_level_json_array_is_reported_as_json(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text('[{"cidr": "10.0.0.0/8", "owner": "corp"}]')
    with pytest.raises(RangeFileError) as info:
        read_ranges(path)
    assert str(info.value) == (
        "unrecognized JSON range file: expected Azure service tags, AWS ip-ranges or Google "
        f"cloud.json, got a JSON list ({path})"
    )
