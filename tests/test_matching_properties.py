"""Property tests of PrefixTable: the compiled core, its pure-Python twin and a brute force agree.

* Random tables (both families, nested prefixes, IPv4-mapped prefixes, ranges, duplicates) and
  random queries (inside, at and just beyond prefix boundaries, random, IPv4-mapped) are answered
  identically by the compiled backend, the twin and a brute force written here with ``ipaddress``.
* Address-text fuzz: compiled == twin on every text, and both agree with ``ipaddress`` on bare
  texts; every lookup path (one text, str/bytes, string/large_string/string_view arrays, where the
  compiled fast paths run) gives the same code.
* Prefix-text fuzz: compiled and twin ``add`` both succeed with the same prefixes or both raise
  the same `PrefixError` message.
* numpy uint32 input equals text input; large tables (thousands of prefixes) agree too.
"""

from __future__ import annotations

import ipaddress
import random
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.errors import PrefixError
from analyzer.matching import EMPTY, NO_MATCH, NOT_AN_IP, PrefixTable

M32 = (1 << 32) - 1
M128 = (1 << 128) - 1
MAPPED = 0xFFFF << 32  # ::ffff:0:0
MAX_VALUE = 2**31 - 2
WS = " \t\n\r\v\f"
BITS = {4: 32, 6: 128}

SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}

Network = IPv4Network | IPv6Network


# --------------------------------------------------------------------------------------------
# The brute force: every prefix checked with ipaddress, last added wins, longest one wins.
# --------------------------------------------------------------------------------------------


def to_network(family: int, address: int, length: int) -> Network:
    """The prefix as the spec stores it: host bits cleared, ::ffff:a.b.c.d/n (n >= 96) as IPv4."""
    if family == 6 and address >> 32 == 0xFFFF and length >= 96:
        return IPv4Network((address & M32, length - 96), strict=False)
    if family == 4:
        return IPv4Network((address, length), strict=False)
    return IPv6Network((address, length), strict=False)


def brute_table(entries: list[tuple[list[Network], int]]) -> dict[Network, int]:
    table: dict[Network, int] = {}
    for networks, value in entries:
        for net in networks:
            table[net] = value  # re-adding a prefix replaces its value
    return table


def brute_lookup(table: dict[Network, int], address: IPv4Address | IPv6Address) -> int:
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # mapped queries look at IPv4 prefixes only
    a, bits = int(address), address.max_prefixlen
    best_len, best = -1, NO_MATCH
    for net, value in table.items():
        shift = bits - net.prefixlen
        if net.version == address.version and a >> shift == int(net.network_address) >> shift \
                and net.prefixlen > best_len:
            best_len, best = net.prefixlen, value
    return best


def brute_prefixes(table: dict[Network, int]) -> list[tuple[str, int]]:
    order = sorted(table, key=lambda n: (n.version, int(n.network_address), n.prefixlen))
    return [(str(net), table[net]) for net in order]


# --------------------------------------------------------------------------------------------
# Address text in the many forms logs use
# --------------------------------------------------------------------------------------------


def v4_text(a: int) -> str:
    return ".".join(str((a >> s) & 255) for s in (24, 16, 8, 0))


class Chooser:
    """Random choices for the text generators: from a hypothesis draw (shrinkable; used where the
    text itself is under test) or from a seeded random.Random (cheap; used to spell the addresses
    of table tests, which then generate and shrink much faster)."""

    def __init__(self, draw: st.DrawFn | None = None, rng: random.Random | None = None) -> None:
        self.draw, self.rng = draw, rng

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi)) if self.draw else self.rng.randint(lo, hi)  # type: ignore[union-attr]

    def choice(self, options):  # type: ignore[no-untyped-def]
        return self.draw(st.sampled_from(options)) if self.draw else self.rng.choice(options)  # type: ignore[union-attr]

    def coin(self) -> bool:
        return self.integer(0, 1) == 1

    def text(self, alphabet: str, min_size: int, max_size: int) -> str:
        return "".join(self.choice(alphabet) for _ in range(self.integer(min_size, max_size)))


def hextet_text(c: Chooser, g: int) -> str:
    text = f"{g:0{c.integer(len(f'{g:x}'), 4)}x}"
    return text.upper() if c.coin() else text


