"""Attribution (docs/analysis.md §1) and configuration lint (§2 ``connector_config``).

`Attributor.build` compiles a configuration once: `PrefixTable` s of the enabled and of the
disabled inbound connectors' ``SenderIPAddresses``, of the private ranges and of Exchange Online,
and the domain rules (partner ``SenderDomains``, outbound ``RecipientDomains``, accepted domains).
`Attributor.attribute` then appends the §1 columns to any number of record batches:

* IP columns cost one compiled `PrefixTable.lookup` over ``client_ip`` per table, no Python per row;
* domain columns are decided once per *distinct* domain (or logged connector name) in Python and
  mapped back through Arrow's dictionary encoding, so their cost grows with distinct values, not
  rows.

Both are pure functions of (records, configuration, options), so a proposed configuration can be
replayed against the same records.

`config_findings` lints a configuration alone (no records) and returns rows of the findings schema.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from analyzer._columns import dictionary
from analyzer._microsoft import EXCHANGE_ONLINE
from analyzer.config import (
    AcceptedDomain,
    Connectors,
    InboundConnector,
    ReceiveConnector,
)
from analyzer.errors import ConfigError, InputError, PrefixError
from analyzer.matching import EMPTY, NOT_AN_IP, PrefixTable

__all__ = [
    "ATTRIBUTION_SCHEMA",
    "FINDINGS_SCHEMA",
    "PRIVATE_NETWORKS",
    "REQUIRED_COLUMNS",
    "Attributor",
    "Options",
    "REVISION",
    "accepted_expr",
    "config_findings",
]

# --------------------------------------------------------------------------------------------
# Schemas and constants
# --------------------------------------------------------------------------------------------

#: The columns `Attributor.attribute` appends, in the order of the spec's table (the ``--ip-table``
#: columns follow them, one String column per table).
ATTRIBUTION_SCHEMA: dict[str, pl.DataType] = {
    "inbound_connector": pl.String(),
    "inbound_match": pl.String(),
    "disabled_inbound_connector": pl.String(),
    "outbound_connector": pl.String(),
    "ip_class": pl.String(),
    "sender_accepted": pl.Boolean(),
    "recipient_accepted": pl.Boolean(),
}

#: One row per finding (docs/analysis.md §2). Defined here for now; `analyzer.findings` imports it.
FINDINGS_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String,
    "severity": pl.String,
    "subject": pl.String,
    "first_seen": pl.Datetime("us", "UTC"),
    "last_seen": pl.Datetime("us", "UTC"),
    "count": pl.Int64,
    "detail": pl.String,
    "recommendation": pl.String,
    "sample_message_ids": pl.List(pl.String),
}

#: The only record columns attribution reads; every other column is passed through untouched.
REQUIRED_COLUMNS: tuple[str, ...] = ("client_ip", "sender_domain", "recipient_domain", "connector_name")

#: Always "private" (§1 ``ip_class``): RFC 1918, shared address space (RFC 6598), loopback,
#: link-local, IPv6 loopback, unique-local and link-local. IPv4-mapped IPv6 clients match the
#: IPv4 entries through `PrefixTable`.
PRIVATE_NETWORKS: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
)

_IP_CLASSES = ("connector", "private", "microsoft", "other")

# Bump when a change here gives a record other attribution columns: records/ parts written
# before then are no longer reused as they are (`analyses.reusable_parts`).
REVISION = 1
_SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2, "info": 3}


@dataclass(frozen=True)
class Options:
    """The attribution part of the analysis options."""

    internal_networks: tuple[str, ...] = ()  # extra CIDRs (or ranges) classed as "private"


# --------------------------------------------------------------------------------------------
# Domain rules
# --------------------------------------------------------------------------------------------


def _norm_domain(domain: str) -> str:
    """Lower case without a trailing dot: how config.py stores domains, applied to log values too."""
    return domain.strip().lower().rstrip(".")


def _parents(domain: str) -> Iterable[str]:
    """``a.b.c`` -> ``a.b.c``, ``b.c``, ``c``: longest first, which is the most specific order."""
    while True:
        yield domain
        dot = domain.find(".")
        if dot < 0:
            return
        domain = domain[dot + 1 :]


class _DomainRule:
    """SenderDomains / RecipientDomains matching: exact, then the longest ``*.x`` (covering ``x``
    and its subdomains), then ``*``. When two connectors list the same pattern, the first one
    given wins (callers pass connectors in configuration order).

    Immutable after construction; identity-hashed, so the frozen `Attributor` stays hashable.
    """

    __slots__ = ("_exact", "_star", "_wild")

    def __init__(self, entries: Iterable[tuple[str, int]]) -> None:
        exact: dict[str, int] = {}
        wild: dict[str, int] = {}
        star: int | None = None
        for pattern, value in entries:
            kind, key = _pattern(pattern)
            if kind == "star":
                star = value if star is None else star
            elif kind == "wild":
                wild.setdefault(key, value)
            elif kind == "exact":
                exact.setdefault(key, value)
        self._exact = MappingProxyType(exact)
        self._wild = MappingProxyType(wild)
        self._star = star

    def __bool__(self) -> bool:
        return bool(self._exact or self._wild or self._star is not None)

    def match(self, domain: str | None) -> int | None:
        """The value of the most specific pattern covering `domain`, else None."""
        if not domain:
            return None  # the null sender of a bounce has no domain to match
        domain = _norm_domain(domain)
        if not domain:
            return None
        found = self._exact.get(domain)
        if found is not None:
            return found
        for parent in _parents(domain):
            found = self._wild.get(parent)
            if found is not None:
                return found
        return self._star


def _pattern(pattern: str) -> tuple[str, str]:
    """Classify one SenderDomains/RecipientDomains entry: ("star"|"wild"|"exact"|"ignored", key).

    Non-SMTP address spaces (``X400:...``, kept with their type by config.py) and malformed
    wildcards (``*contoso.com``) can never match an SMTP domain: they are ignored.
    """
    text = _norm_domain(pattern)
    if text == "*":
        return "star", ""
    if text.startswith("*.") and len(text) > 2 and "*" not in text[2:] and ":" not in text:
        return "wild", text[2:]
    if text and "*" not in text and ":" not in text:
        return "exact", text
    return "ignored", text


def _covers(outer: str, inner: str) -> bool:
    """Whether every domain `inner` matches is also matched by `outer` (both are patterns)."""
    kind_o, key_o = _pattern(outer)
    kind_i, key_i = _pattern(inner)
    if "ignored" in (kind_o, kind_i):
        return False
    if kind_o == "star":
        return True
    if kind_i == "star":
        return False
    if kind_o == "exact":
        return kind_i == "exact" and key_i == key_o
    # outer is *.x: covers x and every subdomain of it, so any pattern rooted at or below x
    return key_i == key_o or key_i.endswith("." + key_o)


class _Accepted:
    """Accepted-domain membership: equal to an accepted domain, or a subdomain of one with
    ``MatchSubDomains``."""

    __slots__ = ("_exact", "_subdomains")

    def __init__(self, domains: Sequence[AcceptedDomain]) -> None:
        self._exact = frozenset(_norm_domain(d.domain_name) for d in domains)
        self._subdomains = frozenset(_norm_domain(d.domain_name) for d in domains if d.match_subdomains)

    def __call__(self, domain: str) -> bool:
        domain = _norm_domain(domain)
        if domain in self._exact:
            return True
        parents = iter(_parents(domain))
        next(parents)  # the domain itself is only accepted by equality
        return any(parent in self._subdomains for parent in parents)


def accepted_expr(domain_col: str, domains: Sequence[AcceptedDomain]) -> pl.Expr:
    """A polars expression for the §1 ``*_accepted`` rule over column `domain_col`, named
    ``sender_accepted`` for ``sender_domain`` (``<col>_accepted`` for other names).

    Same answers as the ``sender_accepted``/``recipient_accepted`` columns of `Attributor`, for
    lazy pipelines that have no `Attributor` at hand; its cost grows with the number of
    ``MatchSubDomains`` domains (one suffix test each), so prefer the attributed columns.
    """
    col = pl.col(domain_col).cast(pl.String).str.strip_chars().str.to_lowercase().str.strip_chars_end(".")
    exact = sorted({_norm_domain(d.domain_name) for d in domains})
    expr = col.is_in(pl.lit(pl.Series(exact, dtype=pl.String)).implode())
    for domain in sorted({_norm_domain(d.domain_name) for d in domains if d.match_subdomains}):
        expr = expr | col.str.ends_with("." + domain)
    # is_in gives False for null; the spec wants null for a null domain
    name = (domain_col.removesuffix("_domain") if domain_col.endswith("_domain") else domain_col) + "_accepted"
    return pl.when(pl.col(domain_col).is_null()).then(None).otherwise(expr).alias(name)


# --------------------------------------------------------------------------------------------
# IP tables
# --------------------------------------------------------------------------------------------


def _restricts(connector: InboundConnector) -> bool:
    """The spec's tie winner: a Partner connector restricting its domains to its IP addresses
    (the restrict flags only apply to Partner connectors, so an OnPremises one never counts)."""
    return connector.connector_type == "Partner" and connector.restrict_domains_to_ip_addresses


def _tie_order(connectors: Sequence[InboundConnector], indices: Iterable[int]) -> list[int]:
    """Connector indices in tie-break priority: restricting first, then configuration order."""
    return sorted(indices, key=lambda i: (not _restricts(connectors[i]), i))


def _connector_table(connectors: Sequence[InboundConnector], indices: Iterable[int]) -> PrefixTable:
    """A table of the given connectors' SenderIPAddresses, values = index into `connectors`.

    `PrefixTable` keeps the *last* value added for an identical prefix, so connectors are added
    from the lowest to the highest tie priority: the winner of a tie is written last. This also
    resolves ties between entries written differently (a range and the CIDR it splits into),
    because the table compares normalized prefixes.
    """
    table = PrefixTable()
    for index in reversed(_tie_order(connectors, indices)):
        connector = connectors[index]
        for entry in connector.sender_ip_addresses:
            try:
                table.add(entry, index)
            except PrefixError as exc:
                raise _entry_error(connector, "SenderIPAddresses", entry, exc) from None
    return table


def _entry_error(connector: InboundConnector, prop: str, entry: str, exc: PrefixError) -> ConfigError:
    return ConfigError(f"invalid {prop} entry {entry!r} of inbound connector {connector.name!r}",
                       expected=exc.expected, got=exc.got, where=connector.source, hint=exc.hint)


def _plain_table(entries: Iterable[str], what: str) -> PrefixTable:
    table = PrefixTable()
    for number, entry in enumerate(entries, 1):
        try:
            table.add(entry, 0)
        except PrefixError as exc:
            raise ConfigError(f"invalid {what} entry {entry!r}", expected=exc.expected, got=exc.got,
                              where=f"{what}, entry {number}", hint=exc.hint) from None
    return table


def _normalized(entry: str) -> list[str]:
    """The CIDRs `PrefixTable` stores for one entry (host bits cleared, ranges split, netmasks and
    IPv4-mapped prefixes converted), so differently written entries compare equal."""
    return [prefix for prefix, _ in PrefixTable.from_pairs([(entry, 0)]).prefixes()]


def _unexported(connector: Any, *props: str) -> bool:
    """Whether one of `props` was exported only as a .NET type name (its value is unknown)."""
    names = {p.casefold() for p in connector.unexported}
    return any(p.casefold() in names for p in props)


# --------------------------------------------------------------------------------------------
# Attributor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attributor:
    """Configuration compiled once (PrefixTables, domain rules); immutable; reusable over many batches.

    Build it with `Attributor.build`; the fields are the compiled form and not meant to be set by
    hand. `attribute` is safe to call from several threads at once.
    """

    inbound_names: tuple[str, ...]
    outbound_names: tuple[str, ...]
    enabled_table: PrefixTable
    disabled_table: PrefixTable
    private_table: PrefixTable
    microsoft_table: PrefixTable
    partner_domains: _DomainRule  # value: index into inbound_names
    outbound_domains: _DomainRule  # value: index into outbound_names
    all_accepted_outbound: int | None  # the AllAcceptedDomains fallback, index into outbound_names
    rule_scoped: Mapping[str, int] = field(hash=False, compare=False)  # casefolded name -> index
    accepted: _Accepted = field(hash=False)
    ip_tables: tuple[tuple[str, PrefixTable, tuple[str, ...]], ...] = ()
    options: Options = Options()

    @classmethod
    def build(
        cls,
        connectors: Connectors,
        domains: Sequence[AcceptedDomain],
        *,
        ip_tables: Mapping[str, tuple[PrefixTable, list[str]]] = MappingProxyType({}),
        options: Options = Options(),
    ) -> Attributor:
        """Compile `connectors`, `domains`, the ``--ip-table`` tables and `options`.

        Raises `ConfigError` for a connector IP entry or ``internal_networks`` entry that is not
        a prefix (configs from `analyzer.config` are already validated), and ValueError for an
        ip table whose name collides with an attribution column.
        """
        inbound = connectors.inbound
        enabled = [i for i, c in enumerate(inbound) if c.enabled]
        disabled = [i for i, c in enumerate(inbound) if not c.enabled]

        # Domain fallback candidates: enabled Partner connectors identified by neither IP nor
        # certificate. A connector whose IPs or certificate were not exported is left out: it may
        # well have them, and attributing by domain would then be a guess.
        by_domain = [
            (pattern, i)
            for i in enabled
            if (c := inbound[i]).connector_type == "Partner"
            and not c.sender_ip_addresses
            and not c.tls_sender_certificate_name
            and not _unexported(c, "SenderIPAddresses", "TlsSenderCertificateName")
            for pattern in c.sender_domains
        ]

        outbound = connectors.outbound
        routable = [i for i, c in enumerate(outbound) if c.enabled and not c.is_transport_rule_scoped]
        rule_scoped: dict[str, int] = {}
        for i, c in enumerate(outbound):
            if c.enabled and c.is_transport_rule_scoped:
                rule_scoped.setdefault(c.name.strip().casefold(), i)  # first in configuration order
        all_accepted = next((i for i in routable if outbound[i].all_accepted_domains), None)

        tables = []
        for name, (table, labels) in ip_tables.items():
            # Its column would replace the attribution column, or the input column read here.
            if name in ATTRIBUTION_SCHEMA or name in REQUIRED_COLUMNS:
                raise ValueError(f"ip table name {name!r} collides with the column of that name")
            tables.append((name, table, tuple(labels)))

        return cls(
            inbound_names=tuple(c.name for c in inbound),
            outbound_names=tuple(c.name for c in outbound),
            enabled_table=_connector_table(inbound, enabled),
            disabled_table=_connector_table(inbound, disabled),
            private_table=_plain_table((*PRIVATE_NETWORKS, *options.internal_networks), "internal_networks"),
            microsoft_table=_plain_table(EXCHANGE_ONLINE, "EXCHANGE_ONLINE"),
            partner_domains=_DomainRule(by_domain),
            outbound_domains=_DomainRule((p, i) for i in routable for p in outbound[i].recipient_domains),
            all_accepted_outbound=all_accepted,
            rule_scoped=MappingProxyType(rule_scoped),
            accepted=_Accepted(domains),
            ip_tables=tuple(tables),
            options=options,
        )

    # ---------------------------------------------------------------------------------------

    def output_schema(self) -> dict[str, pl.DataType]:
        """The appended columns, ip tables included, in output order."""
        return {**ATTRIBUTION_SCHEMA, **{name: pl.String() for name, _, _ in self.ip_tables}}

    def attribute(self, records: pl.DataFrame) -> pl.DataFrame:
        """`records` with the §1 columns appended (then one column per ip table).

        Needs only ``client_ip``, ``sender_domain``, ``recipient_domain`` and ``connector_name``
        (String or Categorical); every other column is kept as is, in place. Attribution columns
        already present (an attributed frame attributed again) are replaced and moved to the end,
        so the layout never depends on the input.
        """
        missing = [c for c in REQUIRED_COLUMNS if c not in records.columns]
        if missing:
            raise InputError("records lack columns attribution needs",
                             expected=", ".join(REQUIRED_COLUMNS), got="no " + ", ".join(missing),
                             where="records", hint="pass the normalized table of analyzer.readers")
        ip: Any = _as_string(records.get_column("client_ip"))
        if ip.dtype == pl.String:
            ip = ip.to_arrow()  # once, not once per table lookup (polars -> Arrow is a copy)
        in_codes = self.enabled_table.lookup(ip)

        # ---- inbound: by IP, else by sender domain (partner connectors without IPs/certificate)
        sender = _as_string(records.get_column("sender_domain"))
        sender_ids, sender_distinct = _distinct_ids(sender)
        if self.partner_domains:
            domain_codes = _per_distinct(sender_ids, sender_distinct, self.partner_domains.match)
            inbound_codes = np.where(in_codes >= 0, in_codes, domain_codes)
            match_codes = np.where(in_codes >= 0, 0, np.where(domain_codes >= 0, 1, -1))
        else:
            inbound_codes = in_codes
            match_codes = np.where(in_codes >= 0, 0, -1)
        inbound_names = pl.Series("inbound_names", self.inbound_names, dtype=pl.String)
        inbound = _gather(inbound_names, inbound_codes)
        match = _gather(pl.Series("matches", ["ip", "domain"], dtype=pl.String), match_codes)
        disabled = _gather(inbound_names, self.disabled_table.lookup(ip))

        # ---- outbound
        recipient = _as_string(records.get_column("recipient_domain"))
        recipient_ids, recipient_distinct = _distinct_ids(recipient)
        recipient_ok = [self.accepted(d) for d in recipient_distinct]

        def route(position: int) -> int | None:
            found = self.outbound_domains.match(recipient_distinct[position])
            if found is None and self.all_accepted_outbound is not None and recipient_ok[position]:
                found = self.all_accepted_outbound
            return found

        outbound_codes = _per_distinct(recipient_ids, range(len(recipient_distinct)), route)
        if self.rule_scoped:
            logged = _as_string(records.get_column("connector_name"))
            logged_ids, logged_distinct = _distinct_ids(logged)
            rule_codes = _per_distinct(logged_ids, logged_distinct,
                                       lambda name: self.rule_scoped.get(name.strip().casefold()))
            # A transport rule routes before domain selection does, so a logged rule-scoped
            # connector wins; still only for rows with a recipient domain, like every outbound row.
            use_rule = (rule_codes >= 0) & (recipient_ids < len(recipient_distinct))  # non-null domain
            outbound_codes = np.where(use_rule, rule_codes, outbound_codes)
        outbound = _gather(pl.Series("outbound_names", self.outbound_names, dtype=pl.String), outbound_codes)

        # ---- ip_class: connector > private > microsoft > other; null when not an address
        priv = self.private_table.lookup(ip)
        ms = self.microsoft_table.lookup(ip)
        cls = np.full(len(in_codes), 3, dtype=np.int32)
        cls[ms >= 0] = 2
        cls[priv >= 0] = 1
        cls[in_codes >= 0] = 0
        cls[(in_codes == NOT_AN_IP) | (in_codes == EMPTY)] = -1
        ip_class = _gather(pl.Series("classes", _IP_CLASSES, dtype=pl.String), cls)

        # ---- accepted domains, per distinct value
        booleans = pl.Series("booleans", [False, True], dtype=pl.Boolean)
        sender_ok = _gather(booleans, _per_distinct(sender_ids, sender_distinct, lambda d: int(self.accepted(d))))
        recipient_ok_col = _gather(booleans, _per_distinct(recipient_ids, recipient_ok, int))

        columns = [
            inbound.alias("inbound_connector"),
            match.alias("inbound_match"),
            disabled.alias("disabled_inbound_connector"),
            outbound.alias("outbound_connector"),
            ip_class.alias("ip_class"),
            sender_ok.alias("sender_accepted"),
            recipient_ok_col.alias("recipient_accepted"),
        ]
        for name, table, labels in self.ip_tables:
            codes = table.lookup(ip)
            if len(codes) and codes.max() >= len(labels):
                raise ValueError(f"ip table {name!r} holds value {codes.max()}, but has only {len(labels)} labels")
            columns.append(_gather(pl.Series(name, labels, dtype=pl.String), codes).alias(name))

        appended = {s.name for s in columns}
        kept = records.select([c for c in records.columns if c not in appended])
        return kept.hstack(columns)


def _as_string(series: pl.Series) -> pl.Series:
    """String or Categorical pass; an all-null column built without a type becomes String."""
    if series.dtype == pl.Null:
        return series.cast(pl.String)
    return series


def _distinct_ids(series: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's position among the distinct values, and those values; a null row gets the
    position ``len(values)``, one past the end (`_per_distinct` maps it to "no value").

    This is the only per-row work of the domain rules: one dictionary-encoding pass (Arrow's
    hash kernel, about 3x faster here than polars' unique + replace_strict). Everything else
    runs once per distinct value.
    """
    encoded = dictionary(series)
    distinct = encoded.dictionary.to_pylist()
    ids = pc.fill_null(encoded.indices, len(distinct)).to_numpy(zero_copy_only=False)
    return ids, distinct


