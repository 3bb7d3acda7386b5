"""Connector and accepted-domain configuration: Exchange Online / Exchange Server exports and our TOML.

What is read
============

The kind of a file is decided from its content, never from its name (`detect_config`):

* **JSON** from ``ConvertTo-Json`` (any encoding `analyzer._text.read_text` decodes; Windows
  PowerShell's ``Out-File`` writes UTF-16LE with BOM): an array of objects, a single object (one
  connector), an OData page ``{"value": [...]}``, or a wrapper object whose list-valued properties
  hold the objects, such as ScubaGear's ``{"inbound_connectors": [...], "outbound_connectors":
  [null], "accepted_domains": [...]}``. Wrappers are looked into one level deep only; ``null``
  entries are skipped; lists of other objects (ScubaGear's ``conn_filter``, ``remote_domains``)
  are ignored.
* **CSV** from ``Export-Csv`` (with or without the ``#TYPE ...`` first line; ``,``, ``;`` or tab
  as delimiter, chosen from the header line; quoted headers).
* **CLIXML** from ``Export-Clixml`` (``<Objs>``; properties from ``<Props>`` and ``<MS>``,
  multi-valued ones from ``<LST>``; nested objects such as ``IPRange`` or ``SmartHost`` are taken
  by their ``<ToString>``, enum values by their name, ``<Ref>`` resolved). Documents with a DTD
  are refused (nothing legitimate needs one, and it closes the entity-expansion door).
* **TOML**: our own hand-written format, below.

Which object is which is decided by its property names (case-insensitive):
``AddressSpaces``/``DNSRoutingEnabled``/``SourceTransportServers`` -> Exchange Server send
connector; ``RemoteIPRanges``/``Bindings``/``PermissionGroups``/``AuthMechanism`` -> receive
connector; ``SenderIPAddresses``/``SenderDomains``/``TlsSenderCertificateName``/``EFSkipIPs``/...
-> Exchange Online inbound connector; ``RecipientDomains``/``SmartHosts``/``UseMXRecord``/
``TlsSettings``/... -> outbound connector; ``DomainType`` with ``DomainName`` or ``Name`` ->
accepted domain. Objects of a list that match nothing take the kind of the rest of their list
(exports are homogeneous), else the kind named by their wrapper key (``inbound_connectors``).
Properties we do not use are ignored in exports.

Values
======

* Multi-valued properties: JSON arrays, PowerShell 5.1's ``{"value": [...], "Count": n}``, or one
  string joined by ``;``, ``,`` or whitespace; blank entries (``""``) are dropped. An empty list
  stays empty: an inbound connector without ``SenderIPAddresses`` matches no IP, never all.
* ``SenderDomains``/``AddressSpaces`` entries lose their address-space type and cost
  (``smtp:contoso.com;1`` -> ``contoso.com``, ``SMTP:*;1`` -> ``*``); a non-SMTP address space
  keeps its type (``X400:...``). Domains (sender, recipient, TLS, trusted, accepted) are
  lower-cased, as are smart hosts (an IP literal loses its ``[...]``).
* IP entries of ``SenderIPAddresses``, ``EFSkipIPs`` and ``RemoteIPRanges`` are validated with
  `PrefixTable.add`; a bad one raises `ConfigError` naming the file, the connector and the entry.
  Exchange's netmask form ``192.0.2.0(255.255.255.0)`` becomes ``192.0.2.0/255.255.255.0`` and
  blanks around a range's ``-`` are removed; otherwise the text is kept as written. Masks
  Exchange Online would reject (IPv6, shorter than /24) are kept: they are lint findings later.
* Booleans: JSON booleans, ``True``/``False`` (any case), ``$true``/``$false``, ``1``/``0``;
  null or blank means the Exchange default (``Enabled`` true, ``UseMXRecord`` and
  ``DNSRoutingEnabled`` true unless smart hosts are set, every other flag false).
* Enums as names (any case) or integers (``ConvertTo-Json`` writes enums as numbers). The
  integer values come from Exchange's own enum definitions (decompiled Microsoft.Exchange.Data,
  checked against the CLIXML samples, which carry both name and number):
  ``TenantConnectorType`` OnPremises=1, Partner=2; ``TlsAuthLevel`` EncryptionOnly=1,
  CertificateValidation=2, DomainValidation=4; ``TenantConnectorSource`` Default=0, Migrated=1,
  HybridWizard=2 (newer names such as ``AdminUI`` are kept as written; an unknown number is kept
  as its digits, since the source is informational); ``AcceptedDomainType`` Authoritative=0,
  ExternalRelay=1, InternalRelay=2; ``PermissionGroups`` flags AnonymousUsers=1,
  ExchangeUsers=2, ExchangeServers=4, ExchangeLegacyServers=8, Partners=16, Custom=32;
  receive ``AuthMechanism`` flags Tls=1, Integrated=2, BasicAuth=4, BasicAuthRequireTLS=8,
  ExchangeServer=16, ExternalAuthoritative=32. An unknown name or number of ConnectorType,
  TlsSettings, DomainType or of the flags raises `ConfigError`.
* A missing ``ConnectorType`` means ``Partner``: it grants no relay rights, so analyses err on
  the side of reporting a problem rather than hiding one.
* Dates (``/Date(ms)/``, CLIXML ``<DT>``) are not stored and never fail.
* ``Export-Csv`` writes a multi-valued property it cannot flatten as its .NET type name
  (``System.Object[]``, ``Microsoft.Exchange.Data.MultiValuedProperty`1[...]``). Such a value
  means "not exported", not "empty": the field is left empty and the property name is recorded in
  the connector's ``unexported`` tuple so analyses can say the answer is unknown. (Raising would
  reject the commonest CSV export outright; silently using an empty list would report every
  message as arriving outside the connector.)

Several files
=============

Files are merged in the order given. The same connector name (case-insensitive; receive
connectors by server and name) or accepted domain in a later file replaces the earlier one,
keeping the earlier position. The same name twice in one file is an error. An empty export
(empty file, ``[]``, ``null``, a wrapper of empty lists: a tenant without connectors) loads as
nothing. A non-empty file that holds nothing of the requested kind raises `ConfigError`, except
a TOML config, which may hold any subset.

The TOML format
===============

Arrays of tables, one per object; keys are the snake_case of the fields below; unknown tables and
keys are errors (a typo in a hand-written file must not silently change an analysis); every
table may carry a ``comment`` string, which is ignored::

    [[inbound]]                        # Exchange Online inbound connector
    name = "Printers"                  # required
    type = "OnPremises"                # "OnPremises" | "Partner" (default)
    enabled = true
    sender_ip_addresses = ["203.0.113.0/24"]
    sender_domains = ["*"]
    tls_sender_certificate_name = "mail.contoso.com"
    # also: connector_source, require_tls, restrict_domains_to_ip_addresses,
    # restrict_domains_to_certificate, trusted_organizations, associated_accepted_domains,
    # cloud_services_mail_enabled, treat_messages_as_internal, ef_skip_ips, ef_skip_last_ip, ef_users

    [[outbound]]                       # Exchange Online outbound connector
    name = "To partner"
    recipient_domains = ["fabrikam.com"]
    smart_hosts = ["mail.fabrikam.com"]
    # also: type, enabled, use_mx_record, tls_settings, tls_domain, is_transport_rule_scoped,
    # route_all_messages_via_on_premises, all_accepted_domains, test_mode

    [[receive]]                        # Exchange Server receive connector
    name = "Relay"
    server = "EX01"
    remote_ip_ranges = ["192.0.2.10-192.0.2.20"]
    permission_groups = ["AnonymousUsers"]
    # also: enabled, bindings, auth_mechanism, transport_role, fqdn

    [[send]]                           # Exchange Server send connector
    name = "To Microsoft 365"
    address_spaces = ["*"]
    smart_hosts = ["contoso-com.mail.protection.outlook.com"]
    # also: enabled, dns_routing_enabled, require_tls, tls_domain, fqdn

    [[accepted_domains]]
    name = "contoso.com"
    type = "Authoritative"             # "Authoritative" (default) | "InternalRelay" | "ExternalRelay"
    # also: match_subdomains, default

Booleans must be TOML booleans, lists TOML arrays of strings, everything else strings.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyzer._text import TextSource, read_text
from analyzer.errors import AnalyzerError, ConfigError, PrefixError, location
from analyzer.matching import PrefixTable

__all__ = [
    "AcceptedDomain",
    "Connectors",
    "InboundConnector",
    "OutboundConnector",
    "ReceiveConnector",
    "SendConnector",
    "detect_config",
    "load_accepted_domains",
    "load_config",
    "load_connectors",
]


# --------------------------------------------------------------------------------------------
# Public data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundConnector:
    """An Exchange Online inbound connector (``Get-InboundConnector``)."""

    name: str
    enabled: bool
    connector_type: str  # "OnPremises" | "Partner"
    connector_source: str | None
    sender_ip_addresses: tuple[str, ...]
    sender_domains: tuple[str, ...]
    tls_sender_certificate_name: str | None
    require_tls: bool
    restrict_domains_to_ip_addresses: bool
    restrict_domains_to_certificate: bool
    trusted_organizations: tuple[str, ...]
    associated_accepted_domains: tuple[str, ...]
    cloud_services_mail_enabled: bool
    treat_messages_as_internal: bool
    ef_skip_ips: tuple[str, ...]
    ef_skip_last_ip: bool
    ef_users: tuple[str, ...]
    source: str  # where it was read: "file", "file, line N", "file: item 3"
    unexported: tuple[str, ...] = ()  # properties present only as a .NET type name (see module doc)


@dataclass(frozen=True, slots=True)
class OutboundConnector:
    """An Exchange Online outbound connector (``Get-OutboundConnector``)."""

    name: str
    enabled: bool
    connector_type: str  # "OnPremises" | "Partner"
    recipient_domains: tuple[str, ...]
    smart_hosts: tuple[str, ...]
    use_mx_record: bool
    tls_settings: str | None  # "EncryptionOnly" | "CertificateValidation" | "DomainValidation"
    tls_domain: str | None
    is_transport_rule_scoped: bool
    route_all_messages_via_on_premises: bool
    all_accepted_domains: bool
    test_mode: bool
    source: str
    unexported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiveConnector:
    """An Exchange Server receive connector (``Get-ReceiveConnector``, usually ``Export-Clixml``)."""

    name: str
    enabled: bool
    server: str | None
    remote_ip_ranges: tuple[str, ...]  # "a.b.c.d-e.f.g.h", CIDR or single address; PrefixTable text
    bindings: tuple[str, ...]  # "0.0.0.0:25", "[::]:25"
    permission_groups: tuple[str, ...]  # e.g. ("AnonymousUsers", "ExchangeServers")
    auth_mechanism: tuple[str, ...]
    transport_role: str | None
    fqdn: str | None
    source: str
    unexported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SendConnector:
    """An Exchange Server send connector (``Get-SendConnector``)."""

    name: str
    enabled: bool
    address_spaces: tuple[str, ...]  # "SMTP:*;1" -> "*"
    smart_hosts: tuple[str, ...]
    dns_routing_enabled: bool
    require_tls: bool
    tls_domain: str | None
    fqdn: str | None
    source: str
    unexported: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AcceptedDomain:
    """An accepted domain (``Get-AcceptedDomain``)."""

    domain_name: str  # lower case
    domain_type: str  # "Authoritative" | "InternalRelay" | "ExternalRelay"
    match_subdomains: bool
    default: bool
    source: str


@dataclass(frozen=True)
class Connectors:
    """Every connector read from one or more files (merged; see the module documentation)."""

    inbound: tuple[InboundConnector, ...] = ()
    outbound: tuple[OutboundConnector, ...] = ()
    receive: tuple[ReceiveConnector, ...] = ()
    send: tuple[SendConnector, ...] = ()
    files: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Property names, enums
# --------------------------------------------------------------------------------------------

INBOUND, OUTBOUND, RECEIVE, SEND, DOMAIN = "inbound", "outbound", "receive", "send", "accepted_domain"
_CONNECTOR_KINDS = (INBOUND, OUTBOUND, RECEIVE, SEND)
_LABEL = {
    INBOUND: "inbound connector",
    OUTBOUND: "outbound connector",
    RECEIVE: "receive connector",
    SEND: "send connector",
    DOMAIN: "accepted domain",
}

# Properties that only one kind of object has (lower case). Shared ones (Name, Enabled,
# ConnectorType, Comment, CloudServicesMailEnabled, RequireTls, Fqdn) decide nothing.
_SEND_KEYS = frozenset({"addressspaces", "dnsroutingenabled", "sourcetransportservers",
                        "smarthostsstring", "homemtaserverid", "isscopedconnector"})
_RECEIVE_KEYS = frozenset({"remoteipranges", "bindings", "permissiongroups", "authmechanism"})
_INBOUND_KEYS = frozenset({"senderipaddresses", "senderdomains", "tlssendercertificatename",
                           "restrictdomainstoipaddresses", "restrictdomainstocertificate",
                           "efskipips", "efskiplastip", "efusers", "efskipmailgateway",
                           "treatmessagesasinternal", "associatedaccepteddomains",
                           "trustedorganizations", "scananddroprecipients", "eftestmode"})
_OUTBOUND_KEYS = frozenset({"recipientdomains", "smarthosts", "usemxrecord", "tlssettings",
                            "istransportrulescoped", "routeallmessagesviaonpremises",
                            "allaccepteddomains", "testmode", "senderrewritingenabled",
                            "validationrecipients", "isvalidated", "lastvalidationtimestamp"})

_CONNECTOR_TYPE_NAMES = ("OnPremises", "Partner")
_CONNECTOR_TYPE_INTS = {1: "OnPremises", 2: "Partner"}
_TLS_SETTINGS_NAMES = ("EncryptionOnly", "CertificateValidation", "DomainValidation")
_TLS_SETTINGS_INTS = {1: "EncryptionOnly", 2: "CertificateValidation", 4: "DomainValidation"}
_CONNECTOR_SOURCE_INTS = {0: "Default", 1: "Migrated", 2: "HybridWizard"}
_DOMAIN_TYPE_NAMES = ("Authoritative", "InternalRelay", "ExternalRelay")
_DOMAIN_TYPE_INTS = {0: "Authoritative", 1: "ExternalRelay", 2: "InternalRelay"}
# Seen with both forms in the CSS-Exchange CLIXML samples (ServerRole flags).
_TRANSPORT_ROLE_INTS = {32: "HubTransport", 16384: "FrontendTransport"}
_PERMISSION_GROUP_FLAGS = ((1, "AnonymousUsers"), (2, "ExchangeUsers"), (4, "ExchangeServers"),
                           (8, "ExchangeLegacyServers"), (16, "Partners"), (32, "Custom"))
_AUTH_MECHANISM_FLAGS = ((1, "Tls"), (2, "Integrated"), (4, "BasicAuth"), (8, "BasicAuthRequireTLS"),
                         (16, "ExchangeServer"), (32, "ExternalAuthoritative"))

_ENUM_HINT = "export with ConvertTo-Json -EnumsAsStrings (PowerShell 7) or fix the value"

# A .NET type name where Export-Csv could not flatten a value. Case-sensitive on purpose: a
# domain written "Microsoft.com" is not a type name (the part after the dot is lower case).
_TYPE_NAME = re.compile(r"^(?:Deserialized\.)?(?:System|Microsoft)(?:\.[A-Z]\w*)+(?:`\d+)?(?:\[.*\])?$")

# Splitting one joined string: a ';' directly followed by digits is an address-space cost
# ("smtp:contoso.com;1"), not a separator.
_SPLIT_PLAIN = re.compile(r"[;,\s]+")
_SPLIT_ADDRESS_SPACE = re.compile(r"[,\s]+|;(?!\d+(?:[;,\s]|$))")
_RANGE_DASH = re.compile(r"\s*-\s*")
_NETMASK_FORM = re.compile(r"^([0-9.]+)\(([0-9.]+)\)$")

# Above this size on disk a JSON/XML file is only parsed when its head names configuration
# properties: message traces can be hundreds of MB, configuration exports never are.
_DETECT_FULL_PARSE_LIMIT = 16 << 20
_HEAD_KEYS = re.compile(
    r"(?i)\b(senderipaddresses|senderdomains|tlssendercertificatename|recipientdomains|smarthosts|"
    r"usemxrecord|remoteipranges|addressspaces|permissiongroups|domaintype|inbound_?connectors?|"
    r"outbound_?connectors?|accepted_?domains?)\b")


# --------------------------------------------------------------------------------------------
# Reading files into raw records
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Record:
    kind: str | None
    props: dict[str, tuple[str, Any]]  # lower-case name -> (name as written, value)
    source: str
    toml: bool = False  # messages then name the TOML key ("name"), not the property ("Name")


@dataclass(slots=True)
class _Document:
    path: str
    fmt: str  # "json" | "csv" | "clixml" | "toml" | "empty"
    records: list[_Record]
    empty: bool  # holds no objects at all: an export of nothing
    description: str  # what the file is, for "got ..." in messages
    declared: set[str] = field(default_factory=set)  # kinds a CSV header announces (even without rows)

    def kinds(self) -> set[str]:
        return {r.kind for r in self.records if r.kind} | self.declared


def _props(obj: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    for key, value in obj.items():
        out.setdefault(str(key).lower(), (str(key), value))
    return out


def _classify(keys: Iterable[str]) -> str | None:
    """The kind of object a set of (lower-case) property names describes, or None."""
    keys = set(keys)
    if keys & _SEND_KEYS:
        return SEND
    if keys & _RECEIVE_KEYS:
        return RECEIVE
    inbound, outbound = len(keys & _INBOUND_KEYS), len(keys & _OUTBOUND_KEYS)
    if inbound or outbound:
        if inbound == outbound:
            return "ambiguous"
        return INBOUND if inbound > outbound else OUTBOUND
    if "domaintype" in keys and ("domainname" in keys or "name" in keys):
        return DOMAIN
    return None


def _hint_kind(key: str) -> str | None:
    """The kind a wrapper key names: ``inbound_connectors``, ``SendConnectors``, ``accepted_domains``."""
    low = key.lower()
    for word, noun, kind in (("inbound", "connector", INBOUND), ("outbound", "connector", OUTBOUND),
                             ("receive", "connector", RECEIVE), ("send", "connector", SEND),
                             ("accepted", "domain", DOMAIN)):
        if word in low and noun in low:
            return kind
    return None


def _records_from_list(items: list[tuple[Any, str]], wrapper_key: str | None) -> tuple[list[_Record], int]:
    """Records of one list of (object, source); also how many objects it held."""
    candidates = [(_props(obj), src) for obj, src in items if isinstance(obj, dict)]
    kinds = [_classify(p) for p, _ in candidates]
    for (props, src), kind in zip(candidates, kinds):
        if kind == "ambiguous":
            raise ConfigError("cannot tell an inbound from an outbound connector",
                              expected="the properties of one kind (SenderIPAddresses/SenderDomains or "
                                       "RecipientDomains/SmartHosts)",
                              got="as many of one as of the other", where=src,
                              hint="split inbound and outbound connectors into separate objects")
    known = {k for k in kinds if k}
    fallback = None
    if len(known) == 1:
        fallback = next(iter(known))  # exports are homogeneous: bare objects share their list's kind
    elif not known and wrapper_key is not None:
        fallback = _hint_kind(wrapper_key)
    records = []
    for (props, src), kind in zip(candidates, kinds):
        kind = kind or fallback
        if kind is None and known:
            raise ConfigError("cannot tell what kind of object this is", expected="connector or "
                              "accepted-domain properties", got="none of them", where=src,
                              hint="export each cmdlet's objects to its own file")
        if kind is not None:
            records.append(_Record(kind, props, src))
    return records, len(candidates)


def _describe_json(doc: Any) -> str:
    if isinstance(doc, list):
        return f"a JSON array of {len(doc)} item(s) without connector or accepted-domain objects"
    if isinstance(doc, dict):
        names = ", ".join(repr(k) for k in list(doc)[:5]) + (", ..." if len(doc) > 5 else "")
        return f"a JSON object with properties {names}"
    return f"a JSON {type(doc).__name__}"


def _read_json(path: str, text: str) -> _Document:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("unreadable JSON configuration file", expected="complete JSON",
                          got=f"{exc.msg} at column {exc.colno}", where=location(path, exc.lineno),
                          hint="the file is truncated or was edited by hand; export it again with "
                               "ConvertTo-Json -Depth 5") from None
    if doc is None:
        return _Document(path, "json", [], True, "a JSON null")
    if isinstance(doc, list):
        records, count = _records_from_list([(item, f"{path}: item {i}") for i, item in enumerate(doc, 1)], None)
        # an array of nulls / nothing is an export of nothing; an array of strings is something else
        empty = count == 0 and all(item is None for item in doc)
        return _Document(path, "json", records, empty, _describe_json(doc))
    if isinstance(doc, dict):
        props = _props(doc)
        kind = _classify(props)
        if kind == "ambiguous":
            _records_from_list([(doc, path)], None)  # raises the ambiguity error
        if kind:
            return _Document(path, "json", [_Record(kind, props, path)], False, _describe_json(doc))
        records: list[_Record] = []
        objects = 0
        has_list = False
        for key, value in doc.items():
            if isinstance(value, list):
                has_list = True
                items = [(item, f"{path}: {key} item {i}") for i, item in enumerate(value, 1)]
                found, count = _records_from_list(items, str(key))
                records += found
                objects += count
            elif isinstance(value, dict):
                objects += 1
                found, _ = _records_from_list([(value, f"{path}: {key}")], None)
                records += found
        empty = not records and objects == 0 and has_list
        return _Document(path, "json", records, empty, _describe_json(doc))
    return _Document(path, "json", [], False, _describe_json(doc))


def _read_csv(path: str, text: str) -> _Document:
    body, skipped = text, 0
    if text.startswith("#TYPE"):
        # PowerShell 5.1's type line; its absence (-NoTypeInformation, PowerShell 7) is as fine
        cut = text.find("\n")
        body, skipped = (text[cut + 1:] if cut >= 0 else ""), 1
    header_line = body.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=header_line.count)
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    try:
        header = next(reader, [])
        names = [h.strip() for h in header]
        lowered = [n.lower() for n in names]
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        description = f"a CSV file with columns {shown}" if names else "a CSV file without a header"
        kind = _classify(lowered)
        if kind == "ambiguous":
            raise ConfigError("cannot tell an inbound from an outbound connector", expected="the "
                              "columns of one kind", got="as many of one as of the other",
                              where=location(path, 1 + skipped),
                              hint="export Get-InboundConnector and Get-OutboundConnector to separate files")
        if kind is None:
            return _Document(path, "csv", [], False, description)
        records = []
        previous = reader.line_num
        for row in reader:
            line = previous + 1 + skipped
            previous = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(names):
                raise ConfigError("malformed CSV row", expected=f"{len(names)} fields as in the header",
                                  got=f"{len(row)} fields", where=location(path, line),
                                  hint="quote values that contain the delimiter (Export-Csv does)")
            props: dict[str, tuple[str, Any]] = {}
            for name, low, cell in zip(names, lowered, row):
                props.setdefault(low, (name, cell if cell.strip() else None))
            records.append(_Record(kind, props, location(path, line)))
    except csv.Error as exc:
        raise ConfigError("unreadable CSV configuration file", expected="CSV as written by Export-Csv",
                          got=str(exc), where=location(path, reader.line_num + skipped)) from None
    return _Document(path, "csv", records, not records, description, {kind})


_PS_NS = re.compile(r"^\{[^}]*\}")
_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_CLIXML_INTS = frozenset({"I16", "I32", "I64", "U16", "U32", "U64", "By", "SB"})
_CLIXML_LISTS = frozenset({"LST", "IE", "STK", "QUE"})


def _tag(el: ET.Element) -> str:
    return _PS_NS.sub("", el.tag)


def _clixml_text(text: str | None) -> str:
    # CLIXML writes control characters (and literal "_x") as _xHHHH_
    return _CLIXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text or "")


class _Clixml:
    """Converts CLIXML elements into plain Python values, resolving <Ref RefId=...>."""

    def __init__(self) -> None:
        self.refs: dict[str, Any] = {}

    def value(self, el: ET.Element) -> Any:
        tag = _tag(el)
        if tag == "Nil":
            return None
        if tag == "B":
            return (el.text or "").strip().lower() == "true"
        if tag in _CLIXML_INTS:
            try:
                return int((el.text or "").strip())
            except ValueError:
                return None
        if tag == "Ref":
            return self.refs.get(el.get("RefId", ""))
        if tag in ("BA", "SBK", "SS"):
            return None  # binary data / secure strings: nothing we use
        if tag == "Obj":
            value = self.nested(el)
            if el.get("RefId") is not None:
                self.refs[el.get("RefId", "")] = value
            return value
        return _clixml_text(el.text)  # S, DT, G, TS, URI, Version, C, Db, Sg, D, XD ...

    def nested(self, obj: ET.Element) -> Any:
        """A property's object: a list, a dict, or its ToString text (enums, IPRange, SmartHost)."""
        children = {_tag(c): c for c in obj}
        for name in _CLIXML_LISTS:
            if name in children:
                return [self.value(item) for item in children[name]]
        if "DCT" in children:
            out = {}
            for entry in children["DCT"]:
                parts = {c.get("N"): self.value(c) for c in entry}
                out[str(parts.get("Key"))] = parts.get("Value")
            return out
        if "ToString" in children:
            return _clixml_text(children["ToString"].text)
        return self.properties(obj) if ("Props" in children or "MS" in children) else None

    def properties(self, obj: ET.Element) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for container in obj:
            if _tag(container) in ("Props", "MS"):
                for prop in container:
                    name = prop.get("N")
                    if name is not None:
                        out.setdefault(name, self.value(prop))
        return out


