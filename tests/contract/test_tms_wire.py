"""TmsBookingSink on the wire: bodies against the vendor WSDL, headers, request costs, DST series.

Bodies are recorded from the adapter's own ``requests`` session, then validated against the schema
embedded in the vendor WSDL (tms-booking-api.md §1), as ``tests/simulators/tms/tms_wire.py`` does for
the simulator's tests. The WSDL is from an older TMS and lacks the TMS 15 operations xesync uses, so:

- ``SaveConferenceWithMode`` / ``SaveConferenceRecInstanceWithMode``: their ``Conference`` is validated
  as the ``Conference`` of the WSDL's ``SaveConference`` / ``SaveConferenceRecInstance`` (the same type),
  after the TMS 15 additions (§1: ``ConferenceTimeZoneRules``, ``Version``, ``ConferenceLanguage``, …) are
  checked for their §8.1 position and removed; ``BookingMode`` is checked against §9.
- ``Get/DeleteConference(Instance)ByExternalId``: their documented parameters (§6.3) are those of the
  WSDL's ``GetConferenceIdByExternalId`` (``ExternalSourceId``, ``ExternalConferenceId``,
  ``RecurrenceIdUTC``), so they are validated under that element.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import xmlschema
from lxml import etree

from xesync.adapters.tms import TmsBookingSink
from xesync.adapters.tms_codec import conference_element
from xesync.config.model import Config
from xesync.lab import Lab
from xesync.meetings import ConferenceRequest, Frequency, OccurrenceChange, Owner, Recurrence
from xesync.xmlsafe import parse

NS = "http://tandberg.net/2004/02/tms/external/booking/"
RS = "http://tandberg.net/2004/02/tms/external/booking/remotesetup/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSDL_DIR = Path(__file__).resolve().parents[2] / "xesync" / "lab" / "tms" / "wsdl"
OSLO = ZoneInfo("Europe/Oslo")
ALICE = Owner(username="LAB\\alice", first_name="Alice", last_name="Example", email="alice@lab.example")

# tms-booking-api.md §8.1: the Conference element order (H15), TMS 15 additions included.
CONFERENCE_ORDER = [
    "ConferenceId", "Title", "StartTimeUTC", "EndTimeUTC", "RecurrenceInstanceIdUTC",
    "RecurrenceInstanceType",
    "FirstOccurrenceRecInstanceIdUTC", "RecurrencePattern", "OwnerId", "OwnerUserName", "OwnerFirstName",
    "OwnerLastName", "OwnerEmailAddress", "ConferenceType", "Bandwidth", "PictureMode", "Encrypted",
    "DataConference", "ShowExtendOption", "Password", "BillingCode", "ISDNRestrict", "ExternalConference",
    "EmailTo", "ConfBundleId", "ConfOwnerId", "ConferenceInfoText", "ConferenceInfoHtml", "UserMessageText",
    "ExternalSourceId", "ExternalPrimaryKey", "DetachedFromExternalSourceId",
    "DetachedFromExternalPrimaryKey",
    "Participants", "RecordedConferenceUri", "WebConferencePresenterUri", "WebConferenceAttendeeUri",
    "ISDNBandwidth", "IPBandwidth", "ConferenceLanguage", "ConferenceTimeZoneRules", "ConferenceState",
    "Version", "Location", "Invitees", "SecretCode", "MeetingSource", "PrivacyFlag", "JoinUri", "JoinUrl",
    "TransactionId",
]  # fmt: skip
# §1: Conference elements TMS 14/15 added beyond the WSDL.
TMS15_CONFERENCE = {
    "EmailTo", "ConfBundleId", "ConfOwnerId", "DetachedFromExternalSourceId",
    "DetachedFromExternalPrimaryKey",
    "ConferenceLanguage", "ConferenceTimeZoneRules", "ConferenceState", "Version", "Location", "Invitees",
    "SecretCode", "MeetingSource", "PrivacyFlag", "JoinUri", "JoinUrl", "TransactionId",
}  # fmt: skip
RULE_ORDER = [
    "ValidFrom",
    "Id",
    "DisplayName",
    "BaseOffsetInMinutes",
    "Daylight",
    "DaylightOffsetInMinutes",
    "Standard",
]
BY_EXTERNAL_ID = {
    "GetConferenceByExternalId",
    "GetConferenceInstanceByExternalId",
    "DeleteConferenceByExternalId",
    "DeleteConferenceInstanceByExternalId",
}


def wsdl_schema(name: str) -> xmlschema.XMLSchema:
    """The ``<s:schema>`` embedded in a vendor WSDL."""
    root = parse((WSDL_DIR / name).read_bytes())
    schema = root.find(".//{http://www.w3.org/2001/XMLSchema}schema")
    return xmlschema.XMLSchema(etree.tostring(schema).decode())


BOOKING_SCHEMA = wsdl_schema("bookingservice.wsdl")
REMOTE_SCHEMA = wsdl_schema("remotesetupservice.wsdl")


def local(el: etree._Element) -> str:
    return etree.QName(el).localname


def in_order(names: list[str], order: list[str]) -> bool:
    positions = [order.index(n) for n in names]
    return positions == sorted(positions) and len(set(positions)) == len(positions)


def check_conference(conference: etree._Element, wrapper: str) -> None:
    """§8.1 order for every element, then the WSDL's Conference type for the elements it knows."""
    names = [local(c) for c in conference]
    assert in_order(names, CONFERENCE_ORDER), names
    stripped = copy.deepcopy(conference)
    for item in list(stripped):
        if local(item) in TMS15_CONFERENCE:
            stripped.remove(item)
    rules = conference.find(f"{{{NS}}}ConferenceTimeZoneRules")
    if rules is not None:
        for rule in rules:
            assert in_order([local(c) for c in rule], RULE_ORDER)
    op = etree.Element(f"{{{NS}}}{wrapper}", nsmap={None: NS})
    op.append(stripped)
    BOOKING_SCHEMA.validate(op)


