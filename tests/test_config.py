"""analyzer.config: connector and accepted-domain exports (real public samples and hand-written
fixtures in tests/data/config/), our TOML format, detection by content, and exact error messages."""

from __future__ import annotations

import gzip
import json
import re
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

import analyzer.config as config
from analyzer.config import (
    AcceptedDomain,
    Connectors,
    InboundConnector,
    detect_config,
    load_accepted_domains,
    load_config,
    load_connectors,
)
from analyzer.errors import ConfigError
from analyzer.matching import NO_MATCH, PrefixTable

DATA = Path(__file__).resolve().parent / "data" / "config"

SCUBA = "connectors/scubagear_ProviderSettingsExport_exo_connectors_extract.json"
RECEIVE = "connectors/css-exchange_GetReceiveConnector.clixml.xml"
SEND = "connectors/css-exchange_GetSendConnector.clixml.xml"
SEND_RELAY = "connectors/css-exchange_GetSendConnectorConfiguredToRelayToM365.clixml.xml"
SEPP_GEO = "connectors/seppmail365cloud_GeoRegion.json"
SEPP_INBOUND = "connectors/seppmail365cloud_InBound.json"


def raises(message: str) -> AbstractContextManager[pytest.ExceptionInfo[ConfigError]]:
    """pytest.raises for a ConfigError whose message must equal `message` exactly."""
    return pytest.raises(ConfigError, match="^" + re.escape(message) + "$")


# --------------------------------------------------------------------------------------------
# Real public samples (../shared/data/connectors)
# --------------------------------------------------------------------------------------------


def test_scubagear_inbound_partner_connector(shared_data: Path) -> None:
    path = shared_data / SCUBA
    conns = load_connectors(path)
    assert (len(conns.inbound), len(conns.outbound), len(conns.receive), len(conns.send)) == (1, 0, 0, 0)
    assert conns.files == (str(path),)
    assert conns.inbound[0] == InboundConnector(
        name="inbound connector test 1", enabled=True, connector_type="Partner",
        connector_source="AdminUI", sender_ip_addresses=(), sender_domains=("test.domain.com",),
        tls_sender_certificate_name=None, require_tls=True, restrict_domains_to_ip_addresses=False,
        restrict_domains_to_certificate=False, trusted_organizations=(), associated_accepted_domains=(),
        cloud_services_mail_enabled=False, treat_messages_as_internal=False, ef_skip_ips=(),
        ef_skip_last_ip=False, ef_users=(), source=f"{path}: inbound_connectors item 1",
    )


def test_scubagear_empty_ip_list_matches_nothing(shared_data: Path) -> None:
    # The real partner connector has SenderIPAddresses: []; a table built from it must not match.
    inbound = load_connectors(shared_data / SCUBA).inbound[0]
    table = PrefixTable.from_pairs((entry, 0) for entry in inbound.sender_ip_addresses)
    assert len(table) == 0
    assert table.lookup_one("203.0.113.5") == NO_MATCH


def test_scubagear_accepted_domains(shared_data: Path) -> None:
    path = shared_data / SCUBA
    domains = load_accepted_domains(path)
    assert [d.domain_name for d in domains] == [
        "tqhjy.onmicrosoft.com", "tqhjy.mail.onmicrosoft.com", "example.com", "subdomain.example.com",
        "sub.subdomain.example.com", "test365.tqhjy.dhs.gov", "testtesttest.test365.tqhjy.dhs.gov",
    ]
    assert {d.domain_type for d in domains} == {"Authoritative"}
    assert [d.default for d in domains] == [True] + [False] * 6
    assert not any(d.match_subdomains for d in domains)
    assert domains[0].source == f"{path}: accepted_domains item 1"