def _per_distinct(ids: np.ndarray, distinct: Iterable[Any], decide: Any) -> np.ndarray:
    """Apply `decide` (value -> int code or None) once per distinct value and expand to rows as
    codes for `_gather`: -1 for None and for null rows."""
    decided = [-1 if (v := decide(d)) is None else v for d in distinct]
    return np.array(decided + [-1], dtype=np.int32)[ids]


def _gather(names: pl.Series, codes: np.ndarray) -> pl.Series:
    """Names by code; negative codes (no match, not an IP, null) give null."""
    valid = codes >= 0
    index = pa.array(np.where(valid, codes, 0).astype(np.uint32), mask=~valid)
    if len(names) == 0:  # nothing can match; gather would reject even all-null indices
        return pl.Series(names.name, [None] * len(codes), dtype=pl.String)
    return names.gather(pl.Series(index))


# --------------------------------------------------------------------------------------------
# connector_config findings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Finding:
    severity: str
    subject: str
    detail: str
    recommendation: str


def config_findings(
    connectors: Connectors,
    domains: Sequence[AcceptedDomain],
    *,
    cloud_tables: Mapping[str, tuple[PrefixTable, list[str]]] = MappingProxyType({}),
) -> pl.DataFrame:
    """``connector_config`` findings of one configuration (docs/analysis.md §2), sorted by
    severity (high first), kind, subject (then detail, so the order is total).

    Configuration findings involve no records: ``first_seen``/``last_seen`` are null, ``count``
    is 0 and ``sample_message_ids`` empty. `domains` is part of the signature so that a later
    rule about accepted domains needs no API change; no current bullet uses it.
    """
    del domains  # no connector_config bullet depends on accepted domains (yet)
    inbound = connectors.inbound
    found: list[_Finding] = []
    for connector in inbound:
        found += _never_matches(connector)
        found += _mixes_ip_and_certificate(connector)
        found += _rejected_entries(connector)
        for table_name, (table, labels) in cloud_tables.items():
            found += _in_cloud(connector, table_name, table, labels)
    found += _same_prefix(inbound)
    found += _shadowed_by_restriction(inbound)
    for receive in connectors.receive:
        found += _anonymous_relay(receive)

    found.sort(key=lambda f: (_SEVERITY_RANK[f.severity], f.subject, f.detail))
    rows = [("connector_config", f.severity, f.subject, None, None, 0, f.detail, f.recommendation, [])
            for f in found]
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA, orient="row")


