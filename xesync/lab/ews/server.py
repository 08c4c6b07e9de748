"""The EWS simulator: HTTP entry, auth, impersonation, dispatch on the SOAP body, faults.

``POST /EWS/Exchange.asmx`` is dispatched on the local name of the first child of ``s:Body``
(exchangelib sends no ``SOAPAction``, ``ews.md`` §2.1). Every non-fault answer carries
``ServerVersionInfo``. Malformed SOAP gets an ``ErrorSchemaValidation`` fault; the parser never
resolves entities (``xesync.xmlsafe``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog

from xesync import events
from xesync.lab.base import ControlError
from xesync.lab.clock import LabClock
from xesync.lab.ews import control as ctl
from xesync.lab.ews.auth import Authenticator
from xesync.lab.ews.context import Context, Principal, SoapFaultError
from xesync.lab.ews.meetings import Meetings
from xesync.lab.ews.notify import Hub, open_stream, subscribe, unsubscribe
from xesync.lab.ews.notify import get_events as op_get_events
from xesync.lab.ews.ops_read import convert_id, find_item, get_folder, get_item
from xesync.lab.ews.ops_sync import sync_folder_hierarchy, sync_folder_items
from xesync.lab.ews.ops_write import create_item, delete_item, update_item
from xesync.lab.ews.parse import RequestError
from xesync.lab.ews.settings import EwsSettings, RoomPolicy, parse_settings, room_policy
from xesync.lab.ews.store import Store
from xesync.lab.ews.xml import (
    SOAP,
    Element,
    M,
    child,
    children,
    envelope,
    error,
    local,
    operation_response,
    server_version_info,
    soap_fault,
    text_of,
    to_bytes,
)
from xesync.lab.faults import Fault
from xesync.lab.fixture import LabFixture
from xesync.lab.http import LabRequest, LabResponse, RequestInfo, xml_response
from xesync.xmlsafe import UnsafeXmlError, parse

log = structlog.get_logger(__name__)

EWS_PATH = "/ews/exchange.asmx"
Operation = Callable[[Context, Element], Element]
OPERATIONS: dict[str, Operation] = {
    "ConvertId": convert_id,
    "GetFolder": get_folder,
    "FindItem": find_item,
    "GetItem": get_item,
    "SyncFolderItems": sync_folder_items,
    "SyncFolderHierarchy": sync_folder_hierarchy,
    "Subscribe": subscribe,
    "Unsubscribe": unsubscribe,
    "GetEvents": op_get_events,
    "CreateItem": create_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
}
# Real EWS operations the lab does not serve: answered with a fault naming the gap, never a 404.
UNSERVED = frozenset(
    {
        "ResolveNames",
        "GetRoomLists",
        "GetRooms",
        "FindFolder",
        "CreateFolder",
        "DeleteFolder",
        "UpdateFolder",
        "MoveItem",
        "CopyItem",
        "SendItem",
        "GetAttachment",
        "CreateAttachment",
        "DeleteAttachment",
        "GetUserAvailability",
        "GetServerTimeZones",
        "ExpandDL",
        "GetUserOofSettings",
        "ArchiveItem",
        "ExportItems",
        "UploadItems",
        "EmptyFolder",
        "MarkAsJunk",
        "FindPeople",
        "GetPersona",
        "GetDelegate",
        "GetMailTips",
        "GetSearchableMailboxes",
        "GetUserConfiguration",
        "GetUserSettings",
        "SendNotification",
    }
)
# Calls that need no mailbox: exchangelib's protocol-level probes.
PROTOCOL_LEVEL = frozenset({"ConvertId"})
FAULT_KINDS = frozenset(
    {"server_busy", "exceeded_connection_count", "truncated", "invalid_sync_state", "unauthorized"}
)


class EwsSimulator:
    """Exchange Web Services as exchangelib 5.6 speaks it, for the lab's mailboxes.

    :param fixture: the lab fixture (rooms, users, the ``[ews]`` table).
    :param clock: the lab clock.
    """

    name = "ews"
    fault_kinds = FAULT_KINDS

    def __init__(self, fixture: LabFixture, clock: LabClock) -> None:
        self.fixture = fixture
        self.clock = clock
        self.settings: EwsSettings = parse_settings(fixture)
        self.policies: dict[str, RoomPolicy] = {
            r.email.casefold(): room_policy(r, self.settings.room_defaults) for r in fixture.rooms
        }
        self.auth = Authenticator(fixture, self.settings)
        self._parsed = threading.local()
        self._build()
        clock.subscribe(self._tick)

    def _build(self) -> None:
        self.store = Store(self.clock.now)
        for room in self.fixture.rooms:
            self.store.add_mailbox(room.email, room.name, "room")
        for user in self.fixture.users:
            self.store.add_mailbox(user.email, user.name, "user")
        self.meetings = Meetings(self.store, self.policies, self.settings.rba_delay_s)
        self.hub = Hub(self.store)

    def _tick(self, now: Any) -> None:
        self.meetings.tick(now)

    # ------------------------------------------------------------------------------- LabService

    def classify(self, request: LabRequest) -> RequestInfo:
        """The operation (first child of ``s:Body``) and the mailbox acted on; never raises."""
        self._parsed.value = None
        path = request.path.lower()
        if "/oauth2/" in path and path.endswith("/token"):
            return RequestInfo("OAuthToken")
        if path != EWS_PATH:
            return RequestInfo("unknown")
        try:
            root = parse(request.body)
        except UnsafeXmlError:
            return RequestInfo("malformed")
        self._parsed.value = (request, root)
        op = _operation_el(root)
        mailbox = request.header("X-AnchorMailbox") or _impersonated(root)
        return RequestInfo(local(op) if op is not None else "malformed", mailbox or None)

    def gate(self, request: LabRequest) -> LabResponse | None:
        """Windows authentication in front of ``/EWS/Exchange.asmx`` (``xesync.lab.winauth``)."""
        if request.path.lower() != EWS_PATH or request.method != "POST":
            return None
        return self.auth.gate(request)

    def handle(self, request: LabRequest, faults: list[Fault]) -> LabResponse:
        """Answer one HTTP request."""
        path = request.path.lower()
        if "/oauth2/" in path and path.endswith("/token") and request.method == "POST":
            return self.auth.token(request, self.clock.now())
        if path != EWS_PATH:
            return LabResponse(status=404, body=b"Not Found", content_type="text/plain")
        if request.method != "POST":
            return LabResponse(status=405, body=b"EWS answers POST only", headers=[("Allow", "POST")])
        kinds = {f.kind for f in faults}
        if "unauthorized" in kinds:
            return self.auth.challenge()
        principal = self.auth.check(request, self.clock.now())
        if principal is None:
            return self.auth.challenge()
        for fault in faults:
            if fault.kind == "server_busy":
                return self._server_busy(request, fault)
            if fault.kind == "exceeded_connection_count":
                return self._fault(
                    SoapFaultError(
                        "ErrorExceededConnectionCount",
                        "You have exceeded the available concurrent connections.",
                    )
                )
        response = self._serve(request, principal, kinds)
        if "truncated" in kinds and isinstance(response.body, bytes):
            response.truncate_at = max(1, len(response.body) // 2)
        return response

    # ------------------------------------------------------------------------------- dispatch

    def _root(self, request: LabRequest) -> Element:
        cached = getattr(self._parsed, "value", None)
        if cached is not None and cached[0] is request:
            root: Element = cached[1]
            return root
        return parse(request.body)

    def _serve(self, request: LabRequest, principal: Principal, kinds: set[str]) -> LabResponse:
        try:
            root = self._root(request)
        except UnsafeXmlError as exc:
            return self._schema_fault(str(exc))
        if local(root) != "Envelope" or root.tag != f"{{{SOAP}}}Envelope":
            return self._schema_fault("The root element must be a SOAP 1.1 s:Envelope.")
        op_el = _operation_el(root)
        if op_el is None:
            return self._schema_fault("The SOAP Body must hold one EWS request element.")
        op = local(op_el)
        if op_el.tag != f"{{{M}}}{op}" or (op not in OPERATIONS and op != "GetStreamingEvents"):
            if op in UNSERVED and op_el.tag == f"{{{M}}}{op}":
                return self._fault(
                    SoapFaultError("ErrorInvalidOperation", f"The lab simulator does not serve {op}.")
                )
            return self._schema_fault(f"The element '{op}' is not an EWS request the server knows.")
        try:
            ctx = self._context(root, principal, op, kinds)
        except SoapFaultError as exc:
            return self._fault(exc)
        try:
            with self.store.lock:
                if op == "GetStreamingEvents":
                    stream = open_stream(ctx, op_el, self.clock.now)
                    if isinstance(stream, bytes):
                        return xml_response(b'<?xml version="1.0" encoding="utf-8"?>' + stream)
                    return LabResponse(status=200, body=stream, content_type="text/xml; charset=utf-8")
                body = OPERATIONS[op](ctx, op_el)
        except SoapFaultError as exc:
            return self._fault(exc)
        except (ValueError, TypeError) as exc:
            # A value the schema would have refused (bad datetime, bad integer).
            return self._schema_fault(str(exc))
        if op == "SyncFolderItems":
            log.debug(events.LAB_REQUEST_HANDLED, service="ews", operation=op, mailbox=ctx.acting)
        return xml_response(to_bytes(envelope(body, self._version())))

    def _context(self, root: Element, principal: Principal, op: str, kinds: set[str]) -> Context:
        target = _impersonated(root)
        acting: str | None = principal.email.casefold() if principal.email else None
        if target:
            box = self.store.mailbox(target)
            if box is None:
                raise SoapFaultError(
                    "ErrorNonExistentMailbox", f"The SMTP address has no mailbox associated with it: {target}"
                )
            if not _may_impersonate(principal, box.kind):
                raise SoapFaultError(
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                )
            acting = box.email.casefold()
        elif principal.kind == "app" and op not in PROTOCOL_LEVEL:
            # ews.md §1.1: app-only tokens need the ExchangeImpersonation header on every call.
            raise SoapFaultError(
                "ErrorInvalidExchangeImpersonationHeaderData",
                "ExchangeImpersonation SOAP header must be present for this type of OAuth token.",
            )
        flags = {k for k in kinds if k == "invalid_sync_state"}
        return Context(
            store=self.store,
            meetings=self.meetings,
            hub=self.hub,
            settings=self.settings,
            principal=principal,
            acting=acting,
            operation=op,
            now=self.clock.now,
            flags=flags,
        )

    def _version(self) -> Element:
        return server_version_info(self.settings.build, self.settings.version_string)

    def _fault(self, exc: SoapFaultError) -> LabResponse:
        return xml_response(
            to_bytes(envelope(soap_fault(exc.code, exc.message, values=exc.values), None)), 500
        )

    def _schema_fault(self, detail: str) -> LabResponse:
        line, pos = "1", "1"
        return self._fault(
            SoapFaultError(
                "ErrorSchemaValidation",
                "The request failed schema validation.",
                [("LineNumber", line), ("LinePosition", pos), ("Violation", detail[:300])],
            )
        )

    def _server_busy(self, request: LabRequest, fault: Fault) -> LabResponse:
        back_off = int(fault.params.get("back_off_ms", 30000))
        form = str(fault.params.get("form", "fault"))
        text = "The server cannot service this request right now. Try again later."
        if form == "fault":
            return self._fault(
                SoapFaultError("ErrorServerBusy", text, [("BackOffMilliseconds", str(back_off))])
            )
        # The 200 forms (ews.md §2.5): a per-message ErrorServerBusy, or ErrorInternalServerError with an
        # inner ErrorServerBusy. Neither carries a back-off exchangelib honours (trap 9).
        try:
            op_el = _operation_el(self._root(request))
            op = local(op_el) if op_el is not None else "GetFolder"
        except UnsafeXmlError:
            op = "GetFolder"
        resp, msgs = operation_response(op)
        if form == "inner":
            error(
                msgs,
                op,
                "ErrorInternalServerError",
                "An internal server error occurred.",
                values=[("InnerErrorResponseCode", "ErrorServerBusy"), ("InnerErrorMessageText", text)],
            )
        else:
            error(msgs, op, "ErrorServerBusy", text)
        return xml_response(to_bytes(envelope(resp, self._version())))

    # ------------------------------------------------------------------------------- Simulator

    def describe(self, base_url: str) -> dict[str, Any]:
        """The ``ews`` section of the lab's JSON line (lab-contract.md)."""
        return ctl.describe(self, base_url)

    def state(self) -> dict[str, Any]:
        """Mailboxes and item counts, subscriptions, streams, sent messages."""
        return ctl.state(self)

    def reset(self) -> None:
        """Back to the fixture: no mail, subscriptions or tokens, the fixture's knobs; open streams close."""
        with self.store.lock:
            self.hub.close_streams()
            self.settings = parse_settings(self.fixture)  # a test may have turned a knob
            self._build()
        self.auth.forget_tokens()

    def control(self, action: str, method: str, body: Any) -> Any:
        """``/lab/ews/<action>``; see :mod:`xesync.lab.ews.control`."""
        try:
            return ctl.control(self, action, method, body)
        except RequestError as exc:
            raise ControlError(400, f"{exc.code}: {exc.text}") from None


def _operation_el(root: Element) -> Element | None:
    body = child(root, "Body")
    ops = children(body)
    return ops[0] if ops else None


def _impersonated(root: Element) -> str | None:
    header = child(root, "Header")
    sid = child(child(header, "ExchangeImpersonation"), "ConnectingSID")
    if sid is None:
        return None
    for name in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName"):
        value = text_of(sid, name)
        if value:
            return value
    return text_of(sid, "SID") or None


def _may_impersonate(principal: Principal, kind: str) -> bool:
    rights = principal.impersonates
    return rights == "all" or (rights == "rooms" and kind == "room") or (rights == "users" and kind == "user")
