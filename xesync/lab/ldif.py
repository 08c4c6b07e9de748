"""A small, strict LDIF reader (RFC 2849 content records) and an ldap3 mock directory built from it.

ldap3 has no LDIF reader, and the lab needs one in two places: :mod:`xesync.lab.slapd` loads an LDIF
into a real ``slapd`` over the wire, and without slapd the lab serves the same LDIF on ldap3's
``MOCK_SYNC`` strategy (:mod:`xesync.lab.ldif_directory` for xesync's resolver, the CMS and TMS
simulators' LDAP links for theirs). The production configuration knows nothing of this.

Supported: ``version: 1``, comments, continuation lines (a line starting with one space), base64
values (``attr:: …``) and attribute options (``userCertificate;binary``). Refused, with the line
number: change records (``changetype:``), URL values (``attr:< …``), values before a ``dn:``, and a
DN given twice. Strict on purpose: a fixture that half-loads is worse than one that fails.

The mock directory behaves like an OpenLDAP ``slapd`` with the ``memberof`` overlay, as far as
xesync can tell: every entry gets ``memberOf`` (the groups naming it in ``member``, dangling
members ignored) and a stable ``entryUUID`` (derived from the DN, so reloading keeps identities).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPInvalidCredentialsResult, LDAPInvalidDnError
from ldap3.utils.dn import safe_dn

from xesync.adapters.ldap import normalise_dn

__all__ = [
    "OPERATIONAL",
    "LdifEntry",
    "LdifError",
    "mock_connection_from_ldif",
    "normalise_dn",
    "parse_ldif",
    "read_ldif",
    "with_computed_attributes",
]

_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)(?:;[A-Za-z0-9-]+)*$")
# A stable namespace for the mock's entryUUIDs: uuid5(namespace, normalised DN).
_ENTRY_UUID_NAMESPACE = uuid.UUID("6d0c7a52-3c1f-5b7e-9a43-2f8e51d0c6a1")
# Attributes a directory server computes itself; an LDIF loaded over the wire must not carry them.
OPERATIONAL = frozenset(
    {
        "memberof",
        "entryuuid",
        "entrydn",
        "entrycsn",
        "createtimestamp",
        "modifytimestamp",
        "creatorsname",
        "modifiersname",
        "structuralobjectclass",
        "hassubordinates",
        "subschemasubentry",
    }
)


class LdifError(ValueError):
    """An LDIF file that this strict reader refuses; names the file and the line."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}:{line}: {reason}")


@dataclass(frozen=True, slots=True)
class LdifEntry:
    """One content record: a DN and its attributes (name as first spelled → raw values)."""

    dn: str
    attributes: dict[str, list[bytes]] = field(default_factory=dict)

    def values(self, name: str) -> list[bytes]:
        """The raw values of ``name`` (case-insensitive), empty when absent."""
        wanted = name.lower()
        return next((v for k, v in self.attributes.items() if k.lower() == wanted), [])

    def text(self, name: str) -> list[str]:
        """The values of ``name`` decoded as UTF-8 (binary values are skipped)."""
        out: list[str] = []
        for raw in self.values(name):
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                continue
        return out


def read_ldif(path: Path) -> list[LdifEntry]:
    """Read the content records of an LDIF file.

    :raises LdifError: on anything this reader does not support, with the line number.
    :raises OSError: when the file cannot be read.
    """
    return parse_ldif(path.read_text(encoding="utf-8"), source=str(path))


def parse_ldif(text: str, source: str = "<ldif>") -> list[LdifEntry]:
    """Parse LDIF text; see :func:`read_ldif`."""
    entries: list[LdifEntry] = []
    seen: set[str] = set()
    for index, record in enumerate(_records(_logical_lines(text.splitlines(), source))):
        entry = _entry(record, source, first=index == 0)
        if entry is None:
            continue
        key = normalise_dn(entry.dn)
        if key in seen:
            raise LdifError(source, record[0][0], f"DN {entry.dn!r} is given twice")
        seen.add(key)
        entries.append(entry)
    return entries


def _logical_lines(lines: list[str], source: str) -> Iterator[tuple[int, str]]:
    """Join continuation lines; drop comments (continued comments too). Yields (line number, text)."""
    current: tuple[int, str] | None = None
    in_comment = False
    for number, line in enumerate(lines, start=1):
        if line.startswith(" "):
            if in_comment:
                continue
            if current is None or current[1].strip() == "":
                raise LdifError(source, number, "a continuation line must follow an attribute line")
            current = (current[0], current[1] + line[1:])
            continue
        if current is not None:
            yield current
            current = None
        in_comment = line.startswith("#")
        if not in_comment:
            current = (number, line)
    if current is not None:
        yield current