def _read_clixml(path: str, text: str) -> _Document:
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ConfigError("unsupported XML configuration file", expected="PowerShell CLIXML without a DTD",
                          got="a document type declaration", where=path,
                          hint="give the file Export-Clixml wrote, unchanged")
    try:
        root = ET.fromstring(text.lstrip("\ufeff"))
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        message = re.sub(r": line \d+, column \d+$", "", str(exc))
        raise ConfigError("unreadable XML configuration file", expected="complete CLIXML (Export-Clixml)",
                          got=message, where=location(path, line),
                          hint="the file is truncated or was edited; export it again") from None
    if _tag(root) != "Objs":
        raise ConfigError("unsupported XML configuration file", expected="PowerShell CLIXML (<Objs>)",
                          got=f"a <{_tag(root)}> document", where=path,
                          hint="export with Get-ReceiveConnector | Export-Clixml FILE")
    conv = _Clixml()
    items = []
    for index, obj in enumerate(root, 1):
        if _tag(obj) == "Obj":
            props = conv.properties(obj)
            if obj.get("RefId") is not None:
                conv.refs[obj.get("RefId", "")] = props
            items.append((props, f"{path}: object {index}"))
        else:
            items.append((conv.value(obj), f"{path}: object {index}"))
    records, _ = _records_from_list(items, None)
    empty = len(root) == 0
    return _Document(path, "clixml", records, empty,
                     f"a CLIXML file of {len(root)} object(s) without connector or accepted-domain properties")