def _quoted(items: Iterable[str], limit: int = 10) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _never_matches(c: InboundConnector) -> list[_Finding]:
    if not (c.enabled and c.connector_type == "OnPremises"):
        return []
    if c.sender_ip_addresses or c.tls_sender_certificate_name:
        return []
    if _unexported(c, "SenderIPAddresses", "TlsSenderCertificateName"):
        return []  # the export did not say what it holds: not provably empty
    return [_Finding(
        "high", c.name,
        f"Enabled OnPremises inbound connector '{c.name}' has an empty SenderIPAddresses and no "
        "TlsSenderCertificateName, so no message can ever match it.",
        "Add the on-premises servers' public IP addresses to SenderIPAddresses or set "
        "TlsSenderCertificateName to the name on their certificate; otherwise remove the connector",
    )]


def _mixes_ip_and_certificate(c: InboundConnector) -> list[_Finding]:
    if c.connector_type != "Partner" or not c.sender_ip_addresses or not c.tls_sender_certificate_name:
        return []
    state = "" if c.enabled else " (disabled)"
    n = len(c.sender_ip_addresses)
    return [_Finding(
        "medium", c.name,
        f"Partner inbound connector '{c.name}'{state} identifies senders both by {n} SenderIPAddresses "
        f"entr{'y' if n == 1 else 'ies'} ({_quoted(c.sender_ip_addresses)}) and by TlsSenderCertificateName "
        f"'{c.tls_sender_certificate_name}'.",
        "Split it into two connectors, one identifying the partner by IP addresses and one by certificate",
    )]