def test_receive_connectors_clixml(shared_data: Path) -> None:
    path = shared_data / RECEIVE
    conns = load_connectors(path)
    assert (len(conns.inbound), len(conns.outbound), len(conns.receive), len(conns.send)) == (0, 0, 5, 0)
    assert [r.name for r in conns.receive] == [
        "Default WIN-CTD3L0RGEN4", "Client Proxy WIN-CTD3L0RGEN4", "Default Frontend WIN-CTD3L0RGEN4",
        "Outbound Proxy Frontend WIN-CTD3L0RGEN4", "Client Frontend WIN-CTD3L0RGEN4",
    ]
    every_address = ("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "0.0.0.0-255.255.255.255")
    assert all(r.remote_ip_ranges == every_address for r in conns.receive)
    assert all(r.server == "WIN-CTD3L0RGEN4" and r.enabled for r in conns.receive)
    assert all(r.fqdn == "WIN-CTD3L0RGEN4.exlab.dom" for r in conns.receive)
    assert [r.permission_groups for r in conns.receive] == [
        ("ExchangeUsers", "ExchangeServers", "ExchangeLegacyServers"),
        ("ExchangeUsers", "ExchangeServers"),
        ("AnonymousUsers", "ExchangeServers", "ExchangeLegacyServers"),
        ("ExchangeServers",),
        ("ExchangeUsers",),
    ]
    assert [r.bindings for r in conns.receive] == [
        ("0.0.0.0:2525", "[::]:2525"), ("[::]:465", "0.0.0.0:465"), ("[::]:25", "0.0.0.0:25"),
        ("[::]:717", "0.0.0.0:717"), ("[::]:587", "0.0.0.0:587"),
    ]
    assert [r.transport_role for r in conns.receive] == ["HubTransport", "HubTransport"] + ["FrontendTransport"] * 3
    assert conns.receive[0].auth_mechanism == ("Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer")
    assert conns.receive[4].auth_mechanism == ("Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS")
    assert conns.receive[2].source == f"{path}: object 3"


def test_receive_ranges_feed_a_prefix_table(shared_data: Path) -> None:
    # The anonymous Default Frontend connector accepts from everywhere: the open-relay input.
    frontend = load_connectors(shared_data / RECEIVE).receive[2]
    table = PrefixTable.from_pairs((entry, 7) for entry in frontend.remote_ip_ranges)
    assert [table.lookup_one(ip) for ip in ("8.8.8.8", "2001:db8::1")] == [7, 7]


def test_send_connectors_clixml(shared_data: Path) -> None:
    conns = load_connectors([shared_data / SEND, shared_data / SEND_RELAY])
    assert (len(conns.receive), len(conns.send)) == (0, 2)
    to_o365, relay = conns.send
    assert to_o365.name == "Mail to O365"
    assert to_o365.address_spaces == ("*",)  # "SMTP:*;1"
    assert to_o365.smart_hosts == ("microsoft-com.mail.protection.outlook.com",)
    assert (to_o365.dns_routing_enabled, to_o365.require_tls, to_o365.tls_domain, to_o365.fqdn) == (False, False, None, None)
    assert relay.name == "My company to Office 365"
    assert relay.address_spaces == ("*",)  # "smtp:*;1"
    assert relay.smart_hosts == ("thistenantdoesntexists-com.mail.protection.outlook.com",)
    assert (relay.dns_routing_enabled, relay.require_tls, relay.fqdn) == (False, True, "mail.contoso.com")
    assert conns.files == (str(shared_data / SEND), str(shared_data / SEND_RELAY))


@pytest.mark.parametrize("name", [SEPP_GEO, SEPP_INBOUND])
def test_seppmail_lists_are_not_connector_exports(shared_data: Path, name: str) -> None:
    # GeoRegion is a vendor's relay-IP list; InBound holds parameter templates for
    # New-InboundConnector ("TlsSenderCertificateName": "---Parameter input---") nested under
    # routing.inline/parallel. Neither is an export, so neither is detected nor loaded.
    assert detect_config(shared_data / name) is None


def test_seppmail_inbound_template_is_refused(shared_data: Path) -> None:
    path = shared_data / SEPP_INBOUND
    with raises(
        "no connectors in configuration file: expected connector objects (Get-InboundConnector/"
        "Get-OutboundConnector as JSON or CSV, Get-ReceiveConnector/Get-SendConnector as CLIXML) or a "
        f"TOML configuration, got a JSON object with properties 'routing', 'Option' ({path}); hint: "
        "export connectors with Get-InboundConnector | ConvertTo-Json; message traces and vendor range "
        "lists are not connector exports"
    ):
        load_connectors(path)


def test_detect_real_connector_files(shared_data: Path) -> None:
    assert detect_config(shared_data / SCUBA) == "config"  # connectors and accepted domains
    for name in (RECEIVE, SEND, SEND_RELAY):
        assert detect_config(shared_data / name) == "connectors"


def test_detect_none_for_every_other_shared_file(shared_data: Path) -> None:
    # Message traces, logs, NDRs, range lists (large and gzip'd): never a config, never an exception.
    others = [p for p in sorted(shared_data.rglob("*")) if p.is_file() and p.parent.name != "connectors"]
    assert len(others) > 20
    assert {p.name: detect_config(p) for p in others} == {p.name: None for p in others}


def test_load_config_real_files(shared_data: Path) -> None:
    conns, domains = load_config([shared_data / SCUBA, shared_data / RECEIVE, shared_data / SEND])
    assert (len(conns.inbound), len(conns.receive), len(conns.send), len(domains)) == (1, 5, 1, 7)
    assert conns.files == tuple(str(shared_data / n) for n in (SCUBA, RECEIVE, SEND))


# --------------------------------------------------------------------------------------------
# Hand-written fixtures
# --------------------------------------------------------------------------------------------


def test_json_joined_strings_integer_enums_and_nulls() -> None:
    path = DATA / "exo_connectors_mixed.json"
    conns = load_connectors(path)
    assert (len(conns.inbound), len(conns.outbound)) == (1, 1)  # the null item is skipped
    printers = conns.inbound[0]
    assert printers.name == "Branch printers"
    assert printers.enabled is True  # "True"
    assert printers.connector_type == "OnPremises"  # 1
    assert printers.connector_source == "Default"  # 0
    assert printers.sender_ip_addresses == ("203.0.113.0/24", "198.51.100.7", "198.51.100.8")
    assert printers.sender_domains == ("contoso.example", "*")  # "smtp:Contoso.example;1;smtp:*;1"
    assert printers.tls_sender_certificate_name is None  # ""
    assert printers.associated_accepted_domains == ("contoso.example",)  # "" entry dropped
    assert (printers.restrict_domains_to_ip_addresses, printers.restrict_domains_to_certificate) == (False, False)
    assert printers.treat_messages_as_internal is True  # "$true"
    assert printers.ef_skip_ips == ("192.0.2.10-192.0.2.20",)  # {"value": [...], "Count": 2}
    assert printers.ef_skip_last_ip is True  # 1
    assert printers.ef_users == ("alice@contoso.example", "bob@contoso.example")
    assert printers.source == f"{path}: item 1"
    out = conns.outbound[0]
    assert out.name == "To Fabrikam"
    assert out.connector_type == "Partner"  # 2
    assert out.recipient_domains == ("fabrikam.example", "*.fabrikam.example")
    assert out.smart_hosts == ("192.0.2.25", "mail.fabrikam.example")
    assert (out.use_mx_record, out.tls_settings, out.tls_domain) == (False, "DomainValidation", "*.fabrikam.example")
    assert out.source == f"{path}: item 3"


def test_json_single_object() -> None:
    path = DATA / "exo_inbound_single.json"
    conns = load_connectors(path)
    assert len(conns.inbound) == 1 and not conns.outbound
    hybrid = conns.inbound[0]
    assert (hybrid.name, hybrid.connector_type, hybrid.connector_source) == (
        "Inbound from on-premises", "OnPremises", "HybridWizard")
    assert hybrid.sender_ip_addresses == ()
    assert hybrid.sender_domains == ("*",)
    assert hybrid.tls_sender_certificate_name == "*.contoso.example"
    assert hybrid.cloud_services_mail_enabled is True
    assert hybrid.source == str(path)


def test_json_utf16le_with_bom_from_out_file() -> None:
    path = DATA / "exo_inbound_utf16le_bom.json"
    assert path.read_bytes()[:2] == b"\xff\xfe"
    (relay,) = load_connectors(path).inbound
    assert relay.name == "Relais Zürich"
    assert relay.connector_type == "Partner"  # 2
    assert relay.sender_ip_addresses == ("192.0.2.40/29",)
    assert relay.sender_domains == ("zürich.example",)
    assert relay.ef_skip_ips == ()
    assert (relay.require_tls, relay.restrict_domains_to_ip_addresses) == (True, True)


def test_json_utf16le_without_bom(tmp_path: Path) -> None:
    text = (DATA / "exo_inbound_single.json").read_text(encoding="utf-8")
    path = tmp_path / "eac.json"
    path.write_bytes(text.encode("utf-16-le"))
    assert load_connectors(path).inbound[0].name == "Inbound from on-premises"


def test_export_csv_with_type_line_and_placeholders() -> None:
    path = DATA / "exo_inbound_export.csv"
    scanner, partner = load_connectors(path).inbound
    assert scanner.name == "Scanner relay"
    assert scanner.sender_ip_addresses == ("198.51.100.10", "198.51.100.11")  # space-joined
    assert scanner.sender_domains == ("*",)
    assert scanner.tls_sender_certificate_name is None
    # "System.Collections.ArrayList": not exported, kept empty and remembered
    assert (scanner.ef_skip_ips, scanner.unexported) == ((), ("EFSkipIPs",))
    # the first record spans lines 3-4 (a quoted newline in Comment)
    assert (scanner.source, partner.source) == (f"{path}, line 3", f"{path}, line 5")
    assert partner.name == "Partner, Inc."
    assert (partner.enabled, partner.connector_type, partner.connector_source) == (False, "Partner", "AdminUI")
    assert (partner.sender_ip_addresses, partner.unexported) == ((), ("SenderIPAddresses",))
    assert partner.sender_domains == ("partner.example",)
    assert partner.tls_sender_certificate_name == "mail.partner.example"
    assert (partner.require_tls, partner.restrict_domains_to_certificate, partner.ef_skip_last_ip) == (True, True, True)


def test_exchange_server_connectors_as_json() -> None:
    path = DATA / "exchange_server_connectors.json"
    conns = load_connectors(path)
    (relay,) = conns.receive
    assert relay.server == "EX01"  # from Identity "EX01\Anonymous relay"
    assert relay.bindings == ("0.0.0.0:25", "[::]:25")
    # an IPRange object, Exchange's netmask form and an IPv6 CIDR
    assert relay.remote_ip_ranges == ("192.0.2.10-192.0.2.20", "10.1.0.0/255.255.0.0", "2001:db8::/32")
    assert relay.permission_groups == ("AnonymousUsers", "ExchangeServers", "ExchangeLegacyServers")  # 13
    assert relay.auth_mechanism == ("Tls",)  # 1
    assert relay.transport_role == "FrontendTransport"  # 16384
    (internet,) = conns.send
    assert internet.address_spaces == ("*", "fabrikam.example")
    assert (internet.smart_hosts, internet.dns_routing_enabled) == ((), True)


def test_accepted_domains_json_odata_integer_types() -> None:
    path = DATA / "accepted_domains.json"
    assert load_accepted_domains(path) == (
        AcceptedDomain("contoso.example", "Authoritative", False, True, f"{path}: value item 1"),
        AcceptedDomain("legacy.contoso.example", "InternalRelay", True, False, f"{path}: value item 2"),
        AcceptedDomain("partner.example", "ExternalRelay", False, False, f"{path}: value item 3"),
    )


def test_accepted_domains_csv_semicolon() -> None:
    path = DATA / "accepted_domains.csv"
    assert load_accepted_domains(path) == (
        AcceptedDomain("contoso.example", "Authoritative", False, True, f"{path}, line 2"),
        AcceptedDomain("sales.contoso.example", "InternalRelay", True, False, f"{path}, line 3"),
    )


def test_accepted_domains_csv_name_column_only(tmp_path: Path) -> None:
    path = tmp_path / "domains.csv"
    path.write_text('"Name","DomainType"\n"Fabrikam.example","ExternalRelay"\n', encoding="utf-8")
    assert load_accepted_domains(path) == (
        AcceptedDomain("fabrikam.example", "ExternalRelay", False, False, f"{path}, line 2"),)


def test_toml_config() -> None:
    path = DATA / "hand_written.toml"
    conns, domains = load_config(path)
    printers, fabrikam = conns.inbound
    assert (printers.name, printers.connector_type) == ("Printers", "OnPremises")
    assert printers.sender_ip_addresses == ("203.0.113.0/24", "198.51.100.7")
    assert printers.sender_domains == ("*",)
    assert printers.source == f"{path}: [[inbound]] item 1"
    assert fabrikam.connector_type == "Partner"  # the default
    assert fabrikam.sender_domains == ("fabrikam.example",)
    assert (fabrikam.tls_sender_certificate_name, fabrikam.restrict_domains_to_certificate) == (
        "mail.fabrikam.example", True)
    (out,) = conns.outbound
    assert out.recipient_domains == ("fabrikam.example", "*.fabrikam.example")
    assert (out.smart_hosts, out.use_mx_record) == (("mail.fabrikam.example",), False)
    assert (out.tls_settings, out.tls_domain) == ("DomainValidation", "mail.fabrikam.example")
    (relay,) = conns.receive
    assert (relay.server, relay.remote_ip_ranges) == ("EX01", ("192.0.2.10-192.0.2.20", "10.0.0.0/8"))
    assert (relay.permission_groups, relay.bindings) == (("AnonymousUsers",), ("0.0.0.0:25",))
    (send,) = conns.send
    assert (send.address_spaces, send.smart_hosts) == (("*",), ("contoso-example.mail.protection.outlook.com",))
    assert (send.dns_routing_enabled, send.require_tls) == (False, True)
    assert domains == (
        AcceptedDomain("contoso.example", "Authoritative", False, True, f"{path}: [[accepted_domains]] item 1"),
        AcceptedDomain("legacy.contoso.example", "InternalRelay", True, False,
                       f"{path}: [[accepted_domains]] item 2"),
    )
    # a TOML file may hold any subset: both loaders accept it
    assert load_connectors(path).inbound == conns.inbound
    assert load_accepted_domains(path) == domains


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [
    ("exo_connectors_mixed.json", "connectors"),
    ("exo_inbound_single.json", "connectors"),
    ("exo_inbound_utf16le_bom.json", "connectors"),
    ("exo_inbound_export.csv", "connectors"),
    ("exchange_server_connectors.json", "connectors"),
    ("accepted_domains.json", "accepted_domains"),
    ("accepted_domains.csv", "accepted_domains"),
    ("hand_written.toml", "config"),
    ("message_trace.csv", None),
    ("message_trace.json", None),
    # broken configuration keeps its kind, so loading it reports the damage instead of skipping it
    ("truncated.json", "connectors"),
    ("bad_unknown_key.toml", "config"),
])
def test_detect_fixtures(name: str, kind: str | None) -> None:
    assert detect_config(DATA / name) == kind