# TOML: table -> (kind, {key: type}); keys map to property names by dropping "_" (see _TOML_PROP).
_TOML_BOOL, _TOML_LIST, _TOML_STR = "bool", "list", "str"
_TOML_TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "inbound": (INBOUND, {
        "name": _TOML_STR, "type": _TOML_STR, "enabled": _TOML_BOOL, "connector_source": _TOML_STR,
        "sender_ip_addresses": _TOML_LIST, "sender_domains": _TOML_LIST,
        "tls_sender_certificate_name": _TOML_STR, "require_tls": _TOML_BOOL,
        "restrict_domains_to_ip_addresses": _TOML_BOOL, "restrict_domains_to_certificate": _TOML_BOOL,
        "trusted_organizations": _TOML_LIST, "associated_accepted_domains": _TOML_LIST,
        "cloud_services_mail_enabled": _TOML_BOOL, "treat_messages_as_internal": _TOML_BOOL,
        "ef_skip_ips": _TOML_LIST, "ef_skip_last_ip": _TOML_BOOL, "ef_users": _TOML_LIST,
        "comment": _TOML_STR}),
    "outbound": (OUTBOUND, {
        "name": _TOML_STR, "type": _TOML_STR, "enabled": _TOML_BOOL, "recipient_domains": _TOML_LIST,
        "smart_hosts": _TOML_LIST, "use_mx_record": _TOML_BOOL, "tls_settings": _TOML_STR,
        "tls_domain": _TOML_STR, "is_transport_rule_scoped": _TOML_BOOL,
        "route_all_messages_via_on_premises": _TOML_BOOL, "all_accepted_domains": _TOML_BOOL,
        "test_mode": _TOML_BOOL, "comment": _TOML_STR}),
    "receive": (RECEIVE, {
        "name": _TOML_STR, "server": _TOML_STR, "enabled": _TOML_BOOL, "remote_ip_ranges": _TOML_LIST,
        "bindings": _TOML_LIST, "permission_groups": _TOML_LIST, "auth_mechanism": _TOML_LIST,
        "transport_role": _TOML_STR, "fqdn": _TOML_STR, "comment": _TOML_STR}),
    "send": (SEND, {
        "name": _TOML_STR, "enabled": _TOML_BOOL, "address_spaces": _TOML_LIST, "smart_hosts": _TOML_LIST,
        "dns_routing_enabled": _TOML_BOOL, "require_tls": _TOML_BOOL, "tls_domain": _TOML_STR,
        "fqdn": _TOML_STR, "comment": _TOML_STR}),
    "accepted_domains": (DOMAIN, {
        "name": _TOML_STR, "type": _TOML_STR, "match_subdomains": _TOML_BOOL, "default": _TOML_BOOL,
        "comment": _TOML_STR}),
}
_TOML_PROP_OVERRIDES = {(DOMAIN, "name"): "domainname", (DOMAIN, "type"): "domaintype"}
_TOML_EXPECTED = {_TOML_BOOL: "true or false", _TOML_LIST: "an array of strings", _TOML_STR: "a string"}


