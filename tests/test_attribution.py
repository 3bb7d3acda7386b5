"""analyzer.attribution: the §1 attribution columns and the ``connector_config`` findings of
docs/analysis.md, with exact expected values on small hand-built configurations, a brute-force
`ipaddress` oracle for the IP rule (hypothesis), the real CLIXML receive connectors, and a
throughput floor."""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import matching
from analyzer.attribution import (
    ATTRIBUTION_SCHEMA,
    FINDINGS_SCHEMA,
    Attributor,
    Options,
    accepted_expr,
    config_findings,
)
from analyzer.config import (
    AcceptedDomain,
    Connectors,
    InboundConnector,
    OutboundConnector,
    ReceiveConnector,
    load_connectors,
)
from analyzer.errors import ConfigError, InputError
from analyzer.ranges import load_table

DATA = Path(__file__).resolve().parent / "data" / "attribution"
RECEIVE = "connectors/css-exchange_GetReceiveConnector.clixml.xml"
SCUBA = "connectors/scubagear_ProviderSettingsExport_exo_connectors_extract.json"

# --------------------------------------------------------------------------------------------
# Builders: the dataclasses with the Exchange defaults, so each test states only what matters
# --------------------------------------------------------------------------------------------


_INBOUND = InboundConnector(
    name="", enabled=True, connector_type="Partner", connector_source=None, sender_ip_addresses=(),
    sender_domains=(), tls_sender_certificate_name=None, require_tls=False, restrict_domains_to_ip_addresses=False,
    restrict_domains_to_certificate=False, trusted_organizations=(), associated_accepted_domains=(),
    cloud_services_mail_enabled=False, treat_messages_as_internal=False, ef_skip_ips=(), ef_skip_last_ip=False,
    ef_users=(), source="test",
)
_OUTBOUND = OutboundConnector(
    name="", enabled=True, connector_type="Partner", recipient_domains=(), smart_hosts=(), use_mx_record=True,
    tls_settings=None, tls_domain=None, is_transport_rule_scoped=False, route_all_messages_via_on_premises=False,
    all_accepted_domains=False, test_mode=False, source="test",
)
_RECEIVE = ReceiveConnector(
    name="", enabled=True, server="EX01", remote_ip_ranges=("0.0.0.0-255.255.255.255",), bindings=("0.0.0.0:25",),
    permission_groups=("AnonymousUsers",), auth_mechanism=("Tls",), transport_role="FrontendTransport",
    fqdn="ex01.contoso.com", source="test",
)


def inbound(name: str, *ips: str, **kw: Any) -> InboundConnector:
    return dataclasses.replace(_INBOUND, name=name, sender_ip_addresses=ips, **kw)


def outbound(name: str, *domains: str, **kw: Any) -> OutboundConnector:
    return dataclasses.replace(_OUTBOUND, name=name, recipient_domains=domains, **kw)


def receive(name: str, **kw: Any) -> ReceiveConnector:
    return dataclasses.replace(_RECEIVE, name=name, **kw)


def accepted(name: str, *, subdomains: bool = False) -> AcceptedDomain:
    return AcceptedDomain(domain_name=name, domain_type="Authoritative", match_subdomains=subdomains,
                          default=False, source="test")


def records(client_ip: list[str | None] | None = None, *, sender_domain: list[str | None] | None = None,
            recipient_domain: list[str | None] | None = None,
            connector_name: list[str | None] | None = None) -> pl.DataFrame:
    """The columns attribution reads (missing lists are all null) plus a passenger column."""
    n = max(len(v) for v in (client_ip, sender_domain, recipient_domain, connector_name) if v is not None)
    def col(values: list[str | None] | None) -> list[str | None]:
        return values if values is not None else [None] * n
    return pl.DataFrame({
        "message_id": [f"m{i}" for i in range(n)],
        "client_ip": col(client_ip),
        "sender_domain": col(sender_domain),
        "recipient_domain": col(recipient_domain),
        "connector_name": col(connector_name),
    }, schema={"message_id": pl.String, "client_ip": pl.String, "sender_domain": pl.String,
               "recipient_domain": pl.String, "connector_name": pl.String})


def attribute(connectors: Connectors, frame: pl.DataFrame, domains: tuple[AcceptedDomain, ...] = (),
              **kw: Any) -> pl.DataFrame:
    return Attributor.build(connectors, domains, **kw).attribute(frame)


# --------------------------------------------------------------------------------------------
# inbound_connector / inbound_match by IP
# --------------------------------------------------------------------------------------------


