"""System, cluster and licensing endpoints (cms-api.md §2.9).

``/system/multipartyLicensing`` and ``…/activePersonalLicenses`` report the licence engine's state now;
``/system/MPLicenseUsage`` (2.6+) reports 5-minute snapshots on the lab clock, newest first.
"""

from __future__ import annotations

from datetime import timedelta

from lxml import etree

from xesync.lab.cms import licensing
from xesync.lab.cms.routing import ID, Req, Route, page_of
from xesync.lab.cms.state import CmsState
from xesync.lab.cms.wire import (
    CmsFailure,
    Fields,
    add_fields,
    collection_doc,
    object_doc,
    paging,
    parse_time,
    rfc3339,
    xml_doc,
)
from xesync.lab.http import LabResponse

SOFTWARE = {"2.0": "2.0.13", "2.2": "2.2.14", "2.6": "2.6.1", "3.0": "3.0.1"}
FEATURES = (
    "callBridge",
    "webBridge",
    "turn",
    "ldap",
    "branding",
    "recording",
    "streaming",
    "personal",
    "shared",
)


def _not_in_version(state: CmsState) -> CmsFailure:
    return CmsFailure(404, state.knobs.unrecognised_object)


def status(state: CmsState, _req: Req, _ids: list[str]) -> LabResponse:
    """``GET /system/status`` (root ``<status>``)."""
    knobs = state.knobs
    now = state.now()
    fields: Fields = [
        ("softwareVersion", SOFTWARE[knobs.cms_version]),
        ("uptimeSeconds", max(0, int((now - state.started).total_seconds()))),
        ("activated", None if knobs.at_least("3.0") else True),
        ("clusterEnabled", False),
        ("clusterId", knobs.host_id if knobs.at_least("3.0") else None),
        ("hostId", knobs.host_id),
        ("cdrTime", rfc3339(now)),
        ("callLegsActive", len(state.legs)),
        ("callLegsMaxActive", state.legs_max_active),
        ("callLegsCompleted", state.legs_completed),
        ("audioBitRateOutgoing", 0),
        ("videoBitRateOutgoing", 0),
        ("audioBitRateIncoming", 0),
        ("videoBitRateIncoming", 0),
        ("cdrCorrelatorIndex", len(state.ended_calls) + len(state.calls) if knobs.at_least("2.2") else None),
    ]
    return object_doc("status", None, fields)


def list_bridges(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``GET /callBridges``: this bridge only (no cluster)."""
    items = [(b.id, [("name", b.values["name"])]) for b in state.call_bridges.values()]
    return page_of(state, req, "callBridges", "callBridge", items)


def read_bridge(state: CmsState, _req: Req, ids: list[str]) -> LabResponse:
    """``GET /callBridges/<id>``."""
    bridge = state.call_bridges.get(ids[0])
    if bridge is None:
        raise CmsFailure(404, "callBridgeDoesNotExist")
    return object_doc("callBridge", bridge.id, list(bridge.values.items()))


def licensing_view(state: CmsState, _req: Req, _ids: list[str]) -> LabResponse:
    """``GET /system/licensing``: every feature activated, one year ahead of the lab clock."""
    expiry = (state.now() + timedelta(days=365)).strftime("%Y-%b-%d")
    limits = {"personal": state.knobs.personal_license_limit, "shared": state.knobs.shared_license_limit}
    features: Fields = [
        (name, [("status", "activated"), ("expiry", expiry), ("limit", limits.get(name))])
        for name in FEATURES
    ]
    return object_doc("licensing", None, [("features", features)])


def multiparty(state: CmsState, _req: Req, _ids: list[str]) -> LabResponse:
    """``GET /system/multipartyLicensing``."""
    return object_doc("multipartyLicensing", None, licensing.multiparty_fields(state))


def active_personal(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``GET /system/multipartyLicensing/activePersonalLicenses``: one ``<user>`` per licence in use.

    spec: cms-api.md §2.9 and §6.1: the attribute naming the user is [unconfirmed]; knob
    ``active_licenses_user_attr`` (``id`` or ``jid``).
    """
    rows = licensing.active_personal_licenses(state)
    page = paging(req.query, state.knobs.cap("activePersonalLicenses"))
    root = etree.Element("activePersonalLicenses", {"total": str(len(rows))})
    attr = state.knobs.active_licenses_user_attr
    for key, calls in page.apply(rows):
        user = etree.SubElement(root, "user", {attr: key})
        add_fields(user, [("callsActive", calls), ("weightedCallsActive", float(calls))])
    return xml_doc(root)


def usage(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``GET /system/MPLicenseUsage`` (2.6+) with ``startTime``, ``endTime`` and ``hostId``; newest first."""
    if not state.knobs.at_least("2.6"):
        raise _not_in_version(state)
    start = parse_time("startTime", req.q("startTime") or "") if req.q("startTime") else None
    end = parse_time("endTime", req.q("endTime") or "") if req.q("endTime") else None
    host = req.q("hostId")
    first, last = licensing.usage_window(state, start, end)
    if host and host != state.knobs.host_id:
        last = first - 1
    total = max(0, last - first + 1)
    page = paging(req.query, state.knobs.cap("MPLicenseUsage"))
    indexes = [k for k in range(last - page.offset, last - page.offset - page.count, -1) if k >= first]
    root = etree.Element("MPLicenseUsage", {"total": str(total)})
    for k in indexes:
        at, values = licensing.usage_entry(state, k)
        add_fields(etree.SubElement(root, "entry", {"time": at}), values)
    return xml_doc(root)


def known_hosts(state: CmsState, req: Req, _ids: list[str]) -> LabResponse:
    """``GET /system/MPLicenseUsage/knownHosts`` (2.6+)."""
    if not state.knobs.at_least("2.6"):
        raise _not_in_version(state)
    page = paging(req.query, state.knobs.cap("knownHosts"))
    return collection_doc("knownHosts", "host", 1, page.apply([(state.knobs.host_id, [])]))


def routes() -> list[Route]:
    """Routes of this module."""
    return [
        Route(("system", "status"), {"GET": status}),
        Route(("callBridges",), {"GET": list_bridges}),
        Route(("callBridges", ID), {"GET": read_bridge}),
        Route(("system", "licensing"), {"GET": licensing_view}),
        Route(("system", "multipartyLicensing"), {"GET": multiparty}),
        Route(("system", "multipartyLicensing", "activePersonalLicenses"), {"GET": active_personal}),
        Route(("system", "MPLicenseUsage"), {"GET": usage}),
        Route(("system", "MPLicenseUsage", "knownHosts"), {"GET": known_hosts}),
    ]