def _rejected_entries(c: InboundConnector) -> list[_Finding]:
    bad = []
    for entry in c.sender_ip_addresses:
        try:
            prefixes = _normalized(entry)
        except PrefixError as exc:
            raise _entry_error(c, "SenderIPAddresses", entry, exc) from None
        if ":" in entry.split("/")[0] or any(":" in p for p in prefixes):
            bad.append(f"{entry} (IPv6)")
            continue
        shortest = min(int(p.split("/")[1]) for p in prefixes)
        if shortest < 24:
            # a range wider than a /24 counts like the CIDR it contains
            bad.append(f"{entry} (/{shortest})" if "-" not in entry else f"{entry} (spans a /{shortest})")
    if not bad:
        return []
    return [_Finding(
        "low", c.name,
        f"Inbound connector '{c.name}' has {len(bad)} SenderIPAddresses entr{'y' if len(bad) == 1 else 'ies'} "
        f"outside IPv4 /24-/32, which Exchange Online rejects: {_quoted(bad)}.",
        "Use IPv4 addresses or CIDR ranges from /24 to /32 (split shorter ranges into /24s; "
        "identify IPv6 senders by certificate)",
    )]


def _in_cloud(c: InboundConnector, table_name: str, table: PrefixTable, labels: Sequence[str]) -> list[_Finding]:
    """Entries whose whole network lies in the table's ranges: both ends of every CIDR the entry
    covers must match (a range file's prefixes are contiguous blocks, so for the /24-/32 entries
    of connectors this means "inside one of its ranges")."""
    inside: list[str] = []
    seen_labels: list[str] = []
    for entry in c.sender_ip_addresses:
        try:
            prefixes = _normalized(entry)
        except PrefixError as exc:
            raise _entry_error(c, "SenderIPAddresses", entry, exc) from None
        codes: list[int] = []
        for prefix in prefixes:
            net = ipaddress.ip_network(prefix)
            codes += [table.lookup_one(str(net.network_address)), table.lookup_one(str(net.broadcast_address))]
        if codes and all(code >= 0 for code in codes):
            inside.append(entry)
            for code in codes:
                label = labels[code] if code < len(labels) else str(code)
                if label not in seen_labels:
                    seen_labels.append(label)
    if not inside:
        return []
    return [_Finding(
        "medium", c.name,
        f"Inbound connector '{c.name}' lists {_quoted(inside)} inside the shared ranges of {table_name} "
        f"({_quoted(seen_labels, 5)}): any customer of that provider can send from these addresses.",
        "Identify this sender by TLS certificate (TlsSenderCertificateName) rather than by shared cloud "
        "IP addresses, or list only addresses dedicated to it",
    )]