def _records(lines: Iterable[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
    record: list[tuple[int, str]] = []
    for number, line in lines:
        if line.strip() == "":
            if record:
                yield record
                record = []
            continue
        record.append((number, line))
    if record:
        yield record


def _entry(record: list[tuple[int, str]], source: str, *, first: bool) -> LdifEntry | None:
    first_line, line = record[0]
    if first and line.lower().startswith("version:"):
        if line.split(":", 1)[1].strip() != "1":
            raise LdifError(source, first_line, "only LDIF version 1 is supported")
        record = record[1:]
        if not record:
            return None
        first_line, line = record[0]
    name, value = _attribute_value(first_line, line, source)
    if name.lower() != "dn":
        raise LdifError(source, first_line, f"a record must start with 'dn:', not {name!r}")
    try:
        dn = value.decode("utf-8")
        safe_dn(dn)
    except (UnicodeDecodeError, LDAPInvalidDnError):
        raise LdifError(source, first_line, f"invalid DN {value!r}") from None
    attributes: dict[str, list[bytes]] = {}
    spelling: dict[str, str] = {}
    for number, line in record[1:]:
        name, value = _attribute_value(number, line, source)
        lowered = name.lower()
        if lowered in {"changetype", "control"}:
            raise LdifError(source, number, "change records are not supported, only content records")
        if lowered == "dn":
            raise LdifError(source, number, "a second 'dn:' inside one record (missing blank line?)")
        key = spelling.setdefault(lowered, name)
        attributes.setdefault(key, []).append(value)
    if not attributes:
        raise LdifError(source, first_line, f"entry {dn!r} has no attributes")
    return LdifEntry(dn=dn, attributes=attributes)


def _attribute_value(number: int, line: str, source: str) -> tuple[str, bytes]:
    name, sep, rest = line.partition(":")
    if not sep:
        raise LdifError(source, number, f"expected 'attribute: value', got {line[:40]!r}")
    if not _ATTRIBUTE.match(name):
        raise LdifError(source, number, f"invalid attribute description {name!r}")
    if rest.startswith(":"):
        encoded = rest[1:].strip()
        try:
            return name, base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise LdifError(source, number, f"invalid base64 value for {name!r}") from None
    if rest.startswith("<"):
        raise LdifError(source, number, "URL values (attr:< …) are not supported")
    return name, rest.lstrip(" ").encode("utf-8")


# ------------------------------------------------------------------------------------ mock directory


def with_computed_attributes(entries: list[LdifEntry]) -> list[LdifEntry]:
    """Copies of ``entries`` with ``memberOf`` and ``entryUUID`` computed as slapd would.

    ``memberOf`` lists, for each entry, the groups whose ``member`` names it (groups included, so
    nested groups can be followed); members that are not in the LDIF are ignored, as the memberof
    overlay ignores dangling members. Values already in the LDIF are kept.
    """
    groups_of: dict[str, list[str]] = {}
    for entry in entries:
        for member in entry.text("member"):
            groups_of.setdefault(normalise_dn(member), []).append(entry.dn)
    out: list[LdifEntry] = []
    for entry in entries:
        attributes = {name: list(values) for name, values in entry.attributes.items()}
        computed = [dn.encode("utf-8") for dn in groups_of.get(normalise_dn(entry.dn), [])]
        if computed:
            key = next((k for k in attributes if k.lower() == "memberof"), "memberOf")
            known = {normalise_dn(v.decode("utf-8", "replace")) for v in attributes.get(key, [])}
            attributes[key] = attributes.get(key, []) + [
                v for v in computed if normalise_dn(v.decode("utf-8")) not in known
            ]
        if not entry.values("entryUUID"):
            stable = uuid.uuid5(_ENTRY_UUID_NAMESPACE, normalise_dn(entry.dn))
            attributes["entryUUID"] = [str(stable).encode("ascii")]
        out.append(LdifEntry(dn=entry.dn, attributes=attributes))
    return out


def mock_connection_from_ldif(
    path: Path, bind_dn: str | None = None, password: str | None = None
) -> ldap3.Connection:
    """A bound ldap3 ``MOCK_SYNC`` connection over the entries of an LDIF file.

    The connection raises exceptions like a real one (``raise_exceptions=True``), pages searches,
    and refuses a bind whose password does not equal the entry's ``userPassword`` exactly (the mock
    alone would compare case-insensitively). Without ``bind_dn`` the bind is anonymous.

    :raises LdifError: the file is not LDIF this reader accepts.
    :raises OSError: the file cannot be read.
    :raises ldap3.core.exceptions.LDAPInvalidCredentialsResult: the bind is refused.
    """
    entries = with_computed_attributes(read_ldif(path))
    server = ldap3.Server("ldif-mock", get_info=ldap3.NONE)
    user = safe_dn(bind_dn) if bind_dn else None
    conn = ldap3.Connection(
        server,
        user=user,
        password=password if bind_dn else None,
        client_strategy=ldap3.MOCK_SYNC,
        raise_exceptions=True,
    )
    strategy: Any = conn.strategy
    for entry in entries:
        strategy.add_entry(entry.dn, {name: list(values) for name, values in entry.attributes.items()})
    if bind_dn is not None:
        _check_password(entries, bind_dn, password or "")
    conn.bind()
    return conn


def _check_password(entries: list[LdifEntry], bind_dn: str, password: str) -> None:
    wanted = normalise_dn(bind_dn)
    entry = next((e for e in entries if normalise_dn(e.dn) == wanted), None)
    stored = entry.values("userPassword") if entry is not None else []
    given = password.encode("utf-8")
    if not password or not any(hmac.compare_digest(given, value) for value in stored):
        raise LDAPInvalidCredentialsResult(
            result=49, description="invalidCredentials", dn="", message="invalid credentials"
        )