def test_detect_by_content_not_name(tmp_path: Path) -> None:
    csv_named_json = tmp_path / "connectors.json"
    csv_named_json.write_bytes((DATA / "message_trace.csv").read_bytes())
    assert detect_config(csv_named_json) is None
    toml_named_csv = tmp_path / "trace.csv"
    toml_named_csv.write_bytes((DATA / "hand_written.toml").read_bytes())
    assert detect_config(toml_named_csv) == "config"
    gz = tmp_path / "inbound.bin"
    gz.write_bytes(gzip.compress((DATA / "exo_inbound_single.json").read_bytes()))
    assert detect_config(gz) == "connectors"


@pytest.mark.parametrize("content", [
    b"", b"\xff\xfe", b"[]", b"null", b'{"value": []}', b"\x00\x01\x02\x03" * 100, b"key = 1\n",
    b"<html><body>x</body></html>", b"<Objs", b'{"a": [1, 2', b"# comment only\n",
])
def test_detect_never_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x"
    path.write_bytes(content)
    assert detect_config(path) is None


def test_detect_large_files_need_config_names_in_their_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_DETECT_FULL_PARSE_LIMIT", 10)
    assert detect_config(DATA / "message_trace.json") is None  # not parsed at all
    assert detect_config(DATA / "exo_connectors_mixed.json") == "connectors"