def _same_prefix(inbound: Sequence[InboundConnector]) -> list[_Finding]:
    enabled = [i for i, c in enumerate(inbound) if c.enabled]
    owners: dict[str, list[int]] = {}
    for i in enabled:
        for entry in inbound[i].sender_ip_addresses:
            try:
                prefixes = _normalized(entry)
            except PrefixError as exc:
                raise _entry_error(inbound[i], "SenderIPAddresses", entry, exc) from None
            for prefix in prefixes:
                holders = owners.setdefault(prefix, [])
                if i not in holders:
                    holders.append(i)
    pairs: dict[tuple[int, int], list[str]] = {}
    for prefix, holders in owners.items():
        for x, a in enumerate(holders):
            for b in holders[x + 1 :]:
                pairs.setdefault((min(a, b), max(a, b)), []).append(prefix)
    found = []
    for (a, b), prefixes in sorted(pairs.items()):
        winner, loser = _tie_order(inbound, (a, b))
        why = ("it restricts its domains to its IP addresses" if _restricts(inbound[winner])
               and not _restricts(inbound[loser]) else "it comes first in the configuration")
        ca, cb = inbound[a], inbound[b]
        found.append(_Finding(
            "medium", f"{ca.name}, {cb.name}",
            f"Enabled inbound connectors '{ca.name}' and '{cb.name}' both list "
            f"{len(prefixes)} identical prefix{'es' if len(prefixes) > 1 else ''} ({_quoted(prefixes)}); "
            f"for these addresses '{inbound[winner].name}' is used ({why}).",
            f"List each prefix in one connector only: remove {_quoted(prefixes, 3)} from the connector "
            "that should not handle that mail",
        ))
    return found