def _toml_prop(kind: str, key: str) -> str:
    if key == "type" and kind != DOMAIN:
        return "connectortype"
    return _TOML_PROP_OVERRIDES.get((kind, key), key.replace("_", ""))


def _toml_type_ok(value: Any, expected: str) -> bool:
    if expected == _TOML_BOOL:
        return isinstance(value, bool)
    if expected == _TOML_LIST:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, str)


def _read_toml(path: str, text: str) -> _Document:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r" \(at line (\d+), column \d+\)$", message)
        line = int(found.group(1)) if found else None
        message = message[: found.start()] if found else message
        raise ConfigError("unreadable TOML configuration file", expected="valid TOML", got=message,
                          where=location(path, line),
                          hint="see the TOML format in the analyzer.config documentation") from None
    records = []
    tables = ", ".join(f"[[{t}]]" for t in _TOML_TABLES)
    for table, value in data.items():
        if table not in _TOML_TABLES:
            close = difflib.get_close_matches(table, list(_TOML_TABLES), n=1)
            raise ConfigError("unknown table in TOML configuration", expected=f"one of {tables}",
                              got=repr(table), where=path,
                              hint=f"did you mean [[{close[0]}]]?" if close else "remove it")
        kind, spec = _TOML_TABLES[table]
        items = [value] if isinstance(value, dict) else value
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ConfigError("invalid TOML configuration", expected=f"an array of tables [[{table}]]",
                              got=_describe(value), where=f"{path}: {table}")
        for index, item in enumerate(items, 1):
            source = f"{path}: [[{table}]] item {index}"
            props: dict[str, tuple[str, Any]] = {}
            for key, val in item.items():
                if key not in spec:
                    close = difflib.get_close_matches(key, list(spec), n=1)
                    raise ConfigError("unknown key in TOML configuration",
                                      expected=f"a key of [[{table}]]", got=repr(key), where=source,
                                      hint=f"did you mean {close[0]!r}?" if close
                                      else "the keys are listed in the analyzer.config documentation")
                if not _toml_type_ok(val, spec[key]):
                    raise ConfigError(f"invalid {key!r} in TOML configuration",
                                      expected=_TOML_EXPECTED[spec[key]], got=_describe(val), where=source)
                if key != "comment":
                    props[_toml_prop(kind, key)] = (key, val)
            records.append(_Record(kind, props, source, toml=True))
    return _Document(path, "toml", records, not records, "a TOML configuration")