def v6_text(c: Chooser, value: int) -> str:
    """A random valid spelling of the IPv6 address `value`."""
    style = c.choice(["compressed", "exploded", "random", "random"])
    if style == "compressed":
        text = str(IPv6Address(value))
    elif style == "exploded":
        text = IPv6Address(value).exploded
    else:
        groups = [(value >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
        tail = v4_text(value & M32) if c.coin() else None  # an embedded IPv4 tail
        n = 6 if tail else 8
        parts = [hextet_text(c, g) for g in groups[:n]]
        runs = [(i, j) for i in range(n) for j in range(i + 1, n + 1) if not any(groups[i:j])]
        if runs and c.coin():  # '::' for any run of zero groups, not only the longest
            i, j = c.choice(runs)
            text = ":".join(parts[:i]) + "::" + ":".join(parts[j:] + ([tail] if tail else []))
        else:
            text = ":".join(parts + ([tail] if tail else []))
    if c.coin():
        text = text.upper()
    return text


def address_text(c: Chooser, family: int, value: int) -> str:
    """A random valid spelling; IPv4 addresses are sometimes written IPv4-mapped."""
    if family == 4:
        return v6_text(c, MAPPED | value) if c.integer(0, 3) == 0 else v4_text(value)
    return v6_text(c, value)


ZONE_ALPHABET = "abcxyz0129_-.:/[]\u00e9\u20ac\U0001f600\x00\x85\u3000"  # no '%', no ASCII whitespace


def wrap(c: Chooser, text: str) -> str:
    """Add what the parser tolerates: whitespace, one pair of brackets, a zone index."""
    if c.coin():
        text += "%" + c.text(ZONE_ALPHABET, 1, 6)
    if c.coin():
        text = "[" + text + "]"
    return c.text(WS, 0, 3) + text + c.text(WS, 0, 3)


# --------------------------------------------------------------------------------------------
# Random tables and queries
# --------------------------------------------------------------------------------------------

SPECIAL_V4 = [0, M32, 0x0A000000, 0xC0000200, 0x7FFFFFFF, 0x80000000]
SPECIAL_V6 = [0, M128, 1, MAPPED, MAPPED - 1, MAPPED | M32, (MAPPED | M32) + 1, 0x20010DB8 << 96,
              0xFE80 << 112, 1 << 127, (1 << 64) - 1, 1 << 64]
LENGTHS_V4 = [0, 1, 7, 8, 15, 16, 17, 18, 19, 22, 23, 24, 25, 28, 29, 30, 31, 32]
LENGTHS_V6 = [0, 1, 15, 16, 17, 48, 57, 58, 59, 63, 64, 65, 95, 96, 97, 120, 121, 122, 123, 124,
              125, 127, 128]

values_st = st.one_of(st.integers(0, 40), st.just(MAX_VALUE), st.integers(0, MAX_VALUE))


@st.composite
def seed_address(draw: st.DrawFn) -> tuple[int, int]:
    kind = draw(st.sampled_from(["v4", "v4", "v6", "v6", "mapped", "small6", "db8"]))
    if kind == "v4":
        return 4, draw(st.one_of(st.sampled_from(SPECIAL_V4), st.integers(0, M32)))
    if kind == "v6":
        return 6, draw(st.one_of(st.sampled_from(SPECIAL_V6), st.integers(0, M128)))
    if kind == "mapped":  # an IPv6 seed inside ::ffff:0:0/96
        return 6, MAPPED | draw(st.integers(0, M32))
    if kind == "small6":
        return 6, draw(st.integers(0, 1 << 40))
    return 6, (0x20010DB8 << 96) | draw(st.integers(0, (1 << 96) - 1))


def render_cidr(c: Chooser, family: int, net: int, length: int) -> str:
    """Some text of prefix net/length, with random host bits set."""
    bits = BITS[family]
    address = net | c.integer(0, (1 << (bits - length)) - 1)
    length_text = ("0" if c.integer(0, 5) == 0 else "") + str(length)  # leading zeros are allowed
    if family == 4:
        form = c.choice(["plain", "plain", "netmask", "mapped"] + (["single"] * 2 if length == 32 else []))
        if form == "netmask":
            return f"{v4_text(address)}/{v4_text((M32 << (32 - length)) & M32)}"
        if form == "mapped":
            return f"{v6_text(c, MAPPED | address)}/{96 + length}"
        if form == "single":
            return address_text(c, 4, address)
        return f"{v4_text(address)}/{length_text}"
    if length == 128 and c.coin():
        return v6_text(c, address)
    return f"{v6_text(c, address)}/{length_text}"


def spec_networks(spec: tuple) -> list[Network]:
    kind, family, a, b = spec
    if kind == "cidr":
        return [to_network(family, a, b)]
    if family == 6 and a >> 32 == 0xFFFF and b >> 32 == 0xFFFF:
        family, a, b = 4, a & M32, b & M32  # a range of IPv4-mapped addresses is an IPv4 range
    cls = IPv4Address if family == 4 else IPv6Address
    nets = ipaddress.summarize_address_range(cls(a), cls(b))
    return [to_network(family, int(n.network_address), n.prefixlen) for n in nets]


def render_spec(c: Chooser, spec: tuple) -> str:
    kind, family, a, b = spec
    if kind == "cidr":
        text = render_cidr(c, family, a, b)
    else:
        text = address_text(c, family, a) + c.choice(["-", " - ", "-\t"]) + address_text(c, family, b)
    if c.integer(0, 4) == 0:
        text = c.choice(WS) + text + c.choice(WS)
    return text


@st.composite
def table_specs(draw: st.DrawFn) -> list[tuple]:
    """Prefix specs: ('cidr', family, network, length) or ('range', family, first, last)."""
    seeds = draw(st.lists(seed_address(), min_size=1, max_size=5))
    # Derived seeds share long common prefixes with earlier ones, so prefixes nest and neighbour.
    for _ in range(draw(st.integers(0, 4))):
        family, a = draw(st.sampled_from(seeds))
        seeds.append((family, a ^ (1 << draw(st.integers(0, BITS[family] - 1)))))
    specs = []
    for family, a in seeds:
        bits = BITS[family]
        lengths = draw(st.lists(st.one_of(st.sampled_from(LENGTHS_V4 if family == 4 else LENGTHS_V6),
                                          st.integers(0, bits)), min_size=1, max_size=6))
        for length in lengths:
            specs.append(("cidr", family, a >> (bits - length) << (bits - length), length))
        if draw(st.integers(0, 2)) == 0:
            span = draw(st.integers(0, (1 << draw(st.integers(0, 12 if family == 4 else 40))) - 1))
            first, last = a, min(a + span, (1 << bits) - 1)
            if family == 6 and (first >> 32 == 0xFFFF) != (last >> 32 == 0xFFFF):
                continue  # one mapped end, one not: not a range of one family
            if family == 6 and first < MAPPED and last > MAPPED | M32:
                continue  # spans the whole mapped block: see test_range_pieces_in_the_mapped_block
            specs.append(("range", family, first, last))
    specs = draw(st.permutations(specs))
    # The same prefixes again, written differently, with other values: the last one wins.
    for spec in draw(st.lists(st.sampled_from(specs), max_size=4)):
        specs.insert(draw(st.integers(0, len(specs))), spec)
    return specs


def boundary_queries(c: Chooser, net: Network) -> list[tuple[int, int]]:
    """First and last address, one inside, and the neighbours just outside."""
    family, bits = net.version, net.max_prefixlen
    first, last = int(net.network_address), int(net.broadcast_address)
    out = [(family, first), (family, last), (family, c.integer(first, last))]
    if first > 0:
        out.append((family, first - 1))
    if last < (1 << bits) - 1:
        out.append((family, last + 1))
    return out


@st.composite
def table_and_queries(draw: st.DrawFn):
    """(entries [(prefix text, value, networks)], query texts, query addresses)."""
    specs = draw(table_specs())
    c = Chooser(rng=random.Random(draw(st.integers(0, 2**32))))
    entries = [(render_spec(c, spec), draw(values_st), spec_networks(spec)) for spec in specs]
    queries: list[tuple[int, int]] = []
    for _, _, nets in entries:
        for net in nets[:2]:
            queries.extend(boundary_queries(c, net))
    queries += draw(st.lists(st.tuples(st.just(4), st.integers(0, M32)), max_size=5))
    queries += draw(st.lists(st.tuples(st.just(6), st.integers(0, M128)), max_size=5))
    queries += [(6, MAPPED - 1), (6, MAPPED), (6, MAPPED | M32), (6, (MAPPED | M32) + 1), (4, 0), (4, M32),
                (6, 0), (6, M128)]
    texts = [address_text(c, family, a) for family, a in queries]
    addresses = [IPv4Address(a) if family == 4 else IPv6Address(a) for family, a in queries]
    return entries, texts, addresses


def build(backend: str, entries) -> PrefixTable:
    table = PrefixTable(backend=backend)
    for text, value, _ in entries:
        table.add(text, value)
    return table


@settings(max_examples=300, report_multiple_bugs=False, **SETTINGS)
@given(table_and_queries())
def test_random_tables_agree_with_brute_force(case) -> None:
    entries, texts, addresses = case
    reference = brute_table([(nets, value) for _, value, nets in entries])
    compiled, twin = build("compiled", entries), build("python", entries)
    assert list(compiled.prefixes()) == brute_prefixes(reference)
    assert list(twin.prefixes()) == brute_prefixes(reference)
    assert len(compiled) == len(twin) == len(reference)

    expected = [brute_lookup(reference, a) for a in addresses]
    arrow = pa.array(texts, pa.string())
    for table in (compiled, twin):
        assert table.lookup(arrow).tolist() == expected, table.backend
        assert table.lookup(texts).tolist() == expected, table.backend
        assert table.lookup(pa.array(texts, pa.string_view())).tolist() == expected, table.backend
        assert [table.lookup_one(t) for t in texts] == expected, table.backend
    assert compiled.lookup(arrow).dtype == np.int32

    # from_pairs builds the same table.
    pairs = [(text, value) for text, value, _ in entries]
    for backend in ("compiled", "python"):
        rebuilt = PrefixTable.from_pairs(pairs, backend=backend)
        assert list(rebuilt.prefixes()) == brute_prefixes(reference)
        assert rebuilt.lookup(arrow).tolist() == expected


@settings(max_examples=100, report_multiple_bugs=False, **SETTINGS)
@given(table_and_queries())
def test_tables_changed_after_a_lookup(case) -> None:
    """Half the prefixes, a lookup (which compiles the table), then the rest: the table answers
    for its new contents, in both backends."""
    entries, texts, addresses = case
    half = len(entries) // 2
    partial = brute_table([(nets, value) for _, value, nets in entries[:half]])
    reference = brute_table([(nets, value) for _, value, nets in entries])
    for backend in ("compiled", "python"):
        table = build(backend, entries[:half])
        assert table.lookup(texts).tolist() == [brute_lookup(partial, a) for a in addresses], backend
        for text, value, _ in entries[half:]:
            table.add(text, value)
        assert list(table.prefixes()) == brute_prefixes(reference), backend
        assert table.lookup(texts).tolist() == [brute_lookup(reference, a) for a in addresses], backend


@settings(max_examples=100, report_multiple_bugs=False, **SETTINGS)
@given(table_and_queries(), st.data())
def test_uint32_input_equals_text_input(case, data) -> None:
    entries, _texts, addresses = case
    v4 = [int(a) for a in addresses if a.version == 4]
    v4 += data.draw(st.lists(st.integers(0, M32), max_size=20))
    ints = np.array(v4, dtype=np.uint32)
    as_text = [v4_text(a) for a in v4]
    reference = brute_table([(nets, value) for _, value, nets in entries])
    expected = [brute_lookup(reference, IPv4Address(a)) for a in v4]
    for backend in ("compiled", "python"):
        table = build(backend, entries)
        got = table.lookup(ints)
        assert got.dtype == np.int32
        assert got.tolist() == table.lookup(as_text).tolist() == expected
        # a strided (non-contiguous) view, and a read-only array
        assert table.lookup(ints[::2]).tolist() == expected[::2]
        frozen = np.frombuffer(ints.tobytes(), dtype=np.uint32)
        assert not frozen.flags.writeable
        assert table.lookup(frozen).tolist() == expected


# --------------------------------------------------------------------------------------------
# Address-text grammar fuzz
# --------------------------------------------------------------------------------------------

FUZZ_ALPHABET = "0123456789abcdefABCDEF:.%[] \t/x-"
FUZZ_PAIRS = [("0.0.0.0/0", 0), ("::/0", 1), ("10.0.0.0/8", 2), ("2001:db8::/32", 3), ("::/64", 4)]
FUZZ_REFERENCE = brute_table([([ipaddress.ip_network(p)], v) for p, v in FUZZ_PAIRS])
FUZZ_COMPILED = PrefixTable.from_pairs(FUZZ_PAIRS, backend="compiled")
FUZZ_TWIN = PrefixTable.from_pairs(FUZZ_PAIRS, backend="python")


def ipaddress_code(text: str) -> int:
    """What the spec says for a bare text (no whitespace, brackets or zone): ipaddress decides."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return NOT_AN_IP
    return brute_lookup(FUZZ_REFERENCE, address)


def is_bare(text: str) -> bool:
    return bool(text) and text == text.strip(WS) and not any(c in text for c in "[]%")


def valid_inner(draw: st.DrawFn) -> tuple[str, IPv4Address | IPv6Address]:
    family, value = draw(seed_address())
    if draw(st.booleans()) and family == 6:
        family, value = 4, value & M32
    address = IPv4Address(value) if family == 4 else IPv6Address(value)
    return address_text(Chooser(draw), family, value), address


def mutate(draw: st.DrawFn, text: str) -> str:
    op = draw(st.sampled_from(["leading_zero", "big_octet", "extra_colon", "extra_group", "five_digits",
                               "triple_colon", "double_double", "delete", "insert", "replace",
                               "duplicate", "truncate", "drop_octet", "extra_octet"]))
    pos = draw(st.integers(0, len(text)))
    char = draw(st.sampled_from(FUZZ_ALPHABET))
    if op == "leading_zero" and "." in text:
        head, _, tail = text.rpartition(":")
        octets = tail.split(".")
        k = draw(st.integers(0, len(octets) - 1))
        octets[k] = "0" * draw(st.integers(1, 2)) + octets[k]
        return (head + ":" if head else "") + ".".join(octets)
    if op == "big_octet" and "." in text:
        head, _, tail = text.rpartition(":")
        octets = tail.split(".")
        octets[draw(st.integers(0, len(octets) - 1))] = str(draw(st.integers(256, 99999)))
        return (head + ":" if head else "") + ".".join(octets)
    if op == "drop_octet" and "." in text:
        return text[: text.rfind(".")]
    if op == "extra_octet" and "." in text:
        return text + "." + str(draw(st.integers(0, 255)))
    if op == "extra_colon":
        return text[:pos] + ":" + text[pos:]
    if op == "extra_group":
        group = f"{draw(st.integers(0, 0xFFFF)):x}"
        return group + ":" + text if draw(st.booleans()) else text + ":" + group
    if op == "five_digits" and ":" in text:
        groups = text.split(":")
        k = draw(st.integers(0, len(groups) - 1))
        groups[k] = draw(st.sampled_from(["0", "00000", "1"])) + groups[k].rjust(4, "0")
        return ":".join(groups)
    if op == "triple_colon":
        return text.replace("::", ":::", 1) if "::" in text else text[:pos] + ":::" + text[pos:]
    if op == "double_double":
        return text[:pos] + "::" + text[pos:]
    if op == "delete" and text:
        return text[: min(pos, len(text) - 1)] + text[min(pos, len(text) - 1) + 1 :]
    if op == "insert":
        return text[:pos] + char + text[pos:]
    if op == "replace" and text:
        k = min(pos, len(text) - 1)
        return text[:k] + char + text[k + 1 :]
    if op == "duplicate" and text:
        k = min(pos, len(text) - 1)
        return text[: k + 1] + text[k:]
    if op == "truncate":
        return text[:pos]
    return text + char


@st.composite
def address_texts(draw: st.DrawFn) -> tuple[str, int | None]:
    """(text, expected code or None when only compiled == twin (== ipaddress if bare) is known)."""
    kind = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "alphabet", "specials"]))
    if kind == "alphabet":
        return draw(st.text(st.sampled_from(FUZZ_ALPHABET), max_size=48)), None
    if kind == "specials":
        return draw(st.sampled_from([
            "", " ", "\t\n", "[]", "[", "]", "[ ]", "%", "%x", "::", ":::", ":", "1::", "::1", "[::]",
            "::%", "::%%", "::%a%", "1.2.3.4%", "[1.2.3.4]%x", "0.0.0.0", "255.255.255.255",
            "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4:5", "::1.2.3", "::ffff:1.2.3.4",
            "::FFFF:001.2.3.4", "12345::", "::12345", "1.2.3.4.", ".1.2.3.4", "1..2.3", "\v1.2.3.4\f",
        ])), None
    text, address = valid_inner(draw)
    if kind == "valid":
        return wrap(Chooser(draw), text), brute_lookup(FUZZ_REFERENCE, address)
    for _ in range(draw(st.integers(1, 3))):
        text = mutate(draw, text)
    if draw(st.integers(0, 3)) == 0:
        text = wrap(Chooser(draw), text)
    return text, None


def codes_every_way(table: PrefixTable, texts: list[str]) -> dict[str, list[int]]:
    """The codes of `texts` by every input path (the compiled fast paths only run on arrays with
    enough bytes after a row, hence the padding row; string_view keeps short rows inline)."""
    pad = ["x" * 64]
    return {
        "one": [table.lookup_one(t) for t in texts],
        "one-bytes": [table.lookup_one(t.encode("utf-8", "surrogatepass")) for t in texts],
        "list": table.lookup(texts).tolist(),
        "string+pad": table.lookup(pa.array(texts + pad, pa.string())).tolist()[:-1],
        "large_string+pad": table.lookup(pa.array(pad + texts + pad, pa.large_string())).tolist()[1:-1],
        "string_view": table.lookup(pa.array(texts, pa.string_view())).tolist(),
        "string_view+pad": table.lookup(pa.array(pad + texts + pad, pa.string_view())).tolist()[1:-1],
        "binary": table.lookup(pa.array([t.encode("utf-8", "surrogatepass") for t in texts], pa.binary())).tolist(),
    }


@settings(max_examples=1000, **SETTINGS)
@given(st.lists(address_texts(), min_size=1, max_size=25))
def test_address_text_grammar(cases) -> None:
    texts = [t for t, _ in cases]
    twin = [FUZZ_TWIN.lookup_one(t) for t in texts]
    for path, got in codes_every_way(FUZZ_COMPILED, texts).items():
        assert got == twin, (path, [(t, g, w) for t, g, w in zip(texts, got, twin) if g != w])
    assert FUZZ_TWIN.lookup(pa.array(texts, pa.string_view())).tolist() == twin
    for (text, expected), code in zip(cases, twin):
        if expected is not None:
            assert code == expected, text
        if is_bare(text):
            assert code == ipaddress_code(text), text
        elif not text.strip(WS):
            assert code == EMPTY, text
        assert code >= 0 or code in (NOT_AN_IP, EMPTY), text  # 0.0.0.0/0 and ::/0 cover all


@settings(max_examples=300, **SETTINGS)
@given(st.lists(st.text(st.sampled_from(FUZZ_ALPHABET + "0123456789:.:"), max_size=45), min_size=1, max_size=30))
def test_alphabet_soup(texts) -> None:
    twin = [FUZZ_TWIN.lookup_one(t) for t in texts]
    for path, got in codes_every_way(FUZZ_COMPILED, texts).items():
        assert got == twin, path
    for text, code in zip(texts, twin):
        if is_bare(text):
            assert code == ipaddress_code(text), text


# --------------------------------------------------------------------------------------------
# Prefix-text fuzz: same prefixes or the same error message
# --------------------------------------------------------------------------------------------

LENGTH_TEXTS = ["", " 8", "8 ", "+8", "-8", "0x10", "\u0663", "1_0", "32.0", "8/8", "08", "000000000000024",
                "4294967296", "12 8"]
MASK_TEXTS = ["255.255.0.00", "256.0.0.0", "255.255.255", "255.255.255.255.0", "0.0.0.0", "255.255.255.255",
              "0.0.0.255", "128.0.0.0", "255.254.0.0", "255.255.128.255", "0255.0.0.0"]


@st.composite
def any_address(draw: st.DrawFn) -> str:
    text, _ = valid_inner(draw)
    roll = draw(st.integers(0, 9))
    if roll == 0:
        text = mutate(draw, text)
    elif roll == 1:
        text = wrap(Chooser(draw), text)
    return text


@st.composite
def prefix_texts(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["cidr", "cidr", "netmask", "range", "range", "single", "garbage", "soup"]))
    if kind == "cidr":
        length = draw(st.one_of(st.integers(-3, 140).map(str), st.integers(0, 130).map(lambda n: "0" + str(n)),
                                st.sampled_from(LENGTH_TEXTS)))
        text = f"{draw(any_address())}/{length}"
    elif kind == "netmask":
        mask = draw(st.one_of(st.integers(0, M32).map(v4_text),
                              st.integers(0, 32).map(lambda k: v4_text((M32 << (32 - k)) & M32)),
                              st.sampled_from(MASK_TEXTS)))
        text = f"{draw(any_address())}/{mask}"
    elif kind == "range":
        family, a = draw(seed_address())
        if draw(st.booleans()) and family == 6:
            family, a = 4, a & M32
        b = a + draw(st.integers(-(1 << draw(st.integers(0, 20))), 1 << draw(st.integers(0, 20))))
        b = min(max(b, 0), (1 << BITS[family]) - 1)
        first, last = address_text(Chooser(draw), family, a), address_text(Chooser(draw), family, b)
        if draw(st.integers(0, 4)) == 0:
            last = draw(any_address())  # another family, or not an address at all
        text = first + draw(st.sampled_from(["-", " - ", "--", "-\t", "-/"])) + last
    elif kind == "single":
        text = draw(any_address())
    elif kind == "garbage":
        text = draw(st.text(max_size=30))
    else:
        text = draw(st.text(st.sampled_from(FUZZ_ALPHABET), max_size=40))
    if draw(st.integers(0, 5)) == 0:
        text = draw(st.sampled_from(WS)) + text + draw(st.sampled_from(WS))
    return text


def add_outcome(backend: str, text: str, value: object) -> tuple:
    table = PrefixTable(backend=backend)
    try:
        table.add(text, value)  # type: ignore[arg-type]
    except PrefixError as exc:
        return ("error", str(exc), len(table))
    return ("ok", list(table.prefixes()), len(table))


def pairs_outcome(backend: str, pairs: list[tuple[str, object]]) -> tuple:
    try:
        table = PrefixTable.from_pairs(pairs, backend=backend)  # type: ignore[arg-type]
    except PrefixError as exc:
        return ("error", str(exc))
    return ("ok", list(table.prefixes()))


odd_values = st.sampled_from([-1, 2**31 - 1, 2**63, -(2**63) - 1, 1.5, "3", None, True, np.int64(5), np.int64(-5),
                              np.uint32(2**31), 0, MAX_VALUE])


@settings(max_examples=1500, **SETTINGS)
@given(prefix_texts(), st.one_of(values_st, values_st, values_st, odd_values))
def test_prefix_text_fuzz(text, value) -> None:
    compiled = add_outcome("compiled", text, value)
    twin = add_outcome("python", text, value)
    assert compiled == twin
    if compiled[0] == "ok":
        assert compiled[2] == len(compiled[1]) >= 1
    else:
        assert compiled[2] == 0  # a failed add leaves the table as it was
    # A plain CIDR with a decimal length: ipaddress is the reference.
    address, slash, length = text.partition("/")
    if slash and length.isascii() and length.isdigit() and address == address.strip(WS) and is_bare(address) \
            and "/" not in length and isinstance(value, int) and not isinstance(value, bool) \
            and 0 <= value <= MAX_VALUE:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            assert compiled[0] == "error"
        else:
            expected = to_network(net.version, int(ipaddress.ip_address(address)), net.prefixlen)
            assert compiled[1] == [(str(expected), value)]


@settings(max_examples=200, **SETTINGS)
@given(st.lists(st.tuples(prefix_texts(), values_st), min_size=1, max_size=6))
def test_from_pairs_fuzz(pairs) -> None:
    assert pairs_outcome("compiled", pairs) == pairs_outcome("python", pairs)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("::ffff:1.2.3.0/120", [("1.2.3.0/24", 7)]),
        ("::ffff:1.2.3.4/96", [("0.0.0.0/0", 7)]),
        ("::ffff:1.2.3.4/95", [("::fffe:0:0/95", 7)]),
        ("::ffff:1.2.3.4", [("1.2.3.4/32", 7)]),
        ("::ffff:1.2.3.4-::ffff:1.2.3.7", [("1.2.3.4/30", 7)]),
        ("::ffff:1.2.3.4-1.2.3.5", [("1.2.3.4/31", 7)]),
        ("10.1.2.3/8", [("10.0.0.0/8", 7)]),
        ("10.1.2.3/255.255.0.0", [("10.1.0.0/16", 7)]),
        (" [2001:db8::1%eth0]/32 ", [("2001:db8::/32", 7)]),
        # Ranges are split into the fewest CIDRs (as ipaddress.summarize_address_range), also
        # when they start at the very first address of the family.
        ("0.0.0.2-0.0.0.3", [("0.0.0.2/31", 7)]),
        ("0.0.0.0-0.0.0.1", [("0.0.0.0/31", 7)]),
        ("0.0.0.0-0.0.0.4", [("0.0.0.0/30", 7), ("0.0.0.4/32", 7)]),
        ("0.0.0.0-255.255.255.255", [("0.0.0.0/0", 7)]),
        ("::ffff:0.0.0.0-::ffff:0.0.0.3", [("0.0.0.0/30", 7)]),
        ("::-::1", [("::/127", 7)]),
        ("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", [("::/0", 7)]),
    ],
)
def test_prefix_spellings(prefix: str, expected: list[tuple[str, int]]) -> None:
    for backend in ("compiled", "python"):
        assert add_outcome(backend, prefix, 7) == ("ok", expected, len(expected))


def test_range_from_address_zero_replaces_the_same_cidr() -> None:
    """0.0.0.0-0.0.0.1 *is* 0.0.0.0/31: adding the CIDR afterwards replaces the range's value."""
    for backend in ("compiled", "python"):
        table = PrefixTable.from_pairs([("0.0.0.0-0.0.0.1", 1), ("0.0.0.0/31", 2)], backend=backend)
        assert (len(table), table.lookup(["0.0.0.0", "0.0.0.1"]).tolist()) == (1, [2, 2]), backend


def test_range_pieces_in_the_mapped_block() -> None:
    """A range is split into CIDRs; a piece that is an IPv4-mapped prefix (::ffff:0:0/96) follows
    the rule for such prefixes and is stored as IPv4, as when the same CIDR is written alone.
    Kept as IPv6 it could never match: every address in it is a mapped query, looked up as IPv4."""
    for backend in ("compiled", "python"):
        alone = PrefixTable.from_pairs([("::ffff:0:0/96", 1)], backend=backend)
        assert list(alone.prefixes()) == [("0.0.0.0/0", 1)]
        assert alone.lookup(["::ffff:1.2.3.4", "1.2.3.4"]).tolist() == [1, 1]
        spanning = PrefixTable.from_pairs([("::fffe:ffff:ffff-::1:0:0:0", 1)], backend=backend)
        assert list(spanning.prefixes()) == [
            ("0.0.0.0/0", 1), ("::fffe:ffff:ffff/128", 1), ("::1:0:0:0/128", 1)], backend
        assert spanning.lookup(["::ffff:1.2.3.4", "1.2.3.4", "::1:0:0:0"]).tolist() == [1, 1, 1], backend


def large_table_pairs(n4: int, seed: int) -> list[tuple[str, int]]:
    """Exactly `n4` distinct IPv4 prefixes (nested, neighbouring, all lengths) and some IPv6 ones."""
    rng = np.random.default_rng(seed)
    chosen: dict[tuple[int, int], int] = {}
    nets = []
    while len(chosen) < n4:
        if nets and rng.random() < 0.5:  # nest below or beside an earlier prefix
            net, length = nets[int(rng.integers(len(nets)))]
            length = min(32, length + int(rng.integers(0, 9)))
            address = net | int(rng.integers(0, 1 << (32 - length))) ^ (int(rng.integers(0, 2)) << (32 - length))
            address &= M32
        else:
            address, length = int(rng.integers(0, 1 << 32)), int(rng.choice([0, 8, 12, 16, 17, 18, 19, 20, 22, 24,
                                                                               25, 28, 30, 31, 32]))
        net = address >> (32 - length) << (32 - length) if length else 0
        chosen[(net, length)] = int(rng.integers(0, MAX_VALUE + 1))
        nets.append((net, length))
    pairs = [(f"{v4_text(net)}/{length}", value) for (net, length), value in chosen.items()]
    for _ in range(300):
        address = (0x20010DB8 << 96) | int(rng.integers(0, 1 << 63)) << 33
        pairs.append((f"{IPv6Address(address)}/{int(rng.integers(16, 129))}", int(rng.integers(0, 100))))
    return pairs


@pytest.mark.parametrize("n4", [4096, 4097, 25_000])
def test_large_tables_agree(n4: int) -> None:
    """Thousands of nested and neighbouring prefixes (the random tables above stay small)."""
    pairs = large_table_pairs(n4, seed=n4)
    compiled = PrefixTable.from_pairs(pairs, backend="compiled")
    twin = PrefixTable.from_pairs(pairs, backend="python")
    assert len(compiled) == len(twin) and sum(1 for p, _ in compiled.prefixes() if ":" not in p) == n4
    assert list(compiled.prefixes()) == list(twin.prefixes())
    queries: list[int] = []
    for text, _ in pairs:
        if ":" in text:
            continue
        net = IPv4Network(text)
        first, last = int(net.network_address), int(net.broadcast_address)
        queries += [first, last, max(first - 1, 0), min(last + 1, M32), (first + last) // 2]
    ints = np.array(queries, np.uint32)
    texts = [v4_text(a) for a in queries]
    got = compiled.lookup(ints)
    assert np.array_equal(got, twin.lookup(ints))
    assert np.array_equal(compiled.lookup(pa.array(texts)), got)
    v6 = [str(IPv6Network(t, strict=False).network_address + k) for t, _ in pairs if ":" in t for k in (0, 1)]
    assert compiled.lookup(v6).tolist() == twin.lookup(v6).tolist()
    # And the brute force on a sample.
    reference = brute_table([([ipaddress.ip_network(p, strict=False)], v) for p, v in pairs])
    sample = np.random.default_rng(0).choice(len(queries), 40, replace=False).tolist()
    assert [int(got[i]) for i in sample] == [brute_lookup(reference, IPv4Address(queries[i])) for i in sample]


def test_mapped_queries_never_match_ipv6_prefixes() -> None:
    pairs = [("::/0", 1), ("::ffff:0:0/95", 2), ("::/64", 3)]
    for backend in ("compiled", "python"):
        table = PrefixTable.from_pairs(pairs, backend=backend)
        assert table.lookup(["::ffff:1.2.3.4", "::ffff:0.0.0.0", "::fffe:0:1", "::1:0:0:0", "::2"]).tolist() == [
            NO_MATCH, NO_MATCH, 2, 3, 3]
        assert table.lookup_one("::ffff:102:304") == NO_MATCH
        table.add("0.0.0.0/0", 9)
        assert table.lookup_one("::ffff:102:304") == 9