# --------------------------------------------------------------------------------------------
# Merging, empty exports
# --------------------------------------------------------------------------------------------


def test_later_file_wins_and_keeps_position(tmp_path: Path) -> None:
    later = tmp_path / "later.json"
    later.write_text(json.dumps({"Name": "PRINTERS", "ConnectorType": "Partner",
                                 "SenderIPAddresses": ["192.0.2.1"]}), encoding="utf-8")
    conns = load_connectors([DATA / "hand_written.toml", later])
    assert [c.name for c in conns.inbound] == ["PRINTERS", "Partner Fabrikam"]
    assert conns.inbound[0].sender_ip_addresses == ("192.0.2.1",)
    assert conns.inbound[0].source == str(later)
    assert conns.files == (str(DATA / "hand_written.toml"), str(later))


def test_receive_connectors_are_keyed_by_server(tmp_path: Path) -> None:
    path = tmp_path / "receive.toml"
    path.write_text('[[receive]]\nname = "Relay"\nserver = "EX01"\n'
                    '[[receive]]\nname = "Relay"\nserver = "EX02"\n', encoding="utf-8")
    assert [(r.server, r.name) for r in load_connectors(path).receive] == [("EX01", "Relay"), ("EX02", "Relay")]


def test_duplicate_name_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text(json.dumps([{"Name": "A", "SenderDomains": ["a.example"]},
                                {"Name": "a", "SenderDomains": ["b.example"]}]), encoding="utf-8")
    with raises(f"duplicate inbound connector 'a': expected each name once per file, got a second "
                f"definition ({path}: item 2); hint: the first is at {path}: item 1; remove one"):
        load_connectors(path)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\r\x00\n\x00", b"[]", b"null", b'{"value": []}',
                                     b'{"inbound_connectors": [], "outbound_connectors": [null]}'])