def validate_body(body: bytes) -> str:
    """Validate one recorded request as the module docstring says; return its operation."""
    root = parse(body)
    assert etree.QName(root).namespace == SOAP12
    op_el = root.find(f"{{{SOAP12}}}Body")[0]
    op = local(op_el)
    ns = etree.QName(op_el).namespace
    header = root.find(f"{{{SOAP12}}}Header/{{{ns}}}ExternalAPIVersionSoapHeader")
    assert header is not None
    assert [local(c) for c in header] == ["ClientVersionIn", "ClientIdentifierIn", "ClientSession"]
    if ns == RS or op in BOOKING_SCHEMA.elements:
        (REMOTE_SCHEMA if ns == RS else BOOKING_SCHEMA).validate(op_el)
    elif op in ("SaveConferenceWithMode", "SaveConferenceRecInstanceWithMode"):
        assert [local(c) for c in op_el] == ["Conference", "BookingMode"]
        assert op_el[1].text in ("Strict", "BestEffortForced")
        check_conference(op_el[0], op.removesuffix("WithMode"))
    elif op in BY_EXTERNAL_ID:
        renamed = copy.deepcopy(op_el)
        renamed.tag = f"{{{NS}}}GetConferenceIdByExternalId"
        BOOKING_SCHEMA.validate(renamed)
    else:
        pytest.fail(f"no schema check for {op}")
    return op


