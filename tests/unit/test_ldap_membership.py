"""Group-membership strategies that need a server we cannot run here (AD's in-chain rule)."""

from __future__ import annotations

import re
from pathlib import Path

from structlog.testing import capture_logs

from xesync import events
from xesync.adapters.ldap import IN_CHAIN_RULE, LdapResolver
from xesync.config import GroupMembership, LdapConfig, Secret
from xesync.directory import Person
from xesync.lab.ldif import mock_connection_from_ldif

LAB_LDIF = Path(__file__).resolve().parents[2] / "xesync" / "lab" / "data" / "lab.ldif"
PMP = "cn=cms-pmp,ou=groups,dc=lab,dc=example"
IN_CHAIN = re.compile(r"\(memberOf:" + re.escape(IN_CHAIN_RULE) + r":=(.*)\)")


def unescape(value: str) -> str:
    return re.sub(r"\\([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


class ActiveDirectoryLike:
    """The lab LDIF on ldap3's mock, answering the rootDSE and the in-chain rule as AD does.

    Only those two kinds of search are answered here (the mock supports neither); every other
    call goes to the real mock connection. ``chains`` maps a user DN to every group it is in,
    transitively, as AD computes it.
    """

    def __init__(self, chains: dict[str, set[str]]) -> None:
        self._conn = mock_connection_from_ldif(LAB_LDIF)
        self._chains = {k.lower(): {g.lower() for g in v} for k, v in chains.items()}
        self._answer: list[dict] | None = None
        self.in_chain_searches: list[tuple[str, str, object]] = []

    def __getattr__(self, name):
        return getattr(self._conn, name)

    @property
    def response(self):
        return self._answer if self._answer is not None else self._conn.response

    def search(self, base, query, search_scope=None, attributes=None, **kwargs):
        self._answer = None
        if base == "":
            caps = [b"1.2.840.113556.1.4.800", b"1.2.840.113556.1.4.1670"]
            self._answer = [
                {"type": "searchResEntry", "dn": "", "raw_attributes": {"supportedCapabilities": caps}}
            ]
            return True
        match = IN_CHAIN.fullmatch(query)
        if match:
            self.in_chain_searches.append((base, query, search_scope))
            hit = unescape(match.group(1)).lower() in self._chains.get(base.lower(), set())
            self._answer = [{"type": "searchResEntry", "dn": base, "raw_attributes": {}}] if hit else []
            return True
        return self._conn.search(base, query, search_scope=search_scope, attributes=attributes, **kwargs)


class OneConnection:
    """A session (xesync.adapters.ldap.LdapSession) over one given connection: the test's stand-in server."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def call(self, operation):
        return operation(self.conn)

    def close(self) -> None:
        pass


def directory(conn, mode=GroupMembership.AUTO, groups=(PMP,)) -> LdapResolver:
    cfg = LdapConfig(
        url="ldaps://ad.lab.example",
        bind_dn="cn=svc-xesync,ou=service,dc=lab,dc=example",
        password=Secret("lab-ldap-secret"),
        base_dn="dc=lab,dc=example",
        pmp_groups=groups,
        username_attribute="uid",
        group_membership=mode,
    )
    return LdapResolver(cfg, OneConnection(conn))


def test_auto_picks_in_chain_on_active_directory():
    """When the rootDSE announces AD, 'auto' uses the in-chain rule and the server's answer decides."""
    conn = ActiveDirectoryLike(
        {"uid=bob,ou=people,dc=lab,dc=example": {"cn=video-team,ou=groups,dc=lab,dc=example", PMP}}
    )
    resolver = directory(conn)
    with capture_logs() as logs:
        bob = resolver.resolve("bob@lab.example")
    assert isinstance(bob, Person)
    assert (bob.pmp, bob.pmp_group) == (True, PMP)
    assert resolver.membership is GroupMembership.IN_CHAIN
    assert conn.in_chain_searches == [
        ("uid=bob,ou=people,dc=lab,dc=example", f"(memberOf:{IN_CHAIN_RULE}:={PMP})", "BASE")
    ]
    detected = next(e for e in logs if e["event"] == events.LDAP_MEMBERSHIP_DETECTED)
    assert detected["membership"] == "in_chain"


def test_in_chain_without_a_match_is_not_pmp():
    """A user the server does not find in the chain of any PMP+ group is not PMP+."""
    conn = ActiveDirectoryLike({})
    carol = directory(conn, GroupMembership.IN_CHAIN).resolve("carol@lab.example")
    assert isinstance(carol, Person)
    assert carol.pmp is False


def test_in_chain_escapes_the_group_dn():
    """A PMP+ group DN with filter metacharacters is escaped inside the in-chain filter."""
    odd = "cn=pmp (all)*,ou=groups,dc=lab,dc=example"
    conn = ActiveDirectoryLike({"uid=alice,ou=people,dc=lab,dc=example": {odd}})
    alice = directory(conn, GroupMembership.IN_CHAIN, groups=(odd,)).resolve("alice@lab.example")
    assert isinstance(alice, Person)
    assert alice.pmp_group == odd
    assert (
        conn.in_chain_searches[0][1]
        == f"(memberOf:{IN_CHAIN_RULE}:=cn=pmp \\28all\\29\\2a,ou=groups,dc=lab,dc=example)"
    )


def test_in_chain_on_a_server_that_is_not_ad_warns():
    """in_chain against a non-AD server (here the mock) finds nobody PMP+, and warns with the fix."""
    resolver = directory(mock_connection_from_ldif(LAB_LDIF), GroupMembership.IN_CHAIN)
    with capture_logs() as logs:
        alice = resolver.resolve("alice@lab.example")
    assert isinstance(alice, Person)
    assert alice.pmp is False
    warning = next(e for e in logs if e["event"] == events.LDAP_MEMBERSHIP_DETECTED)
    assert warning["log_level"] == "warning"
    assert "member_of or walk" in warning["reason"]