def test_empty_exports_load_as_nothing(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "none.json"
    path.write_bytes(content)
    assert load_connectors(path) == Connectors(files=(str(path),))
    assert load_accepted_domains(path) == ()
    assert load_config(path) == (Connectors(files=(str(path),)), ())


def test_accepted_domain_export_is_not_connectors() -> None:
    path = DATA / "accepted_domains.json"
    with raises(
        "no connectors in configuration file: expected connector objects (Get-InboundConnector/"
        "Get-OutboundConnector as JSON or CSV, Get-ReceiveConnector/Get-SendConnector as CLIXML) or a "
        f"TOML configuration, got an accepted-domains export ({path}); hint: load it as accepted "
        "domains (load_accepted_domains)"
    ):
        load_connectors(path)


def test_load_config_sorts_files_by_content() -> None:
    conns, domains = load_config([DATA / "exo_connectors_mixed.json", DATA / "accepted_domains.csv",
                                  DATA / "exo_inbound_export.csv"])
    assert [c.name for c in conns.inbound] == ["Branch printers", "Scanner relay", "Partner, Inc."]
    assert [d.domain_name for d in domains] == ["contoso.example", "sales.contoso.example"]
    assert len(conns.files) == 3


def test_load_config_refuses_a_message_trace() -> None:
    path = DATA / "message_trace.csv"
    with raises(
        "not a configuration file: expected connector objects (Get-InboundConnector/Get-OutboundConnector "
        "as JSON or CSV, Get-ReceiveConnector/Get-SendConnector as CLIXML) or a TOML configuration, or "
        "accepted domains, got a CSV file with columns 'Organization', 'MessageId', 'Received', "
        f"'SenderAddress', 'RecipientAddress', ... ({path}); hint: give message traces and logs as "
        "inputs, not as configuration"
    ):
        load_config([DATA / "hand_written.toml", path])


# --------------------------------------------------------------------------------------------
# Exact error messages
# --------------------------------------------------------------------------------------------


def test_truncated_json_names_the_line() -> None:
    path = DATA / "truncated.json"
    with raises(f"unreadable JSON configuration file: expected complete JSON, got Expecting value at "
                f"column 1 ({path}, line 8); hint: the file is truncated or was edited by hand; export "
                "it again with ConvertTo-Json -Depth 5"):
        load_connectors(path)


def test_toml_unknown_key() -> None:
    path = DATA / "bad_unknown_key.toml"
    with raises(f"unknown key in TOML configuration: expected a key of [[inbound]], got "
                f"'sender_ip_adresses' ({path}: [[inbound]] item 2); hint: did you mean 'sender_ip_addresses'?"):
        load_connectors(path)


def test_toml_unknown_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[inbond]]\nname = "x"\n', encoding="utf-8")
    with raises("unknown table in TOML configuration: expected one of [[inbound]], [[outbound]], "
                f"[[receive]], [[send]], [[accepted_domains]], got 'inbond' ({path}); hint: did you mean [[inbound]]?"):
        load_config(path)