def test_longest_prefix_wins_across_connectors() -> None:
    conns = Connectors(inbound=(
        inbound("Wide", "192.0.2.0/24"),
        inbound("Half", "192.0.2.128/25"),
        inbound("Host", "192.0.2.200"),
        inbound("Other", "198.51.100.0/24"),
    ))
    out = attribute(conns, records(["192.0.2.5", "192.0.2.130", "192.0.2.200", "198.51.100.9", "203.0.113.1"]))
    assert out["inbound_connector"].to_list() == ["Wide", "Half", "Host", "Other", None]
    assert out["inbound_match"].to_list() == ["ip", "ip", "ip", "ip", None]


def test_identical_prefix_restricting_partner_wins_then_configuration_order() -> None:
    def winner(*conns: InboundConnector) -> str | None:
        return attribute(Connectors(inbound=conns), records(["198.51.100.7"]))["inbound_connector"][0]

    first = inbound("First", "198.51.100.0/24")
    restricting = inbound("Restricting", "198.51.100.0-198.51.100.255", restrict_domains_to_ip_addresses=True)
    # the same prefix written as a range: identical once normalized; the restricting one wins
    # whichever comes first
    assert winner(first, restricting) == "Restricting"
    assert winner(restricting, first) == "Restricting"
    # neither restricts: the first in configuration order
    second = inbound("Second", "198.51.100.0/24")
    assert winner(first, second) == "First"
    assert winner(second, first) == "Second"
    # the restrict flag only counts on Partner connectors
    assert winner(first, inbound("OnPrem", "198.51.100.0/24", connector_type="OnPremises",
                                 restrict_domains_to_ip_addresses=True)) == "First"
    # host bits are cleared before comparing: 198.51.100.1/24 is the same prefix
    assert winner(first, inbound("Messy", "198.51.100.1/24", restrict_domains_to_ip_addresses=True)) == "Messy"
    # a longer prefix still beats a restricting connector's shorter one
    assert winner(restricting, inbound("Host", "198.51.100.7")) == "Host"


def test_disabled_connector() -> None:
    conns = Connectors(inbound=(
        inbound("Old", "203.0.113.0/24", enabled=False),
        inbound("New", "203.0.113.0/26"),
        inbound("Gone", "203.0.113.64/26", enabled=False, sender_domains=("contoso.com",)),
    ))
    out = attribute(conns, records(["203.0.113.5", "203.0.113.70", "203.0.113.200", "192.0.2.1"],
                                   sender_domain=["contoso.com"] * 4))
    assert out["inbound_connector"].to_list() == ["New", None, None, None]
    assert out["inbound_match"].to_list() == ["ip", None, None, None]
    assert out["disabled_inbound_connector"].to_list() == ["Old", "Gone", "Old", None]
    assert out["ip_class"].to_list() == ["connector", "other", "other", "other"]


def test_empty_sender_ip_addresses_match_nothing() -> None:
    conns = Connectors(inbound=(
        inbound("Empty OnPrem", connector_type="OnPremises"),
        inbound("Cert only", tls_sender_certificate_name="mail.fabrikam.com", sender_domains=("*",)),
    ))
    out = attribute(conns, records(["0.0.0.0", "192.0.2.1", "::", "2001:db8::1"], sender_domain=["fabrikam.com"] * 4))
    assert out["inbound_connector"].to_list() == [None] * 4
    assert out["ip_class"].to_list() == ["other"] * 4


# --------------------------------------------------------------------------------------------
# inbound by sender domain
# --------------------------------------------------------------------------------------------


def test_domain_fallback_only_for_partner_connectors_without_ips_or_certificate() -> None:
    conns = Connectors(inbound=(
        inbound("By domain", sender_domains=("contoso.com",)),
        inbound("With cert", sender_domains=("fabrikam.com",), tls_sender_certificate_name="mx.fabrikam.com"),
        inbound("OnPrem", sender_domains=("northwind.com",), connector_type="OnPremises"),
        inbound("With IPs", "192.0.2.0/24", sender_domains=("tailspin.com", "contoso.com")),
        inbound("Disabled", sender_domains=("adatum.com",), enabled=False),
        inbound("Unknown IPs", sender_domains=("woodgrove.com",), unexported=("SenderIPAddresses",)),
    ))
    out = attribute(conns, records(
        ["198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.1",
         "192.0.2.9", None, "not an ip"],
        sender_domain=["contoso.com", "fabrikam.com", "northwind.com", "tailspin.com", "adatum.com",
                       "woodgrove.com", "contoso.com", "contoso.com", "CONTOSO.COM"],
    ))
    # an IP match comes first; a null or bad client_ip still allows the domain rule
    assert out["inbound_connector"].to_list() == [
        "By domain", None, None, None, None, None, "With IPs", "By domain", "By domain"]
    assert out["inbound_match"].to_list() == ["domain", None, None, None, None, None, "ip", "domain", "domain"]
    # a domain match is not an IP match: ip_class says what the address is
    assert out["ip_class"].to_list() == ["other"] * 6 + ["connector", None, None]


