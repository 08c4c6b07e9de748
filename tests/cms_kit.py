"""Helpers for the CmsCallMonitor contract tests: booking through TMS so that the TMS simulator runs the
call on the lab CMS, turning simulator knobs, counting CMS requests and deciding a verdict as the engine will.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from xesync.adapters.tms import TmsBookingSink
from xesync.cms_facts import MeetingOnCms
from xesync.directory import Person
from xesync.lab import Lab
from xesync.licence import OwnerFixup, StartFacts, decide
from xesync.meetings import ConferenceRequest, Owner
from xesync.ports import CallMonitor


def person(name: str, *, pmp: bool) -> Person:
    """The organiser as the directory resolves a lab user (only what the rules compare)."""
    return Person(
        dn=f"uid={name},ou=people,dc=lab,dc=example",
        username=name,
        tms_username=f"LAB\\{name}",
        display_name=name,
        first_name=None,
        last_name=None,
        email=f"{name}@lab.example",
        addresses=frozenset({f"{name}@lab.example"}),
        jid=f"{name}@lab.example",
        guid=None,
        pmp=pmp,
    )


def book(
    sink: TmsBookingSink, lab: Lab, key: str, organiser: str, title: str
) -> tuple[str, datetime, datetime]:
    """Book a one-hour meeting two hours ahead of the lab clock; returns its info text, start and end."""
    start = lab.clock.now().replace(second=0, microsecond=0) + timedelta(hours=2)
    saved = sink.save(
        ConferenceRequest(
            external_key=key,
            title=title,
            start=start,
            end=start + timedelta(hours=1),
            owner=Owner(username=f"LAB\\{organiser}", email=f"{organiser}@lab.example"),
            system_ids=(11,),
        )
    )
    assert saved.info_text
    return saved.info_text, start, start + timedelta(hours=1)


def tms_knobs(lab: Lab, **knobs) -> None:
    """Set TMS simulator knobs (how it passes the owner, how it resets spaces)."""
    assert lab.tms is not None
    lab.tms.control("knobs", "POST", knobs)


def cms_knobs(lab: Lab, **knobs) -> None:
    """Set CMS simulator knobs."""
    assert lab.cms is not None
    lab.cms.control("knobs", "PUT", knobs)


def verdict_for(
    monitor: CallMonitor, organiser: Person, meeting: MeetingOnCms, fixup: OwnerFixup | None = None
):
    """Gather the facts for a running meeting as the engine will, and decide."""
    space = meeting.space
    owner_user = monitor.user(space.owner_id) if space and space.owner_id else None
    return decide(
        StartFacts(
            organiser=organiser,
            organiser_user=monitor.find_user(jid=organiser.jid, email=organiser.email),
            meeting=meeting,
            owner_user=owner_user,
            licensing=monitor.licensing(),
            fixup=fixup,
        )
    )


def count(lab: Lab, operation: str) -> int:
    """Requests of one CMS operation template the lab has seen since its reset."""
    return lab.requests.count("cms", operation)


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was just released)."""
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1"