def test_toml_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[outbound]]\nname = "x"\nuse_mx_record = "yes"\n', encoding="utf-8")
    with raises(f"invalid 'use_mx_record' in TOML configuration: expected true or false, got 'yes' "
                f"({path}: [[outbound]] item 1)"):
        load_connectors(path)
    path.write_text('[[inbound]]\nname = "x"\nsender_ip_addresses = "192.0.2.1"\n', encoding="utf-8")
    with raises(f"invalid 'sender_ip_addresses' in TOML configuration: expected an array of strings, "
                f"got '192.0.2.1' ({path}: [[inbound]] item 1)"):
        load_connectors(path)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[inbound]]\nname = "x"\nenabled = tru\n', encoding="utf-8")
    with raises(f"unreadable TOML configuration file: expected valid TOML, got Invalid value ({path}, "
                "line 3); hint: see the TOML format in the analyzer.config documentation"):
        load_connectors(path)


def test_toml_missing_name(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[send]]\naddress_spaces = ["*"]\n', encoding="utf-8")
    with raises(f"send connector without a name: expected a non-empty string in 'name', got no 'name' "
                f"property ({path}: [[send]] item 1); hint: export whole objects (Get-InboundConnector | "
                "ConvertTo-Json) or add the name"):
        load_connectors(path)