SENDER_PATTERNS = Connectors(inbound=(
    inbound("Star", sender_domains=("*",)),
    inbound("Wild", sender_domains=("*.contoso.com",)),
    inbound("Wild mail", sender_domains=("*.mail.contoso.com",)),
    inbound("Exact", sender_domains=("mail.contoso.com", "x400:c=us;a= ;p=contoso")),
    inbound("Later star", sender_domains=("*", "*.contoso.com")),
))


def test_sender_domain_wildcard_specificity() -> None:
    domains = ["mail.contoso.com", "a.mail.contoso.com", "contoso.com", "x.contoso.com", "xcontoso.com",
               "fabrikam.com", None, ""]
    out = attribute(SENDER_PATTERNS, records(sender_domain=domains))
    assert out["inbound_connector"].to_list() == [
        "Exact", "Wild mail", "Wild", "Wild", "Star", "Star", None, None]


def test_outbound_recipient_domain_wildcard_specificity() -> None:
    conns = Connectors(outbound=(
        outbound("Star", "*"),
        outbound("Wild", "*.contoso.com"),
        outbound("Wild mail", "*.mail.contoso.com"),
        outbound("Exact", "mail.contoso.com"),
        outbound("Disabled exact", "fabrikam.com", enabled=False),
    ))
    out = attribute(conns, records(recipient_domain=[
        "mail.contoso.com", "a.mail.contoso.com", "contoso.com", "x.contoso.com", "fabrikam.com", None]))
    assert out["outbound_connector"].to_list() == ["Exact", "Wild mail", "Wild", "Wild", "Star", None]


def test_transport_rule_scoped_outbound_only_via_connector_name() -> None:
    conns = Connectors(outbound=(
        outbound("Encrypt via gateway", "*", is_transport_rule_scoped=True),
        outbound("Partner", "fabrikam.com"),
        outbound("Rule off", "*", is_transport_rule_scoped=True, enabled=False),
    ))
    out = attribute(conns, records(
        recipient_domain=["fabrikam.com", "fabrikam.com", "contoso.com", "contoso.com", None, "contoso.com"],
        connector_name=[None, "  encrypt VIA Gateway ", "Encrypt via gateway", "Other", "Encrypt via gateway",
                        "Rule off"],
    ))
    # named: the rule routed it (over domain routing); never chosen by domain; null recipient
    # domain: no outbound connector; a disabled rule-scoped connector never
    assert out["outbound_connector"].to_list() == [
        "Partner", "Encrypt via gateway", "Encrypt via gateway", None, None, None]


def test_all_accepted_domains_connector() -> None:
    conns = Connectors(outbound=(
        outbound("To on-premises", all_accepted_domains=True),
        outbound("Exact", "contoso.com"),
        outbound("Disabled AAD", all_accepted_domains=True, enabled=False),
    ))
    domains = (accepted("contoso.com", subdomains=True), accepted("fabrikam.com"))
    out = attribute(conns, records(recipient_domain=[
        "contoso.com", "eu.contoso.com", "fabrikam.com", "eu.fabrikam.com", "northwind.com", None]), domains)
    assert out["outbound_connector"].to_list() == [
        "Exact", "To on-premises", "To on-premises", None, None, None]
    # without AllAcceptedDomains nothing routes the accepted domains
    plain = Connectors(outbound=(dataclasses.replace(conns.outbound[0], all_accepted_domains=False),))
    routed = attribute(plain, records(recipient_domain=["fabrikam.com"]), domains)
    assert routed["outbound_connector"].to_list() == [None]


# --------------------------------------------------------------------------------------------
# ip_class, accepted domains, ip tables
# --------------------------------------------------------------------------------------------