_TOML_HEADER = re.compile(r"^\[\[?\s*[A-Za-z_][\w-]*\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"^[A-Za-z0-9_-]+(\s*\.\s*[A-Za-z0-9_-]+)*\s*=")


def _looks_like_toml(text: str) -> bool:
    """True when the first line that is not blank or a comment is a TOML table header or key."""
    for line in text.split("\n", 200)[:200]:
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#TYPE"):
                return False
            continue
        return bool(_TOML_HEADER.match(line) or _TOML_KEY.match(line))
    return False


def _read_file_text(path: str) -> str:
    try:
        return read_text(path)[0]
    except OSError as exc:
        raise ConfigError("cannot read configuration file", got=exc.strerror or type(exc).__name__,
                          where=path) from None
    except AnalyzerError as exc:  # binary data
        raise ConfigError("unreadable configuration file", expected="text (JSON, CSV, CLIXML or TOML)",
                          got=exc.got, where=path, hint="give the exported file itself") from None


def _parse(path: str, text: str) -> _Document:
    body = text.lstrip("\ufeff \t\r\n")
    if not body:
        return _Document(path, "empty", [], True, "an empty file")
    first = body[0]
    if first == "<":
        return _read_clixml(path, body)
    if first == "{" or body.rstrip() == "null" or (first == "[" and not _looks_like_toml(body)):
        return _read_json(path, text)
    if _looks_like_toml(body):
        return _read_toml(path, text)
    return _read_csv(path, text.lstrip("\ufeff"))


def _read_document(path: Path) -> _Document:
    name = str(path)
    return _parse(name, _read_file_text(name))


# --------------------------------------------------------------------------------------------
# Raw records -> dataclasses
# --------------------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else repr(value)
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _lookup(obj: dict[str, Any], *names: str) -> Any:
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for name in names:
        if lowered.get(name) is not None:
            return lowered[name]
    return None


def _object_text(obj: dict[str, Any]) -> str | None:
    """The text of a nested object from JSON (IPRange, SmartHost, SmtpDomain, AddressSpace...)."""
    value = _lookup(obj, "expression", "ipaddresstostring", "addressstring", "hostnamestring",
                    "address", "domain", "smtpdomain", "name", "value")
    if isinstance(value, dict):
        return _object_text(value)
    return None if value is None else str(value)


_NAME_DISPLAY = {"name": "Name", "domainname": "DomainName"}


class _Fields:
    """Typed access to one raw record, building the messages of its errors."""

    def __init__(self, record: _Record) -> None:
        self.record = record
        self.source = record.source
        self.label = _LABEL[record.kind or ""]
        self.unexported: list[str] = []
        self.name = "?"

    def raw(self, key: str) -> tuple[str, Any]:
        return self.record.props.get(key, (key, None))

    def error(self, key: str, expected: str, value: Any, hint: str | None = None) -> ConfigError:
        display = self.raw(key)[0]
        return ConfigError(f"invalid {display!r} in {self.label} {self.name!r}", expected=expected,
                           got=_describe(value), where=self.source, hint=hint)

    def _placeholder(self, key: str, value: Any) -> bool:
        if isinstance(value, str) and _TYPE_NAME.match(value.strip()):
            self.unexported.append(self.raw(key)[0])
            return True
        return False

    def require_name(self, *keys: str) -> str:
        """The object's name from the first of `keys` that is set; a missing or blank one raises."""
        present = [k for k in keys if k in self.record.props]
        chosen = next((k for k in present if self.raw(k)[1] is not None), present[0] if present else None)
        if chosen is None:
            display = "name" if self.record.toml else _NAME_DISPLAY[keys[0]]
            value: Any = None
            got = f"no {display!r} property"
        else:
            display, value = self.raw(chosen)
            if isinstance(value, dict):
                value = _object_text(value)
            got = "an empty value" if value is None else _describe(value)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self.label} without a name", expected=f"a non-empty string in {display!r}",
                              got=got, where=self.source,
                              hint="export whole objects (Get-InboundConnector | ConvertTo-Json) "
                                   "or add the name")
        self.name = value.strip()
        return self.name

    def text(self, key: str) -> str | None:
        value = self.raw(key)[1]
        if value is None or self._placeholder(key, value):
            return None
        if isinstance(value, dict):
            value = _object_text(value)
        elif isinstance(value, list) and len(value) <= 1:
            value = value[0] if value else None
            value = _object_text(value) if isinstance(value, dict) else value
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(key, "a string", value)
        return value.strip() or None

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key)[1]
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("true", "$true", "1"):
                return True
            if low in ("false", "$false", "0"):
                return False
        raise self.error(key, "true or false", value)

    def enum(self, key: str, names: tuple[str, ...], ints: dict[int, str], default: str | None,
             *, strict: bool = True) -> str | None:
        """An enum value by name (any case) or number; `strict` False keeps unknown ones as written."""
        value = self.raw(key)[1]
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.error(key, "a name or a number", value)
        if isinstance(value, int):
            if value in ints:
                return ints[value]
            if not strict:
                return str(value)
        else:
            for name in names:
                if name.lower() == value.strip().lower():
                    return name
            if not strict:
                return value.strip()
        numbers = ", ".join(f"{n}={i}" for i, n in sorted(ints.items()))
        raise self.error(key, f"one of {', '.join(names)} (or {numbers})", value, hint=_ENUM_HINT)

    def items(self, key: str, *, address_space: bool = False, ip: bool = False) -> list[str]:
        """The entries of a multi-valued property, split and without blanks (not yet normalized)."""
        value = self.raw(key)[1]
        if isinstance(value, dict) and value and set(map(str.lower, value)) <= {"value", "count"}:
            value = _lookup(value, "value")  # PowerShell 5.1's {"value": [...], "Count": n}
        if value is None:
            return []
        if isinstance(value, (str, dict)):
            value = [value]
        if not isinstance(value, list):
            raise self.error(key, "a list of strings or one string", value)
        out: list[str] = []
        for item in value:
            if item is None:
                continue
            if isinstance(item, dict):
                item = self._item_object(key, item)
                if item is None:
                    continue
            if not isinstance(item, str):
                raise self.error(key, "a list of strings", item)
            if self._placeholder(key, item):
                continue
            if ip:
                item = _RANGE_DASH.sub("-", item.strip())
            splitter = _SPLIT_ADDRESS_SPACE if address_space else _SPLIT_PLAIN
            out += [part for part in splitter.split(item) if part.strip()]
        return out

    def _item_object(self, key: str, item: dict[str, Any]) -> str | None:
        if key == "bindings":  # IPBinding: Address + Port
            address, port = _lookup(item, "address"), _lookup(item, "port")
            if isinstance(address, dict):
                address = _object_text(address)
            if address is not None and port is not None:
                address = str(address)
                return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        if key == "addressspaces":  # AddressSpace: Type + Address
            kind, address = _lookup(item, "type"), _lookup(item, "address")
            if kind is not None and address is not None:
                return f"{kind}:{address}"
        text = _object_text(item)
        if text is None:
            raise self.error(key, "strings or objects with an address", item)
        return text

    def flags(self, key: str, table: tuple[tuple[int, str], ...]) -> tuple[str, ...]:
        """A [Flags] enum: a number, or names joined by ',' (PowerShell's ToString)."""
        value = self.raw(key)[1]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool):
            raise self.error(key, "flag names or a number", value)
        if isinstance(value, int):
            names = tuple(name for bit, name in table if value & bit)
            known = sum(bit for bit, _ in table)
            if value & ~known or value < 0:
                raise self.error(key, f"a combination of {', '.join(f'{n}={b}' for b, n in table)}", value,
                                 hint=_ENUM_HINT)
            return names
        canonical = {name.lower(): name for _, name in table}
        out = []
        for item in self.items(key):
            if item.lower() == "none":  # PowerShell's ToString of 0
                continue
            if item.lower() not in canonical:
                raise self.error(key, f"flag names among {', '.join(n for _, n in table)}", item,
                                 hint=f"check the spelling of {item!r}")
            out.append(canonical[item.lower()])
        return tuple(out)

    def ips(self, key: str, checker: PrefixTable) -> tuple[str, ...]:
        out = []
        for entry in self.items(key, ip=True):
            entry = _NETMASK_FORM.sub(r"\1/\2", entry)
            try:
                checker.add(entry, 0)
            except PrefixError as exc:
                display = self.raw(key)[0]
                raise ConfigError(f"invalid IP entry {entry!r} in {display} of {self.label} {self.name!r}",
                                  expected=exc.expected, got=exc.got, where=self.source,
                                  hint="write a single address, a CIDR (192.0.2.0/24) or a range "
                                       "a.b.c.d-e.f.g.h, or remove the entry") from None
            out.append(entry)
        return tuple(out)

    def domains(self, key: str, *, address_space: bool = False) -> tuple[str, ...]:
        out = []
        for entry in self.items(key, address_space=address_space):
            entry = _address_space(entry) if address_space else entry.strip()
            if entry:
                out.append(entry if ":" in entry else entry.lower().rstrip("."))
        return tuple(out)

    def hosts(self, key: str) -> tuple[str, ...]:
        out = []
        for entry in self.items(key):
            entry = entry.strip().lower()
            if entry.startswith("[") and entry.endswith("]"):
                entry = entry[1:-1]  # Exchange shows IP smart hosts as [192.0.2.1]
            if entry:
                out.append(entry)
        return tuple(out)