def _allows_by_domain(c: InboundConnector) -> bool:
    return (c.enabled and c.connector_type == "Partner" and not c.sender_ip_addresses
            and not c.tls_sender_certificate_name and not c.restrict_domains_to_ip_addresses
            and not c.restrict_domains_to_certificate
            and not _unexported(c, "SenderIPAddresses", "TlsSenderCertificateName"))


def _restricting(c: InboundConnector) -> bool:
    return (c.enabled and c.connector_type == "Partner"
            and (c.restrict_domains_to_ip_addresses or c.restrict_domains_to_certificate))


def _shadowed_by_restriction(inbound: Sequence[InboundConnector]) -> list[_Finding]:
    """An allow-by-domain connector's entry is shadowed when a restricting connector's entry
    covers it (same entry, or a wildcard/``*`` covering it): mail from those domains is held to
    the restricting connector's IPs or certificate (FORMATS.md §3)."""
    found = []
    for allow in (c for c in inbound if _allows_by_domain(c)):
        for restrict in (c for c in inbound if _restricting(c)):
            pairs = [(a, r) for a in allow.sender_domains for r in restrict.sender_domains if _covers(r, a)]
            if not pairs:
                continue
            shadowed = list(dict.fromkeys(a for a, _ in pairs))
            listed = list(dict.fromkeys(r for _, r in pairs))
            by = " and ".join(w for w, on in (("IP addresses", restrict.restrict_domains_to_ip_addresses),
                                             ("certificate", restrict.restrict_domains_to_certificate)) if on)
            found.append(_Finding(
                "medium", f"{allow.name}, {restrict.name}",
                f"Partner inbound connector '{allow.name}' accepts {_quoted(shadowed)} by sender domain alone, "
                f"but '{restrict.name}' lists {_quoted(listed)} and restricts {'it' if len(listed) == 1 else 'them'} "
                f"to its {by}: mail from {'this domain' if len(shadowed) == 1 else 'these domains'} must match "
                f"'{restrict.name}', so '{allow.name}' is never used for {'it' if len(shadowed) == 1 else 'them'}.",
                f"Remove {_quoted(shadowed, 3)} from one of the two connectors, or add the partner's other "
                f"servers to '{restrict.name}'",
            ))
    return found