def test_ip_class_every_class() -> None:
    conns = Connectors(inbound=(inbound("Office", "10.9.9.0/24"),))
    cases = {
        "10.9.9.9": "connector",             # connector beats private
        "::ffff:10.9.9.10": "connector",     # IPv4-mapped matches IPv4 connector ranges
        "10.1.2.3": "private",
        "172.31.255.255": "private",
        "172.32.0.1": "other",
        "192.168.1.1": "private",
        "100.64.0.1": "private",
        "100.128.0.1": "other",
        "127.0.0.1": "private",
        "169.254.10.10": "private",
        "::1": "private",
        "fd12:3456::1": "private",
        "fe80::1%eth0": "private",
        "::ffff:192.168.0.1": "private",
        "198.18.0.5": "private",             # internal_networks option
        "40.107.0.1": "private",             # internal_networks beats microsoft, whatever the lengths
        "40.92.1.1": "microsoft",
        "::ffff:104.47.1.1": "microsoft",
        "2a01:111:f400::1": "microsoft",
        "8.8.8.8": "other",
        "2001:db8::1": "other",
        "not-an-ip": None,
        "999.1.1.1": None,
        "": None,
    }
    frame = records([*cases, None])
    out = attribute(conns, frame, options=Options(internal_networks=("198.18.0.0/15", "40.107.0.0/24")))
    assert dict(zip(cases, out["ip_class"].to_list())) == cases
    assert out["ip_class"][-1] is None
    # without the option those two are back to other / microsoft
    plain = attribute(conns, records(["198.18.0.5", "40.107.0.1"]))
    assert plain["ip_class"].to_list() == ["other", "microsoft"]


def test_bad_internal_network_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^invalid internal_networks entry '10\.0\.0\.0/33'"):
        Attributor.build(Connectors(), (), options=Options(internal_networks=("192.0.2.0/24", "10.0.0.0/33")))


def test_accepted_domains_with_and_without_match_subdomains() -> None:
    domains = (accepted("contoso.com", subdomains=True), accepted("fabrikam.com"))
    values = ["contoso.com", "a.b.contoso.com", "fabrikam.com", "sub.fabrikam.com", "xcontoso.com",
              "com", "CONTOSO.COM.", "", None]
    expected = [True, True, True, False, False, False, True, False, None]
    out = attribute(Connectors(), records(sender_domain=values, recipient_domain=list(reversed(values))), domains)
    assert out["sender_accepted"].to_list() == expected
    assert out["recipient_accepted"].to_list() == list(reversed(expected))
    # the expression helper gives the same answers
    via_expr = records(sender_domain=values).select(accepted_expr("sender_domain", domains))
    assert via_expr.columns == ["sender_accepted"]
    assert via_expr["sender_accepted"].to_list() == expected


def test_ip_table_column() -> None:
    table = load_table(DATA / "cloud.csv")
    out = attribute(Connectors(), records(["20.50.1.1", "20.60.10.5", "20.60.11.5", "::ffff:20.50.0.1",
                                           "2603:1000::5", "8.8.8.8", "x", None]), ip_tables={"cloud": table})
    assert out.columns[-8:] == [*ATTRIBUTION_SCHEMA, "cloud"]
    assert out["cloud"].to_list() == ["westeurope", "northeurope-mail", "northeurope", "westeurope",
                                      "westeurope", None, None, None]
    for clash in ("ip_class", "client_ip"):
        with pytest.raises(ValueError, match=f"^ip table name '{clash}' collides with the column of that name$"):
            Attributor.build(Connectors(), (), ip_tables={clash: table})


# --------------------------------------------------------------------------------------------
# Frame handling
# --------------------------------------------------------------------------------------------


def test_empty_input_keeps_schema() -> None:
    frame = records(["192.0.2.1"]).clear().with_columns(pl.lit(1, pl.Int64).alias("size_bytes"))
    out = attribute(Connectors(inbound=(inbound("A", "192.0.2.0/24"),)), frame,
                    ip_tables={"cloud": load_table(DATA / "cloud.csv")})
    assert out.height == 0
    assert out.schema == pl.Schema({**frame.schema, **ATTRIBUTION_SCHEMA, "cloud": pl.String()})


def test_other_columns_kept_and_reattribution_is_stable() -> None:
    conns = Connectors(inbound=(inbound("A", "192.0.2.0/24"),))
    frame = records(["192.0.2.1", "8.8.8.8"]).with_columns(pl.lit("inbound").alias("direction"))
    attributor = Attributor.build(conns, ())
    once = attributor.attribute(frame)
    assert once.columns == [*frame.columns, *ATTRIBUTION_SCHEMA]
    assert once.select(frame.columns).equals(frame)
    assert once.schema == pl.Schema({**frame.schema, **ATTRIBUTION_SCHEMA})
    # attributing an attributed frame replaces the columns instead of duplicating them
    assert attributor.attribute(once).equals(once)


def test_only_the_four_columns_are_required() -> None:
    frame = pl.DataFrame({"client_ip": ["192.0.2.1"], "sender_domain": [None], "recipient_domain": [None],
                          "connector_name": [None]})  # untyped nulls
    out = attribute(Connectors(inbound=(inbound("A", "192.0.2.0/24"),)), frame)
    assert out["inbound_connector"].to_list() == ["A"]
    with pytest.raises(InputError, match="^records lack columns attribution needs: .*got no recipient_domain"):
        attribute(Connectors(), frame.drop("recipient_domain"))


