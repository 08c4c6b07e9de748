"""Fixtures for the EWS contract suite: the lab's EWS simulator, driven only through exchangelib 5.6."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    Account,
    Build,
    Configuration,
    Credentials,
    EWSTimeZone,
    FailFast,
    Version,
)
from exchangelib.protocol import close_connections

from xesync.lab.fixture import load_fixture
from xesync.lab.runtime import Lab

LAB_START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
BUILD = Build(15, 1, 2507, 6)
ROOM = "room-oslo@lab.example"
ROOM2 = "room-bergen@lab.example"
ROOM_TENTATIVE = "room-tromso@lab.example"
UTC_TZ = EWSTimeZone("UTC")
OSLO = EWSTimeZone("Europe/Oslo")


def lab_fixture(**ews):
    """The shipped fixture with a frozen clock and fast streaming heartbeats."""
    base = load_fixture()
    return dataclasses.replace(
        base,
        clock_start=LAB_START,
        clock_frozen=True,
        ews={**base.ews, "streaming_keepalive_s": 0.2, **ews},
    )


@pytest.fixture(scope="session")
def lab():
    """One EWS-only lab for the whole contract suite."""
    with Lab(lab_fixture(), only=("ews",), directory=False) as running:
        yield running


@pytest.fixture
def ews(lab):
    """The lab, back at its fixture, with exchangelib's protocol cache cleared after the test."""
    lab.reset()
    yield lab
    lab.clear_faults()
    close_connections()


@pytest.fixture
def url(ews):
    """The EWS endpoint."""
    return ews.describe()["ews"]["url"]


def make_config(url, username, password, *, retry_policy=None, max_connections=None):
    """An explicit exchangelib configuration: version and auth type set, no autodiscover."""
    return Configuration(
        service_endpoint=url,
        credentials=Credentials(username, password),
        auth_type=BASIC,
        version=Version(build=BUILD),
        retry_policy=retry_policy or FailFast(),
        max_connections=max_connections,
    )


@pytest.fixture
def service(url):
    """``service(email, **config)`` -> an impersonating Account of the service account."""

    def make(email, **kwargs):
        config = make_config(url, "svc-xesync@lab.example", "lab-ews-secret", **kwargs)
        return Account(
            email, config=config, autodiscover=False, access_type=IMPERSONATION, default_timezone=UTC_TZ
        )

    return make


@pytest.fixture
def service_as(url):
    """``service_as(username, password, email)`` -> an impersonating Account with any credentials."""

    def make(username, password, email):
        config = make_config(url, username, password)
        return Account(
            email, config=config, autodiscover=False, access_type=IMPERSONATION, default_timezone=UTC_TZ
        )

    return make


@pytest.fixture
def organiser(url, ews):
    """``organiser(email)`` -> a user's own Account (delegate access with the user's password)."""

    def make(email="alice@lab.example", **kwargs):
        user = ews.fixture.user(email)
        config = make_config(url, user.email, user.password, **kwargs)
        return Account(
            email, config=config, autodiscover=False, access_type=DELEGATE, default_timezone=UTC_TZ
        )

    return make
