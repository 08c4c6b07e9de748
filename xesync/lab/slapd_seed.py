"""Loading an LDIF into a fresh lab slapd over the wire, in an order its overlays can follow.

:mod:`xesync.lab.slapd` starts the instance and hands :func:`seed` a connection bound as the
``rootdn``. The entries go in as ldap3 adds, not an offline ``slapadd``, so the ``memberof`` overlay
sees every add: parents before children, and groups after the groups they contain. A group in a
membership cycle is added first anyway and its late members are re-added afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException

from xesync.lab.ldif import OPERATIONAL, LdifEntry, normalise_dn
from xesync.lab.slapd_config import SlapdError


def seed(conn: ldap3.Connection, entries: list[LdifEntry], source: Path) -> None:
    """Add the entries over ``conn``: parents first, then groups after their member groups.

    :param conn: a connection bound as the ``rootdn`` (the caller unbinds it).
    :param entries: the LDIF's content records.
    :param source: the LDIF file, named in a :class:`SlapdError`.
    """
    plain, groups, touches = _load_order(entries)
    for entry in [*plain, *groups]:
        try:
            conn.add(entry.dn, attributes=_wire_attributes(entry))
        except LDAPException as exc:
            raise SlapdError(f"{source}: adding {entry.dn!r} failed: {exc}") from None
    # A group in a cycle was added before a group it contains; re-adding those members lets
    # the memberof overlay mark them now that they exist.
    for dn, members in touches:
        changes: dict[str, Any] = {"member": [(ldap3.MODIFY_DELETE, members), (ldap3.MODIFY_ADD, members)]}
        try:
            conn.modify(dn, changes)
        except LDAPException as exc:
            raise SlapdError(f"{source}: completing group {dn!r} failed: {exc}") from None


def _load_order(
    entries: list[LdifEntry],
) -> tuple[list[LdifEntry], list[LdifEntry], list[tuple[str, list[str]]]]:
    """Entries without ``member`` (parents first), groups (member groups first), and cycle repairs."""
    depth = {id(e): len(normalise_dn(e.dn).split(",")) for e in entries}
    plain = sorted((e for e in entries if not e.values("member")), key=lambda e: depth[id(e)])
    pending = sorted((e for e in entries if e.values("member")), key=lambda e: depth[id(e)])
    group_keys = {normalise_dn(e.dn) for e in pending}
    added: set[str] = set()
    ordered: list[LdifEntry] = []
    touches: list[tuple[str, list[str]]] = []
    while pending:
        ready = next(
            (
                g
                for g in pending
                if all(
                    normalise_dn(m) in added or normalise_dn(m) not in group_keys for m in g.text("member")
                )
            ),
            pending[0],  # a cycle: add one group now and repair its later members afterwards
        )
        late = [m for m in ready.text("member") if normalise_dn(m) in group_keys - added]
        if late:
            touches.append((ready.dn, late))
        pending.remove(ready)
        added.add(normalise_dn(ready.dn))
        ordered.append(ready)
    return plain, ordered, touches


def _wire_attributes(entry: LdifEntry) -> dict[str, list[bytes | str]]:
    out: dict[str, list[bytes | str]] = {}
    for name, values in entry.attributes.items():
        if name.lower() in OPERATIONAL:
            continue
        # Text goes as text, so that ldap3 encodes it the way slapd's syntax checks expect.
        decoded: list[bytes | str] = []
        for raw in values:
            try:
                decoded.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                decoded.append(raw)
        out[name] = decoded
    return out