def test_categorical_columns() -> None:
    conns = Connectors(inbound=(inbound("A", "192.0.2.0/24"), inbound("P", sender_domains=("*.contoso.com",))))
    frame = records(["192.0.2.1", "8.8.8.8", None], sender_domain=["x.com", "a.contoso.com", None])
    plain = attribute(conns, frame)
    cat = attribute(conns, frame.with_columns(pl.col("client_ip", "sender_domain").cast(pl.Categorical)))
    assert cat.select(*ATTRIBUTION_SCHEMA).equals(plain.select(*ATTRIBUTION_SCHEMA))
    assert plain["inbound_connector"].to_list() == ["A", "P", None]


def test_bad_connector_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="^invalid SenderIPAddresses entry '192.0.2.0/40' of inbound connector 'Bad'"):
        Attributor.build(Connectors(inbound=(inbound("Bad", "192.0.2.0/40"),)), ())


# --------------------------------------------------------------------------------------------
# Property test against a brute-force ipaddress oracle
# --------------------------------------------------------------------------------------------

# A small address space so prefixes of different connectors collide and nest often.
_prefix = st.builds(lambda c, d, length: f"10.0.{c}.{d}/{length}",
                    st.integers(0, 3), st.integers(0, 255), st.integers(22, 32))
_connector = st.tuples(st.booleans(), st.sampled_from(["Partner", "OnPremises"]), st.booleans(),
                       st.lists(_prefix, max_size=4))
_address = st.one_of(
    st.builds(lambda c, d: f"10.0.{c}.{d}", st.integers(0, 4), st.integers(0, 255)),
    st.builds(lambda c, d: f"::ffff:10.0.{c}.{d}", st.integers(0, 3), st.integers(0, 255)),
    st.sampled_from(["2001:db8::1", "garbage", "", "10.0.0.256"]),
    st.none(),
)


def _oracle(connectors: list[InboundConnector], ip: str | None, enabled: bool) -> str | None:
    """The §1 IP rule, the slow and obvious way."""
    try:
        addr = ipaddress.ip_address(ip) if ip else None
    except ValueError:
        return None
    if addr is None:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    best: tuple[int, bool, int] | None = None  # (prefix length, not restricting, position): min wins
    for position, c in enumerate(connectors):
        if c.enabled != enabled:
            continue
        restricting = c.connector_type == "Partner" and c.restrict_domains_to_ip_addresses
        for entry in c.sender_ip_addresses:
            net = ipaddress.ip_network(entry, strict=False)
            if addr.version == net.version and addr in net:
                key = (-net.prefixlen, not restricting, position)
                best = key if best is None or key < best else best
    return None if best is None else connectors[best[2]].name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(_connector, min_size=1, max_size=6), ips=st.lists(_address, min_size=1, max_size=40))
def test_inbound_connector_matches_bruteforce(specs: list[tuple[bool, str, bool, list[str]]],
                                             ips: list[str | None]) -> None:
    connectors = [inbound(f"c{i}", *prefixes, enabled=enabled, connector_type=kind,
                          restrict_domains_to_ip_addresses=restrict)
                  for i, (enabled, kind, restrict, prefixes) in enumerate(specs)]
    out = attribute(Connectors(inbound=tuple(connectors)), records(ips))
    assert out["inbound_connector"].to_list() == [_oracle(connectors, ip, True) for ip in ips]
    assert out["disabled_inbound_connector"].to_list() == [_oracle(connectors, ip, False) for ip in ips]


# --------------------------------------------------------------------------------------------
# Throughput
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(matching.BACKEND != "compiled", reason="the speed floor is the compiled matcher's")
def test_attribution_rate(capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(7)
    def octets(n: int) -> list[str]:
        return [f"{a}.{b}.{c}" for a, b, c in zip(rng.integers(1, 223, n), rng.integers(0, 256, n),
                                                  rng.integers(0, 256, n))]
    networks = octets(1000)
    conns = Connectors(
        inbound=tuple(inbound(f"Conn {i}", *(f"{net}.0/24" for net in networks[i * 20:(i + 1) * 20]))
                      for i in range(50)) + (inbound("By domain", sender_domains=("*.d7.example",)),),
        outbound=(outbound("Wild", "*.d1.example"), outbound("Rule", is_transport_rule_scoped=True),
                  outbound("AAD", all_accepted_domains=True)),
    )
    domains = (accepted("d3.example", subdomains=True),)
    # half the distinct client IPs inside connector ranges, half anywhere
    ips = np.array([f"{net}.{rng.integers(0, 256)}" for net in rng.choice(networks, 2500)]
                   + [f"{net}.{rng.integers(0, 256)}" for net in octets(2500)])
    names = np.array([f"x{i}.d{i % 10}.example" for i in range(2000)])
    n = 1_000_000
    frame = pl.DataFrame({
        "client_ip": ips[rng.integers(0, len(ips), n)],
        "sender_domain": names[rng.integers(0, len(names), n)],
        "recipient_domain": names[rng.integers(0, len(names), n)],
        "connector_name": np.where(rng.random(n) < 0.01, "Rule", "Inbound"),
    })
    attributor = Attributor.build(conns, domains)
    attributor.attribute(frame.head(1000))  # warm up the thread pool
    start = time.perf_counter()
    out = attributor.attribute(frame)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nattribution: {n:,} records ({len(ips):,} distinct IPs, {len(names):,} distinct domains) "
              f"in {elapsed:.3f} s = {n / elapsed / 1e6:.2f} M records/s")
    assert elapsed < 10
    assert out.height == n
    assert out["inbound_match"].value_counts().height == 3  # ip, domain and null all occur
    assert set(out["outbound_connector"].drop_nulls().unique()) == {"Wild", "Rule", "AAD"}