def test_toml_bad_remote_ip_range(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[receive]]\nname = "Relay"\nremote_ip_ranges = ["10.0.0.9-10.0.0.1"]\n', encoding="utf-8")
    with raises(f"invalid IP entry '10.0.0.9-10.0.0.1' in remote_ip_ranges of receive connector 'Relay': "
                f"expected first address <= last address, got a range that runs backwards ({path}: "
                "[[receive]] item 1); hint: write a single address, a CIDR (192.0.2.0/24) or a range "
                "a.b.c.d-e.f.g.h, or remove the entry"):
        load_connectors(path)


def test_bad_sender_ip() -> None:
    path = DATA / "bad_ip.json"
    with raises(f"invalid IP entry '203.0.113.300' in SenderIPAddresses of inbound connector 'Branch "
                f"printers': expected an IPv4 or IPv6 address, got text that is not one ({path}: item 1); "
                "hint: write a single address, a CIDR (192.0.2.0/24) or a range a.b.c.d-e.f.g.h, or "
                "remove the entry"):
        load_connectors(path)


def test_bad_ef_skip_ip_in_csv(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('"Name","SenderDomains","EFSkipIPs"\n"Gateway","*","192.0.2.0/40"\n', encoding="utf-8")
    with raises(f"invalid IP entry '192.0.2.0/40' in EFSkipIPs of inbound connector 'Gateway': expected "
                f"a prefix length 0-32 or a contiguous netmask after '/', got '40' ({path}, line 2); hint: "
                "write a single address, a CIDR (192.0.2.0/24) or a range a.b.c.d-e.f.g.h, or remove the entry"):
        load_connectors(path)


def test_connector_without_name() -> None:
    path = DATA / "no_name.json"
    with raises(f"inbound connector without a name: expected a non-empty string in 'Name', got no 'Name' "
                f"property ({path}: item 2); hint: export whole objects (Get-InboundConnector | "
                "ConvertTo-Json) or add the name"):
        load_connectors(path)


def test_connector_name_of_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"Name": 42, "RecipientDomains": ["a.example"]}', encoding="utf-8")
    with raises(f"outbound connector without a name: expected a non-empty string in 'Name', got the "
                f"number 42 ({path}); hint: export whole objects (Get-InboundConnector | ConvertTo-Json) "
                "or add the name"):
        load_connectors(path)


def test_unknown_connector_type_integer() -> None:
    path = DATA / "bad_enum.json"
    with raises(f"invalid 'ConnectorType' in inbound connector 'Branch printers': expected one of "
                f"OnPremises, Partner (or OnPremises=1, Partner=2), got the number 3 ({path}); hint: "
                "export with ConvertTo-Json -EnumsAsStrings (PowerShell 7) or fix the value"):
        load_connectors(path)