def _address_space(entry: str) -> str:
    """``smtp:contoso.com;1`` -> ``contoso.com``; a non-SMTP space keeps its type, loses its cost."""
    entry = re.sub(r";\d+$", "", entry.strip())
    found = re.match(r"^([A-Za-z][A-Za-z0-9]*):(.*)$", entry)
    if found and found.group(1).lower() == "smtp":
        return found.group(2).strip().lower().rstrip(".")
    return entry


def _build_inbound(record: _Record, checker: PrefixTable) -> InboundConnector:
    f = _Fields(record)
    name = f.require_name("name")
    connector_type = f.enum("connectortype", _CONNECTOR_TYPE_NAMES, _CONNECTOR_TYPE_INTS, "Partner")
    certificate = f.text("tlssendercertificatename")
    return InboundConnector(
        name=name,
        enabled=f.flag("enabled", True),
        connector_type=connector_type or "Partner",
        connector_source=f.enum("connectorsource", (), _CONNECTOR_SOURCE_INTS, None, strict=False),
        sender_ip_addresses=f.ips("senderipaddresses", checker),
        sender_domains=f.domains("senderdomains", address_space=True),
        tls_sender_certificate_name=certificate,
        require_tls=f.flag("requiretls", False),
        restrict_domains_to_ip_addresses=f.flag("restrictdomainstoipaddresses", False),
        restrict_domains_to_certificate=f.flag("restrictdomainstocertificate", False),
        trusted_organizations=f.domains("trustedorganizations"),
        associated_accepted_domains=f.domains("associatedaccepteddomains"),
        cloud_services_mail_enabled=f.flag("cloudservicesmailenabled", False),
        treat_messages_as_internal=f.flag("treatmessagesasinternal", False),
        ef_skip_ips=f.ips("efskipips", checker),
        ef_skip_last_ip=f.flag("efskiplastip", False),
        ef_users=tuple(u.lower() for u in f.items("efusers")),
        source=record.source,
        unexported=tuple(f.unexported),
    )