# --------------------------------------------------------------------------------------------
# connector_config findings
# --------------------------------------------------------------------------------------------


def findings(*inb: InboundConnector, receive_: tuple[ReceiveConnector, ...] = (), **kw: Any) -> list[dict[str, Any]]:
    frame = config_findings(Connectors(inbound=inb, receive=receive_), (), **kw)
    assert frame.schema == pl.Schema(FINDINGS_SCHEMA)
    rows = frame.to_dicts()
    for row in rows:  # configuration findings carry no record data
        assert (row["kind"], row["first_seen"], row["last_seen"], row["count"], row["sample_message_ids"]) == (
            "connector_config", None, None, 0, [])
    return [{k: row[k] for k in ("severity", "subject", "detail", "recommendation")} for row in rows]


def test_onpremises_connector_that_can_never_match() -> None:
    never = inbound("Hybrid", connector_type="OnPremises")
    assert findings(never) == [{
        "severity": "high", "subject": "Hybrid",
        "detail": "Enabled OnPremises inbound connector 'Hybrid' has an empty SenderIPAddresses and no "
                  "TlsSenderCertificateName, so no message can ever match it.",
        "recommendation": "Add the on-premises servers' public IP addresses to SenderIPAddresses or set "
                          "TlsSenderCertificateName to the name on their certificate; otherwise remove the connector",
    }]
    # near misses: a certificate, disabled, Partner, IPs not exported (unknown, not empty)
    assert findings(dataclasses.replace(never, tls_sender_certificate_name="mail.contoso.com")) == []
    assert findings(dataclasses.replace(never, enabled=False)) == []
    assert findings(dataclasses.replace(never, connector_type="Partner")) == []
    assert findings(dataclasses.replace(never, unexported=("SenderIPAddresses",))) == []


def test_anonymous_relay_from_anywhere() -> None:
    relay = receive("Anonymous Relay", auth_mechanism=("Tls", "ExternalAuthoritative"))
    assert findings(receive_=(relay,)) == [{
        "severity": "high", "subject": "EX01\\Anonymous Relay",
        "detail": "Receive connector 'EX01\\Anonymous Relay' lets AnonymousUsers connect from every IPv4 address "
                  "(RemoteIPRanges 0.0.0.0-255.255.255.255) and grants relay (AuthMechanism includes "
                  "ExternalAuthoritative; its name says relay): anyone on the internet can relay mail through it.",
        "recommendation": "Limit RemoteIPRanges to the devices that must relay, and grant anonymous relay "
                          "(ms-Exch-SMTP-Accept-Any-Recipient) only on that restricted connector, without "
                          "ExternalAuthoritative",
    }]
    # every address as CIDR halves, relay by name only, IPv6 only, no server
    halves = receive("SMTP relay", server=None, remote_ip_ranges=("::/1", "8000::/1"))
    (row,) = findings(receive_=(halves,))
    assert row["subject"] == "SMTP relay"
    assert row["detail"] == (
        "Receive connector 'SMTP relay' lets AnonymousUsers connect from every IPv6 address (RemoteIPRanges "
        "::/1, 8000::/1) and grants relay (its name says relay): anyone on the internet can relay mail through it.")
    # near misses: one address short of everything; not anonymous; no relay grant; disabled
    assert findings(receive_=(dataclasses.replace(relay, remote_ip_ranges=("0.0.0.0-255.255.255.254",)),)) == []
    assert findings(receive_=(dataclasses.replace(relay, permission_groups=("ExchangeUsers",)),)) == []
    assert findings(receive_=(receive("Default Frontend EX01"),)) == []
    assert findings(receive_=(dataclasses.replace(relay, enabled=False),)) == []