def test_bad_boolean(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('[{"Name": "P", "SenderDomains": "*", "RequireTls": "maybe"}]', encoding="utf-8")
    with raises(f"invalid 'RequireTls' in inbound connector 'P': expected true or false, got 'maybe' ({path}: item 1)"):
        load_connectors(path)


def test_unknown_permission_group_bits(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"Name": "R", "RemoteIPRanges": ["192.0.2.1"], "PermissionGroups": 65}', encoding="utf-8")
    with raises(f"invalid 'PermissionGroups' in receive connector 'R': expected a combination of "
                "AnonymousUsers=1, ExchangeUsers=2, ExchangeServers=4, ExchangeLegacyServers=8, "
                f"Partners=16, Custom=32, got the number 65 ({path}); hint: export with ConvertTo-Json "
                "-EnumsAsStrings (PowerShell 7) or fix the value"):
        load_connectors(path)


def test_misspelt_permission_group(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[receive]]\nname = "Relay"\npermission_groups = ["AnonymusUsers"]\n', encoding="utf-8")
    with raises(f"invalid 'permission_groups' in receive connector 'Relay': expected flag names among "
                "AnonymousUsers, ExchangeUsers, ExchangeServers, ExchangeLegacyServers, Partners, Custom, "
                f"got 'AnonymusUsers' ({path}: [[receive]] item 1); hint: check the spelling of 'AnonymusUsers'"):
        load_connectors(path)


def test_ambiguous_object(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('[{"Name": "X", "SenderDomains": ["a.example"], "RecipientDomains": ["b.example"]}]',
                    encoding="utf-8")
    with raises("cannot tell an inbound from an outbound connector: expected the properties of one kind "
                "(SenderIPAddresses/SenderDomains or RecipientDomains/SmartHosts), got as many of one as "
                f"of the other ({path}: item 1); hint: split inbound and outbound connectors into separate objects"):
        load_connectors(path)


def test_malformed_csv_row(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Name,SenderDomains\nA,a.example\nB,b.example,extra\n", encoding="utf-8")
    with raises(f"malformed CSV row: expected 2 fields as in the header, got 3 fields ({path}, line 3); "
                "hint: quote values that contain the delimiter (Export-Csv does)"):
        load_connectors(path)


def test_truncated_clixml_names_the_line(shared_data: Path, tmp_path: Path) -> None:
    text = (shared_data / SEND).read_text(encoding="utf-8-sig")
    path = tmp_path / "send.xml"
    path.write_text("\n".join(text.splitlines()[:40]), encoding="utf-8")
    with raises(f"unreadable XML configuration file: expected complete CLIXML (Export-Clixml), got no "
                f"element found ({path}, line 40); hint: the file is truncated or was edited; export it again"):
        load_connectors(path)


def test_xml_with_dtd_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.xml"
    path.write_text('<!DOCTYPE Objs [<!ENTITY a "aaaa">]><Objs>&a;</Objs>', encoding="utf-8")
    with raises(f"unsupported XML configuration file: expected PowerShell CLIXML without a DTD, got a "
                f"document type declaration ({path}); hint: give the file Export-Clixml wrote, unchanged"):
        load_connectors(path)
    assert detect_config(path) is None


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with raises(f"cannot read configuration file: got No such file or directory ({path})"):
        load_connectors(path)


# --------------------------------------------------------------------------------------------
# Value rules
# --------------------------------------------------------------------------------------------


def test_microsoft_domain_is_not_a_type_name(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('"Name","SenderDomains"\n"MS","Microsoft.com"\n', encoding="utf-8")
    (conn,) = load_connectors(path).inbound
    assert (conn.sender_domains, conn.unexported) == (("microsoft.com",), ())


def test_string_enums_any_case_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps([{"Name": "O", "ConnectorType": "onpremises", "SmartHosts": "10.0.0.5",
                                 "TlsSettings": "certificatevalidation", "ConnectorSource": 7},
                                {"Name": "P", "RecipientDomains": ["*"]}]), encoding="utf-8")
    first, second = load_connectors(path).outbound
    assert (first.connector_type, first.tls_settings, first.use_mx_record) == ("OnPremises", "CertificateValidation", False)
    assert (second.connector_type, second.tls_settings, second.use_mx_record, second.enabled) == ("Partner", None, True, True)


def test_wrapper_key_names_the_kind_of_bare_objects(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"outbound_connectors": [{"Name": "Bare", "Enabled": False}],
                                "conn_filter": [{"Name": "Default", "IPAllowList": []}]}), encoding="utf-8")
    conns = load_connectors(path)
    assert ([c.name for c in conns.outbound], conns.inbound) == (["Bare"], ())