def _build_outbound(record: _Record, checker: PrefixTable) -> OutboundConnector:
    f = _Fields(record)
    name = f.require_name("name")
    connector_type = f.enum("connectortype", _CONNECTOR_TYPE_NAMES, _CONNECTOR_TYPE_INTS, "Partner")
    smart_hosts = f.hosts("smarthosts")
    tls_domain = f.text("tlsdomain")
    return OutboundConnector(
        name=name,
        enabled=f.flag("enabled", True),
        connector_type=connector_type or "Partner",
        recipient_domains=f.domains("recipientdomains", address_space=True),
        smart_hosts=smart_hosts,
        # Exchange's default is true, but a connector with smart hosts and no MX flag was meant
        # to use them (EXO refuses SmartHosts with UseMXRecord true)
        use_mx_record=f.flag("usemxrecord", not smart_hosts),
        tls_settings=f.enum("tlssettings", _TLS_SETTINGS_NAMES, _TLS_SETTINGS_INTS, None),
        tls_domain=tls_domain.lower() if tls_domain else None,
        is_transport_rule_scoped=f.flag("istransportrulescoped", False),
        route_all_messages_via_on_premises=f.flag("routeallmessagesviaonpremises", False),
        all_accepted_domains=f.flag("allaccepteddomains", False),
        test_mode=f.flag("testmode", False),
        source=record.source,
        unexported=tuple(f.unexported),
    )


def _build_receive(record: _Record, checker: PrefixTable) -> ReceiveConnector:
    f = _Fields(record)
    name = f.require_name("name")
    server = f.text("server")
    if server is None:
        identity = f.text("identity")  # "SERVER\Connector name"
        if identity and "\\" in identity:
            server = identity.split("\\", 1)[0] or None
    return ReceiveConnector(
        name=name,
        enabled=f.flag("enabled", True),
        server=server,
        remote_ip_ranges=f.ips("remoteipranges", checker),
        bindings=tuple(f.items("bindings")),
        permission_groups=f.flags("permissiongroups", _PERMISSION_GROUP_FLAGS),
        auth_mechanism=f.flags("authmechanism", _AUTH_MECHANISM_FLAGS),
        transport_role=f.enum("transportrole", (), _TRANSPORT_ROLE_INTS, None, strict=False),
        fqdn=f.text("fqdn"),
        source=record.source,
        unexported=tuple(f.unexported),
    )


def _build_send(record: _Record, checker: PrefixTable) -> SendConnector:
    f = _Fields(record)
    name = f.require_name("name")
    smart_hosts = f.hosts("smarthosts")
    tls_domain = f.text("tlsdomain")
    return SendConnector(
        name=name,
        enabled=f.flag("enabled", True),
        address_spaces=f.domains("addressspaces", address_space=True),
        smart_hosts=smart_hosts,
        dns_routing_enabled=f.flag("dnsroutingenabled", not smart_hosts),
        require_tls=f.flag("requiretls", False),
        tls_domain=tls_domain.lower() if tls_domain else None,
        fqdn=f.text("fqdn"),
        source=record.source,
        unexported=tuple(f.unexported),
    )


def _build_domain(record: _Record) -> AcceptedDomain:
    f = _Fields(record)
    name = f.require_name("domainname", "name")
    return AcceptedDomain(
        domain_name=name.lower().rstrip("."),
        domain_type=f.enum("domaintype", _DOMAIN_TYPE_NAMES, _DOMAIN_TYPE_INTS, "Authoritative") or "Authoritative",
        match_subdomains=f.flag("matchsubdomains", False),
        default=f.flag("default", False),
        source=record.source,
    )


_BUILDERS = {INBOUND: _build_inbound, OUTBOUND: _build_outbound, RECEIVE: _build_receive, SEND: _build_send}


def _key(kind: str, item: Any) -> tuple[str, ...]:
    if kind == RECEIVE:  # receive connectors are per server: "Relay" may exist on EX01 and EX02
        return ((item.server or "").casefold(), item.name.casefold())
    if kind == DOMAIN:
        return (item.domain_name,)
    return (item.name.casefold(),)


def _merge(target: dict[tuple[str, ...], Any], kind: str, items: list[Any]) -> None:
    """Add one file's objects; the same key twice in one file is an error, across files the later wins."""
    seen: dict[tuple[str, ...], Any] = {}
    for item in items:
        key = _key(kind, item)
        if key in seen:
            label = _LABEL[kind]
            shown = item.domain_name if kind == DOMAIN else item.name
            raise ConfigError(f"duplicate {label} {shown!r}", expected="each name once per file",
                              got="a second definition", where=item.source,
                              hint=f"the first is at {seen[key].source}; remove one")
        seen[key] = item
        target[key] = item


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def _paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    return [Path(p) for p in paths]