def test_real_exchange_receive_connectors_are_not_an_anonymous_relay(shared_data: Path) -> None:
    # "Default Frontend" lets AnonymousUsers in from every address, as every Exchange front end
    # does to receive internet mail, but grants no relay: no ExternalAuthoritative, and neither
    # its name nor its role (FrontendTransport) says relay. The spec needs all three, so the real
    # export yields no finding at all.
    conns = load_connectors(shared_data / RECEIVE)
    frontend = next(r for r in conns.receive if r.name == "Default Frontend WIN-CTD3L0RGEN4")
    assert "AnonymousUsers" in frontend.permission_groups
    assert "0.0.0.0-255.255.255.255" in frontend.remote_ip_ranges
    result = config_findings(conns, ())
    assert result.schema == pl.Schema(FINDINGS_SCHEMA)
    assert result.height == 0
    # the same connector with ExternalAuthoritative added is one, on both families
    opened = dataclasses.replace(frontend, auth_mechanism=(*frontend.auth_mechanism, "ExternalAuthoritative"))
    (row,) = findings(receive_=(opened,))
    assert row["subject"] == "WIN-CTD3L0RGEN4\\Default Frontend WIN-CTD3L0RGEN4"
    assert row["detail"] == (
        "Receive connector 'WIN-CTD3L0RGEN4\\Default Frontend WIN-CTD3L0RGEN4' lets AnonymousUsers connect from "
        "every IPv4 and IPv6 address (RemoteIPRanges ::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff, "
        "0.0.0.0-255.255.255.255) and grants relay (AuthMechanism includes ExternalAuthoritative): anyone on the "
        "internet can relay mail through it.")


def test_real_scubagear_partner_connector_has_no_finding(shared_data: Path) -> None:
    # allow-by-domain Partner connector with no restricting connector beside it: nothing to say
    assert config_findings(load_connectors(shared_data / SCUBA), ()).height == 0


def test_partner_connector_mixing_ips_and_certificate() -> None:
    mixed = inbound("Fabrikam", "192.0.2.0/24", "192.0.2.77", tls_sender_certificate_name="mail.fabrikam.com")
    assert findings(mixed) == [{
        "severity": "medium", "subject": "Fabrikam",
        "detail": "Partner inbound connector 'Fabrikam' identifies senders both by 2 SenderIPAddresses entries "
                  "(192.0.2.0/24, 192.0.2.77) and by TlsSenderCertificateName 'mail.fabrikam.com'.",
        "recommendation": "Split it into two connectors, one identifying the partner by IP addresses and one by "
                          "certificate",
    }]
    # near misses: OnPremises may use both; a Partner with only one of them
    assert findings(dataclasses.replace(mixed, connector_type="OnPremises")) == []
    assert findings(dataclasses.replace(mixed, tls_sender_certificate_name=None)) == []
    assert findings(dataclasses.replace(mixed, sender_ip_addresses=())) == []


def test_same_prefix_in_two_enabled_connectors() -> None:
    a = inbound("Relay A", "192.0.2.0/24", "198.51.100.10", connector_type="OnPremises")
    b = inbound("Partner B", "192.0.2.0-192.0.2.255", "198.51.100.10/32", restrict_domains_to_ip_addresses=True)
    assert findings(a, b) == [{
        "severity": "medium", "subject": "Relay A, Partner B",
        "detail": "Enabled inbound connectors 'Relay A' and 'Partner B' both list 2 identical prefixes "
                  "(192.0.2.0/24, 198.51.100.10/32); for these addresses 'Partner B' is used (it restricts "
                  "its domains to its IP addresses).",
        "recommendation": "List each prefix in one connector only: remove 192.0.2.0/24, 198.51.100.10/32 from the "
                          "connector that should not handle that mail",
    }]
    plain = dataclasses.replace(b, restrict_domains_to_ip_addresses=False, sender_ip_addresses=("192.0.2.0/24",))
    (row,) = findings(a, plain)
    assert row["detail"] == ("Enabled inbound connectors 'Relay A' and 'Partner B' both list 1 identical prefix "
                             "(192.0.2.0/24); for these addresses 'Relay A' is used (it comes first in the "
                             "configuration).")
    # near misses: nested but different prefixes; one of the two disabled
    assert findings(a, dataclasses.replace(b, sender_ip_addresses=("192.0.2.0/25", "198.51.100.11"))) == []
    assert findings(a, dataclasses.replace(b, enabled=False)) == []


