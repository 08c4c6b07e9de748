"""Directory fixtures: a real OpenLDAP slapd on loopback, and the same LDIF on ldap3's mock strategy.

The ``directory`` fixtures are parametrised over both backends, so every resolver test runs twice:
once against slapd (``pytest.mark.slapd``, the production LdapDirectory) and once on the mock (the
lab's LdifDirectory: the same resolver, only the session differs).
Without slapd the slapd half is skipped locally, and fails when ``CI`` is set (CI installs slapd).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from ldap_lab import LAB_LDIF, PASSWORD, PMP_GROUP

from xesync.adapters.ldap import LdapDirectory, LdapResolver
from xesync.config import LdapConfig, Secret
from xesync.lab.ldif_directory import LdifDirectory
from xesync.lab.slapd import SlapdServer, find_slapd

EXTENDED_LDIF = Path(__file__).resolve().parent / "data" / "extended.ldif"
BASE_DN = "dc=lab,dc=example"
BIND_DN = "cn=svc-xesync,ou=service,dc=lab,dc=example"


def require_slapd() -> None:
    """Skip without slapd; fail instead when CI is set, since CI installs it."""
    if find_slapd() is None:
        message = "slapd is not installed (apt-get install slapd ldap-utils, or `make test`)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def start_slapd(ldif: Path, **options) -> SlapdServer:
    """A started SlapdServer for the lab's service account (the caller stops it)."""
    require_slapd()
    return SlapdServer(ldif=ldif, base_dn=BASE_DN, bind_dn=BIND_DN, password=PASSWORD, **options).start()


def ldap_config(url: str, **overrides) -> LdapConfig:
    """The lab's ``[ldap]`` section for ``url`` (OpenLDAP attribute names), with overrides."""
    values = {
        "url": url,
        "bind_dn": BIND_DN,
        "password": Secret(PASSWORD),
        "base_dn": BASE_DN,
        "pmp_groups": (PMP_GROUP,),
        "username_attribute": "uid",
        "guid_attribute": "entryUUID",
        "tms_domain": "LAB",
        "tms_username_format": "{domain}\\{username}",
        "jid_template": "{username}@lab.example",
        "timeout": timedelta(seconds=5),
    }
    values.update(overrides)
    return LdapConfig(**values)


@pytest.fixture
def slapd_installed() -> None:
    """Require slapd (skip locally, fail under CI)."""
    require_slapd()


@pytest.fixture(scope="session")
def lab_slapd() -> Iterator[SlapdServer]:
    """slapd serving the shipped lab.ldif, with an ldaps:// listener and StartTLS (self-signed)."""
    server = start_slapd(LAB_LDIF, ldaps=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def extended_slapd() -> Iterator[SlapdServer]:
    """slapd serving the extended test LDIF (deep nesting, cycles, aliases, odd DNs)."""
    server = start_slapd(EXTENDED_LDIF)
    yield server
    server.stop()


@pytest.fixture
def fresh_slapd() -> Iterator[SlapdServer]:
    """A slapd of the test's own (lab.ldif), for tests that stop it or change its data."""
    server = start_slapd(LAB_LDIF)
    yield server
    server.stop()


@dataclass
class Backend:
    """Where a parametrised directory test points the resolver."""

    kind: str  # "slapd" or "mock"
    target: str | Path  # the slapd URL, or the LDIF file the mock serves


BACKENDS = [pytest.param("slapd", marks=pytest.mark.slapd, id="slapd"), pytest.param("mock", id="mock")]


@pytest.fixture(params=BACKENDS)
def lab_backend(request) -> Backend:
    """The lab directory, on slapd or on the mock."""
    if request.param == "slapd":
        return Backend("slapd", request.getfixturevalue("lab_slapd").url)
    return Backend("mock", LAB_LDIF)


@pytest.fixture(params=BACKENDS)
def extended_backend(request) -> Backend:
    """The extended test directory, on slapd or on the mock."""
    if request.param == "slapd":
        return Backend("slapd", request.getfixturevalue("extended_slapd").url)
    return Backend("mock", EXTENDED_LDIF)


@pytest.fixture
def make_directory() -> Iterator[Callable[..., LdapResolver]]:
    """Build directories from ``ldap_config(…, **overrides)``; all are closed afterwards.

    A URL gives the production LdapDirectory; an LDIF path gives the lab's LdifDirectory.
    """
    made: list[LdapResolver] = []

    def make(target: str | Path, **overrides) -> LdapResolver:
        if isinstance(target, Path):
            directory: LdapResolver = LdifDirectory(target, ldap_config("ldap://unused.invalid", **overrides))
        else:
            directory = LdapDirectory(ldap_config(target, **overrides))
        made.append(directory)
        return directory

    yield make
    for directory in made:
        directory.close()


@pytest.fixture
def lab_directory(lab_backend, make_directory) -> LdapResolver:
    """A resolver over the lab directory with ``group_membership = auto``."""
    return make_directory(lab_backend.target)
