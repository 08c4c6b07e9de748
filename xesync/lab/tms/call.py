"""The context of one TMS SOAP call, shared by both services' operations.

A :class:`Call` is what an operation (:mod:`xesync.lab.tms.operations`,
:mod:`xesync.lab.tms.listings`, :mod:`xesync.lab.tms.remote_setup`) sees of the request: the store,
the envelope, the authenticated caller, the clock and the client's API version. It reads the body's
arguments, builds the "invalid request" fault and renders a conference for this caller;
:func:`response_element` starts every answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from xesync.lab.tms.codec import q, render_conference
from xesync.lab.tms.model import Booking, Occurrence, TmsUser
from xesync.lab.tms.soap import BOOKING_NS, Envelope, TmsFault, default_ns, text
from xesync.lab.tms.store import TmsStore
from xesync.lab.tms.timezones import server_rules


@dataclass(slots=True)
class Call:
    """One SOAP call being answered."""

    store: TmsStore
    env: Envelope
    caller: TmsUser
    now: datetime
    client_version: int
    dial_domain: str

    def invalid(self, message: str) -> TmsFault:
        """A fault for a request the simulator cannot read ("Unspecified Exception", §10.1)."""
        return TmsFault(self.store.knobs.code("invalid_request"), message)

    def arg(self, name: str) -> str | None:
        """The text of a body child."""
        return text(self.env.body, name)

    def int_arg(self, name: str) -> int:
        """An integer body child (a missing ``int`` is 0, as ASMX deserialises it)."""
        raw = self.arg(name)
        try:
            return int(raw) if raw else 0
        except ValueError:
            raise self.invalid(f"{name} must be an integer") from None

    def conference(
        self, parent: etree._Element, tag: str, item: Booking, occ: Occurrence | None, **kw: bool
    ) -> None:
        """Render a conference for this caller."""
        render_conference(
            parent,
            tag,
            item,
            occ,
            now=self.now,
            owner=self.store.users.get(item.owner_id),
            dial_uri=f"{item.numeric_id}@{self.dial_domain}",
            systems=self.store.systems,
            client_version=self.client_version,
            server_rules=server_rules(self.store.knobs.server_time_zone),
            transaction_id_api=self.store.knobs.transaction_id_api,
            **kw,
        )


Handler = Callable[[Call], "etree._Element"]  # noqa: SLF001 - lxml names its element type so


def response_element(op: str, ns: str = BOOKING_NS) -> etree._Element:
    """An empty ``<Op>Response`` with ``ns`` as the default namespace."""
    return etree.Element(q(f"{op}Response", ns), nsmap=default_ns(ns))
