"""The resolver's answer cache: TTL from ldap.cache_ttl on an injected clock, negative answers too."""

from __future__ import annotations

from datetime import timedelta

import pytest

from xesync.config import LdapConfig, Secret
from xesync.directory import NotInDirectory, Person
from xesync.errors import LdapUnavailableError
from xesync.lab.ldif_directory import LdifDirectory

BASE = """\
dn: dc=lab,dc=example
objectClass: dcObject
dc: lab

dn: cn=svc,dc=lab,dc=example
objectClass: simpleSecurityObject
userPassword: pw

dn: uid=alice,dc=lab,dc=example
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Example
mail: alice@lab.example

dn: uid=dave,dc=lab,dc=example
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: Null
mail: dave@lab.example
"""
PMP_WITH_ALICE = (
    "\ndn: cn=pmp,dc=lab,dc=example\nobjectClass: groupOfNames\nmember: uid=alice,dc=lab,dc=example\n"
)
PMP_WITHOUT_ALICE = (
    "\ndn: cn=pmp,dc=lab,dc=example\nobjectClass: groupOfNames\nmember: uid=dave,dc=lab,dc=example\n"
)
NEWCOMER = (
    "\ndn: uid=new,dc=lab,dc=example\nobjectClass: inetOrgPerson\nuid: new\ncn: New\nsn: N\n"
    "mail: new@lab.example\n"
)
TTL = timedelta(minutes=15)


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ldif(tmp_path):
    """A small directory in an LDIF file, alice in the PMP+ group."""
    path = tmp_path / "dir.ldif"
    path.write_text(BASE + PMP_WITH_ALICE, encoding="utf-8")
    return path


def directory_for(path, clock, ttl=TTL) -> LdifDirectory:
    cfg = LdapConfig(
        url="ldap://unused.invalid",
        bind_dn="cn=svc,dc=lab,dc=example",
        password=Secret("pw"),
        base_dn="dc=lab,dc=example",
        pmp_groups=("cn=pmp,dc=lab,dc=example",),
        username_attribute="uid",
        cache_ttl=ttl,
    )
    return LdifDirectory(path, cfg, clock=clock)


def change_directory(directory: LdifDirectory, path, text: str) -> None:
    """Rewrite the LDIF and drop the connection, so the next query reloads it."""
    path.write_text(text, encoding="utf-8")
    directory.close()


def test_found_answers_last_exactly_the_ttl(ldif):
    """A found person is served from the cache until cache_ttl has passed, then looked up again."""
    clock = Clock()
    directory = directory_for(ldif, clock)
    first = directory.resolve("alice@lab.example")
    assert isinstance(first, Person)
    assert first.pmp
    change_directory(directory, ldif, BASE + PMP_WITHOUT_ALICE)
    clock.now += TTL.total_seconds() - 0.001
    assert directory.resolve("alice@lab.example") is first
    clock.now += 0.002
    again = directory.resolve("alice@lab.example")
    assert isinstance(again, Person)
    assert again.pmp is False


def test_not_in_directory_is_cached_too(ldif):
    """'Not in directory' is cached like any answer, so a newcomer shows up after the TTL."""
    clock = Clock()
    directory = directory_for(ldif, clock)
    assert directory.resolve("new@lab.example") == NotInDirectory("new@lab.example")
    change_directory(directory, ldif, BASE + PMP_WITH_ALICE + NEWCOMER)
    clock.now += TTL.total_seconds() - 1
    assert isinstance(directory.resolve("new@lab.example"), NotInDirectory)
    clock.now += 2
    assert isinstance(directory.resolve("new@lab.example"), Person)


def test_cache_key_ignores_case(ldif):
    """'ALICE@LAB.EXAMPLE' is answered from alice@lab.example's cache entry without the directory."""
    clock = Clock()
    directory = directory_for(ldif, clock)
    directory.resolve("alice@lab.example")
    ldif.unlink()
    directory.close()
    assert isinstance(directory.resolve("ALICE@LAB.EXAMPLE"), Person)
    with pytest.raises(LdapUnavailableError):
        directory.resolve("dave@lab.example")


def test_zero_ttl_disables_the_cache(ldif):
    """cache_ttl = 0 asks the directory every time."""
    clock = Clock()
    directory = directory_for(ldif, clock, ttl=timedelta(0))
    assert isinstance(directory.resolve("new@lab.example"), NotInDirectory)
    change_directory(directory, ldif, BASE + PMP_WITH_ALICE + NEWCOMER)
    assert isinstance(directory.resolve("new@lab.example"), Person)


def test_forget_empties_the_cache(ldif):
    """forget() drops every cached answer before its TTL."""
    clock = Clock()
    directory = directory_for(ldif, clock)
    assert isinstance(directory.resolve("new@lab.example"), NotInDirectory)
    change_directory(directory, ldif, BASE + PMP_WITH_ALICE + NEWCOMER)
    directory.forget()
    assert isinstance(directory.resolve("new@lab.example"), Person)