def test_allow_by_domain_connector_shadowed_by_restricting_one() -> None:
    allow = inbound("Contoso by domain", sender_domains=("contoso.com", "mail.fabrikam.com", "tailspin.com"))
    restrict = inbound("Contoso servers", "203.0.113.0/24", sender_domains=("contoso.com", "*.fabrikam.com"),
                       restrict_domains_to_ip_addresses=True)
    assert findings(allow, restrict) == [{
        "severity": "medium", "subject": "Contoso by domain, Contoso servers",
        "detail": "Partner inbound connector 'Contoso by domain' accepts contoso.com, mail.fabrikam.com by sender "
                  "domain alone, but 'Contoso servers' lists contoso.com, *.fabrikam.com and restricts them to its "
                  "IP addresses: mail from these domains must match 'Contoso servers', so 'Contoso by domain' is "
                  "never used for them.",
        "recommendation": "Remove contoso.com, mail.fabrikam.com from one of the two connectors, or add the "
                          "partner's other servers to 'Contoso servers'",
    }]
    by_cert = inbound("Cert", sender_domains=("tailspin.com",), tls_sender_certificate_name="mx.tailspin.com",
                      restrict_domains_to_certificate=True)
    (row,) = findings(allow, by_cert)
    assert row["detail"] == ("Partner inbound connector 'Contoso by domain' accepts tailspin.com by sender domain "
                             "alone, but 'Cert' lists tailspin.com and restricts it to its certificate: mail from "
                             "this domain must match 'Cert', so 'Contoso by domain' is never used for it.")
    # near misses: the other connector does not restrict; a different domain; the allow one restricts itself
    assert findings(allow, dataclasses.replace(restrict, restrict_domains_to_ip_addresses=False)) == []
    assert findings(allow, dataclasses.replace(restrict, sender_domains=("northwind.com", "contoso.com.au"))) == []
    assert findings(dataclasses.replace(allow, restrict_domains_to_ip_addresses=True), restrict) == []


def test_connector_range_inside_cloud_shared_ranges() -> None:
    cloud = {"azure": load_table(DATA / "cloud.csv")}
    c = inbound("Cloud app", "20.60.10.0/24", "20.50.3.4", "192.0.2.0/24")
    assert findings(c, cloud_tables=cloud) == [{
        "severity": "medium", "subject": "Cloud app",
        "detail": "Inbound connector 'Cloud app' lists 20.60.10.0/24, 20.50.3.4 inside the shared ranges of azure "
                  "(northeurope-mail, westeurope): any customer of that provider can send from these addresses.",
        "recommendation": "Identify this sender by TLS certificate (TlsSenderCertificateName) rather than by "
                          "shared cloud IP addresses, or list only addresses dedicated to it",
    }]
    # near misses: no tables given; an entry straddling the edge of a cloud range; outside
    assert findings(c) == []
    assert findings(inbound("Edge", "20.50.255.0-20.51.0.255"), cloud_tables=cloud) == []
    assert findings(inbound("Own", "192.0.2.0/24"), cloud_tables=cloud) == []


def test_sender_ip_entries_the_service_rejects() -> None:
    c = inbound("Wide", "192.0.2.0/24", "10.0.0.0/16", "2001:db8::/64", "198.51.100.0-198.51.101.255",
                "203.0.113.0/255.255.254.0", "192.0.2.1")
    assert findings(c) == [{
        "severity": "low", "subject": "Wide",
        "detail": "Inbound connector 'Wide' has 4 SenderIPAddresses entries outside IPv4 /24-/32, which Exchange "
                  "Online rejects: 10.0.0.0/16 (/16), 2001:db8::/64 (IPv6), 198.51.100.0-198.51.101.255 (spans a "
                  "/23), 203.0.113.0/255.255.254.0 (/23).",
        "recommendation": "Use IPv4 addresses or CIDR ranges from /24 to /32 (split shorter ranges into /24s; "
                          "identify IPv6 senders by certificate)",
    }]
    # near misses: /24 to /32, single addresses, a range inside one /24
    assert findings(inbound("Fine", "192.0.2.0/24", "192.0.2.7/32", "198.51.100.3", "203.0.113.10-203.0.113.20")) == []


def test_findings_sorted_by_severity_then_subject() -> None:
    frame = config_findings(Connectors(
        inbound=(inbound("Z low", "10.0.0.0/8"), inbound("A never", connector_type="OnPremises"),
                 inbound("M mixed", "192.0.2.1", tls_sender_certificate_name="m.example"),
                 inbound("B mixed", "192.0.2.2", tls_sender_certificate_name="b.example")),
        receive=(receive("Relay"),),
    ), ())
    assert frame.select("severity", "subject").rows() == [
        ("high", "A never"), ("high", "EX01\\Relay"), ("medium", "B mixed"), ("medium", "M mixed"), ("low", "Z low")]