class Recorder:
    """Records every request body the adapter's session sends."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.http = requests.Session()
        self.http.hooks["response"].append(self._hook)

    def _hook(self, response: requests.Response, *_args, **_kwargs) -> None:
        body = response.request.body
        self.bodies.append(body if isinstance(body, bytes) else (body or "").encode())


@pytest.fixture
def recorder() -> Recorder:
    """A recording requests session."""
    return Recorder()


@pytest.fixture
def sink(lab_config: Config, recorder: Recorder) -> Iterator[TmsBookingSink]:
    """The adapter on the recording session."""
    sink = TmsBookingSink(lab_config.tms, http=recorder.http)
    yield sink
    sink.close()


def hour_ahead(lab: Lab, days: int = 2) -> datetime:
    return lab.clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=days)


def request(key: str, start: datetime, **kw) -> ConferenceRequest:
    return ConferenceRequest(
        external_key=key,
        title=kw.pop("title", "Wire"),
        start=start,
        end=start + timedelta(hours=1),
        time_zone=kw.pop("time_zone", "Europe/Oslo"),
        system_ids=kw.pop("system_ids", (11,)),
        **kw,
    )


def test_every_request_body_validates_against_the_wsdl_schema(lab: Lab, sink, recorder):
    """Every operation the adapter sends, singles and series alike, passes the WSDL schema checks."""
    start = hour_ahead(lab)
    sink.save(request("w-1", start, owner=ALICE, system_ids=(11, 12)))
    series = Recurrence(
        frequency=Frequency.WEEKLY, weekdays=(start.isoweekday(),), start_date=start.date(), count=4
    )
    week = timedelta(weeks=1)
    saved = sink.save(
        request(
            "w-2",
            start + timedelta(hours=2),
            recurrence=series,
            exceptions=(
                OccurrenceChange(recurrence_id=start + timedelta(hours=2) + week),
                OccurrenceChange(
                    recurrence_id=start + timedelta(hours=2) + 2 * week,
                    start=start + timedelta(hours=4) + 2 * week,
                    end=start + timedelta(hours=5) + 2 * week,
                ),
            ),
        )
    )
    sink.save(request("w-2", start + timedelta(hours=2), recurrence=series, version=saved.version,
                      conference_id=saved.conference_id, owner=ALICE))  # fmt: skip
    sink.find("w-1")
    sink.find_occurrence("w-2", start + timedelta(hours=2) + 3 * week)
    sink.save_occurrence(
        "w-2", start + timedelta(hours=2) + 3 * week, start + 3 * week, start + 3 * week + timedelta(hours=1)
    )
    sink.delete_occurrence("w-2", start + timedelta(hours=2))
    sink.delete("w-1")
    sink.system_ids()
    ops = [validate_body(body) for body in recorder.bodies]
    assert set(ops) >= {
        "SaveConferenceWithMode",
        "GetConferenceByExternalId",
        "GetConferenceInstanceByExternalId",
        "SaveConferenceRecInstanceWithMode",
        "DeleteConferenceInstanceByExternalId",
        "DeleteConferenceByExternalId",
        "GetSystems",
    }


def test_every_request_carries_the_configured_client_version_and_the_session(
    lab: Lab, lab_config, sink, recorder
):
    """ClientVersionIn is tms.client_version on every call; after the handshake all send the session."""
    start = hour_ahead(lab)
    sink.save(request("h-1", start))
    sink.find("h-1")
    sink.delete("h-1")
    headers = [
        parse(b).find(f"{{{SOAP12}}}Header/{{{NS}}}ExternalAPIVersionSoapHeader") for b in recorder.bodies
    ]
    assert {h.findtext(f"{{{NS}}}ClientVersionIn") for h in headers} == {str(lab_config.tms.client_version)}
    sessions = [h.findtext(f"{{{NS}}}ClientSession") for h in headers]
    assert sessions[0] == ""  # no session yet: TMS answers with a suggested id (§3.4)
    assert sessions[1] == sink.session_id != ""
    assert set(sessions[1:]) == {sink.session_id}


def test_save_on_a_warm_session_costs_exactly_one_request(lab: Lab, sink):
    """Once a session exists, creating a booking and updating it cost one TMS request each."""
    start = hour_ahead(lab)
    sink.save(request("cost-0", start))  # warms the session (2 requests: the handshake)
    lab.requests.reset()
    created = sink.save(request("cost-1", start + timedelta(hours=2), owner=ALICE))
    assert lab.requests.snapshot("tms")["tms"]["total"] == 1
    sink.save(request("cost-1", start + timedelta(hours=3), owner=ALICE, version=created.version,
                      conference_id=created.conference_id))  # fmt: skip
    assert lab.requests.snapshot("tms")["tms"]["operations"] == {"SaveConferenceWithMode": 2}


def test_a_cold_save_costs_two_requests_for_the_session_handshake(lab: Lab, sink):
    """The very first save of a process is a blank-session fault plus the retry with the suggested id."""
    sink.save(request("cold-1", hour_ahead(lab)))
    assert lab.requests.snapshot("tms")["tms"]["operations"] == {"SaveConferenceWithMode": 2}


def next_oslo_dst_change(after: datetime) -> datetime:
    """The first UTC instant after ``after`` at which Oslo's offset changes."""
    moment = after
    offset = moment.astimezone(OSLO).utcoffset()
    while moment.astimezone(OSLO).utcoffset() == offset:
        moment += timedelta(hours=1)
    return moment


def test_weekly_oslo_series_keeps_its_local_start_across_the_dst_change(lab: Lab, sink):
    """A weekly 09:00 Europe/Oslo series crossing a DST change starts at 09:00 Oslo on both sides in TMS."""
    change = next_oslo_dst_change(lab.clock.now() + timedelta(days=1))
    first_day = (change - timedelta(weeks=2)).astimezone(OSLO).date()
    local_starts = [datetime.combine(first_day + timedelta(weeks=i), time(9), tzinfo=OSLO) for i in range(4)]
    utc_starts = [s.astimezone(UTC) for s in local_starts]
    assert utc_starts[0] < change < utc_starts[-1]
    assert len({s.hour for s in utc_starts}) == 2  # the UTC start does move by the DST hour
    series = Recurrence(
        frequency=Frequency.WEEKLY, weekdays=(first_day.isoweekday(),), start_date=first_day, count=4
    )
    sink.save(request("dst-1", utc_starts[0], recurrence=series))
    for rid in utc_starts:
        found = sink.find_occurrence("dst-1", rid)
        assert found is not None, rid
        assert found.start == rid
        assert found.start.astimezone(OSLO).time() == time(9)
        assert found.end - found.start == timedelta(hours=1)


def test_the_schema_check_bites_on_a_missing_required_element():
    """The validator refuses a Conference without ConferenceType: its passing means something."""
    conference = codec_conference()
    check_conference(conference, "SaveConference")
    conference.remove(conference.find(f"{{{NS}}}ConferenceType"))
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        check_conference(conference, "SaveConference")


def codec_conference() -> etree._Element:
    start = datetime(2027, 3, 1, 8, tzinfo=UTC)
    return conference_element(request("bite", start, owner=ALICE), source_id="xesync:lab")