_CONNECTOR_EXPECTED = ("connector objects (Get-InboundConnector/Get-OutboundConnector as JSON or CSV, "
                       "Get-ReceiveConnector/Get-SendConnector as CLIXML) or a TOML configuration")
_DOMAIN_EXPECTED = "accepted-domain objects (Get-AcceptedDomain as JSON, CSV or CLIXML) or a TOML configuration"


def _connectors_from(documents: list[_Document]) -> Connectors:
    merged: dict[str, dict[tuple[str, ...], Any]] = {kind: {} for kind in _CONNECTOR_KINDS}
    checker = PrefixTable()  # only validates entries; one table keeps it cheap
    for doc in documents:
        for kind in _CONNECTOR_KINDS:
            built = [_BUILDERS[kind](r, checker) for r in doc.records if r.kind == kind]
            _merge(merged[kind], kind, built)
    return Connectors(
        inbound=tuple(merged[INBOUND].values()),
        outbound=tuple(merged[OUTBOUND].values()),
        receive=tuple(merged[RECEIVE].values()),
        send=tuple(merged[SEND].values()),
        files=tuple(doc.path for doc in documents),
    )


def _domains_from(documents: list[_Document]) -> tuple[AcceptedDomain, ...]:
    merged: dict[tuple[str, ...], AcceptedDomain] = {}
    for doc in documents:
        _merge(merged, DOMAIN, [_build_domain(r) for r in doc.records if r.kind == DOMAIN])
    return tuple(merged.values())


def load_connectors(paths: str | Path | Iterable[str | Path]) -> Connectors:
    """Read connector exports (JSON, CSV, CLIXML) and TOML configs into one `Connectors`.

    Files are merged in order; a connector name in a later file replaces the earlier one. An empty
    export loads as nothing; any other file without connectors raises `ConfigError`, as does an
    unreadable file (the message names the file and, where known, the line, connector and entry).
    """
    documents = []
    for path in _paths(paths):
        doc = _read_document(path)
        if not doc.empty and doc.fmt != "toml" and not (doc.kinds() & set(_CONNECTOR_KINDS)):
            if DOMAIN in doc.kinds():
                got, hint = "an accepted-domains export", "load it as accepted domains (load_accepted_domains)"
            else:
                got, hint = doc.description, ("export connectors with Get-InboundConnector | ConvertTo-Json; "
                                              "message traces and vendor range lists are not connector exports")
            raise ConfigError("no connectors in configuration file", expected=_CONNECTOR_EXPECTED,
                              got=got, where=doc.path, hint=hint)
        documents.append(doc)
    return _connectors_from(documents)


def load_accepted_domains(paths: str | Path | Iterable[str | Path]) -> tuple[AcceptedDomain, ...]:
    """Read accepted domains (``Get-AcceptedDomain`` as JSON, CSV or CLIXML, or a TOML config).

    A domain in a later file replaces the same domain from an earlier one. Errors as in
    `load_connectors`.
    """
    documents = []
    for path in _paths(paths):
        doc = _read_document(path)
        if not doc.empty and doc.fmt != "toml" and DOMAIN not in doc.kinds():
            if doc.kinds() & set(_CONNECTOR_KINDS):
                got, hint = "a connector export", "load it as connectors (load_connectors)"
            else:
                got, hint = doc.description, "export accepted domains with Get-AcceptedDomain | ConvertTo-Json"
            raise ConfigError("no accepted domains in configuration file", expected=_DOMAIN_EXPECTED,
                              got=got, where=doc.path, hint=hint)
        documents.append(doc)
    return _domains_from(documents)


def _kind_of(doc: _Document) -> str | None:
    kinds = doc.kinds()
    has_connectors, has_domains = bool(kinds & set(_CONNECTOR_KINDS)), DOMAIN in kinds
    if doc.fmt == "toml" or (has_connectors and has_domains):
        return "config"
    if has_connectors:
        return "connectors"
    if has_domains:
        return "accepted_domains"
    return None


def detect_config(path: str | Path) -> str | None:
    """What configuration a file holds, from its content: ``"connectors"``, ``"accepted_domains"``,
    ``"config"`` (our TOML, or an export holding both kinds such as ScubaGear's) or None.

    None means "not a configuration export" (a message trace, a range list, an empty export, a
    binary file): this never raises for such files. A file that looks like configuration but is
    broken (truncated JSON) still gets its kind, so that loading it reports the damage instead
    of skipping it. An unreadable path raises OSError. Large JSON/XML files are only parsed
    when their first 64 KB name configuration properties, which keeps this cheap for big traces.
    """
    path = Path(path)
    size = path.stat().st_size  # OSError for a missing file, on purpose
    try:
        head = TextSource(path).head_text.lstrip("\ufeff \t\r\n")
    except AnalyzerError:
        return None  # binary
    if not head:
        return None
    try:
        if head[0] in "<{[" or _looks_like_toml(head):
            if size > _DETECT_FULL_PARSE_LIMIT and not _HEAD_KEYS.search(head):
                return None
            try:
                return _kind_of(_read_document(path))
            except ConfigError:
                if _OUR_TOML_TABLE.search(head) and head[0] not in "{<":
                    return "config"
                return _head_kind(head)
        # CSV: the header decides; no need to read the rows (traces are big)
        return _kind_of(_parse(str(path), head.split("\n", 2)[0] if not head.startswith("#TYPE")
                               else "\n".join(head.split("\n", 2)[:2])))
    except Exception:  # noqa: BLE001 - detection must not fail on arbitrary input
        return None


_OUR_TOML_TABLE = re.compile(r"(?m)^\s*\[\[?\s*(inbound|outbound|receive|send|accepted_domains)\s*\]")


def _head_kind(head: str) -> str | None:
    """Kind of a broken file from the property names in its head (see `detect_config`)."""
    keys = {m.lower().replace("_", "") for m in re.findall(r'"([A-Za-z_]+)"\s*:', head)}
    keys |= {m.lower() for m in re.findall(r'N="([A-Za-z]+)"', head)}
    kind = _classify(keys)
    if kind in _CONNECTOR_KINDS or kind == "ambiguous" or keys & {"inboundconnectors", "outboundconnectors"}:
        return "connectors"
    if kind == DOMAIN:
        return "accepted_domains"
    return None


def load_config(paths: str | Path | Iterable[str | Path]) -> tuple[Connectors, tuple[AcceptedDomain, ...]]:
    """Read every configuration file given, each for whatever it holds (connectors, accepted
    domains or both), in one pass per file.

    Empty exports are fine; a file holding neither kind (a message trace given by mistake)
    raises `ConfigError`, as do unreadable files. `Connectors.files` lists every file read.
    """
    documents = []
    for path in _paths(paths):
        doc = _read_document(path)
        if not doc.empty and _kind_of(doc) is None:
            raise ConfigError("not a configuration file", expected=_CONNECTOR_EXPECTED + ", or accepted domains",
                              got=doc.description, where=doc.path,
                              hint="give message traces and logs as inputs, not as configuration")
        documents.append(doc)
    return _connectors_from(documents), _domains_from(documents)