_IPV4_ALL = ipaddress.ip_network("0.0.0.0/0")
_IPV6_ALL = ipaddress.ip_network("::/0")
_RELAY_WORD = re.compile("relay", re.IGNORECASE)


def _covers_everything(ranges: Sequence[str]) -> list[str]:
    """Which whole address families ("IPv4", "IPv6") the union of `ranges` covers."""
    nets: list[Any] = []
    for entry in ranges:
        try:
            nets += [ipaddress.ip_network(p) for p in _normalized(entry)]
        except PrefixError:
            continue  # config.py validated these; a hand-built bad entry just covers nothing
    out = []
    for family, whole in (("IPv4", _IPV4_ALL), ("IPv6", _IPV6_ALL)):
        # IPv4-mapped IPv6 entries are stored as IPv4 by PrefixTable, so families do not mix
        collapsed = list(ipaddress.collapse_addresses(n for n in nets if n.version == whole.version))
        if collapsed == [whole]:
            out.append(family)
    return out


def _receive_subject(r: ReceiveConnector) -> str:
    """Exchange's own identity form, ``SERVER\\Name``: receive connector names repeat per server."""
    return f"{r.server}\\{r.name}" if r.server else r.name


def _anonymous_relay(r: ReceiveConnector) -> list[_Finding]:
    # A disabled connector accepts no connection: it is no exposure until someone enables it.
    if not r.enabled or "AnonymousUsers" not in r.permission_groups:
        return []
    families = _covers_everything(r.remote_ip_ranges)
    if not families:
        return []
    reasons = []
    if "ExternalAuthoritative" in r.auth_mechanism:
        reasons.append("AuthMechanism includes ExternalAuthoritative")
    if _RELAY_WORD.search(r.name):
        reasons.append("its name says relay")
    if r.transport_role and _RELAY_WORD.search(r.transport_role):
        reasons.append(f"its role {r.transport_role} says relay")
    if not reasons:
        return []
    subject = _receive_subject(r)
    return [_Finding(
        "high", subject,
        f"Receive connector '{subject}' lets AnonymousUsers connect from every {' and '.join(families)} "
        f"address (RemoteIPRanges {_quoted(r.remote_ip_ranges)}) and grants relay "
        f"({'; '.join(reasons)}): anyone on the internet can relay mail through it.",
        "Limit RemoteIPRanges to the devices that must relay, and grant anonymous relay "
        "(ms-Exch-SMTP-Accept-Any-Recipient) only on that restricted connector, without ExternalAuthoritative",
    )]
