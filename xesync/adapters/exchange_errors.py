"""The one table that turns exchangelib's errors into :mod:`xesync.errors` (the adapter edge).

:class:`~xesync.adapters.exchange.ExchangeCalendarSource` wraps every call into exchangelib in
:func:`ews_errors`, so nothing vendor-shaped leaves the adapter (ports.py). Three outcomes:

transient
    Throttling past ``exchange.max_wait``, HTTP 503/5xx, dropped connections and timeouts
    (ews.md §1.15): :class:`~xesync.errors.ServiceUnavailableError` with the server's back-off, if
    any. The engine keeps the room's sync state, so the change comes again next pass.
mailbox access
    The service account cannot open the room (impersonation denied, no such mailbox, delegate rights
    missing, bad credentials): :class:`~xesync.errors.ExchangeAccessError` with a hint naming the fix.
one item
    The item is gone or its changekey is refused: :class:`~xesync.errors.ExchangeItemError`, raised
    only where the call is about one item (``item_id`` given); elsewhere the same codes mean the room
    cannot be read and are treated as transient.

exchangelib raises one class per EWS response code (ews.md §2.4), all below ``ResponseMessageError``
→ ``TransportError`` → ``EWSError``; the table is keyed by class name so that the order of the base
classes cannot shadow a specific code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from exchangelib.errors import ErrorServerBusy, EWSError, RateLimitError

from xesync.errors import ExchangeAccessError, ExchangeItemError, ServiceUnavailableError, XesyncError

# Codes that mean "ask again later". ErrorTimeoutExpired is what exchangelib makes of a dropped or
# refused connection (util.py post_ratelimited), and it raises it at once with one pooled session
# even under FaultTolerance (ews.md §4 trap 8).
_TRANSIENT = frozenset(
    {
        "ErrorServerBusy",
        "ErrorTimeoutExpired",
        "ErrorInternalServerTransientError",
        "ErrorInternalServerError",
        "ErrorExceededConnectionCount",
        "ErrorTooManyObjectsOpened",
        "ErrorConnectionFailed",
        "ErrorConnectionFailedTransientError",
        "ErrorMailboxMoveInProgress",
        "ErrorMailboxStoreUnavailable",
        "ErrorExceededSubscriptionCount",
        "TransportError",
        "SOAPError",
        "MalformedResponseError",
        "CASError",
    }
)

# Codes that mean "this mailbox cannot be opened by the service account", with what to change.
# The hints take the service account's user name and the room.
_ACCESS_HINTS = {
    "ErrorImpersonateUserDenied": (
        "Grant the ApplicationImpersonation role to {user} with a management scope that includes {room} "
        "(Exchange Online: full_access_as_app), or set exchange.impersonation = false and give {user} "
        "FullAccess on the room."
    ),
    "ErrorNonExistentMailbox": "No mailbox has this address: check rooms[].email against Exchange.",
    "ErrorAccessDenied": (
        "{user} may not open this calendar: with exchange.impersonation = true grant "
        "ApplicationImpersonation on {room}; with delegate access grant FullAccess (or calendar Editor)."
    ),
    "ErrorInvalidExchangeImpersonationHeaderData": (
        "App-only OAuth needs impersonation: set exchange.impersonation = true (ews.md §1.1)."
    ),
    "ErrorSendAsDenied": "{user} may not send as {room}: grant ApplicationImpersonation or SendAs.",
    "ErrorFolderNotFound": "The room mailbox has no calendar folder that {user} can see.",
    "UnauthorizedError": (
        "Exchange refused the credentials of {user}: check exchange.username, the password and "
        "exchange.auth_type."
    ),
    "RedirectError": "Exchange redirected the request: exchange.url must be the full /EWS/Exchange.asmx URL.",
}

# Codes about one item: gone, stale changekey, not answerable in its state.
_ITEM = frozenset(
    {
        "ErrorItemNotFound",
        "ErrorIrresolvableConflict",
        "ErrorInvalidChangeKey",
        "ErrorChangeKeyRequiredForWriteOperations",
        "ErrorStaleObject",
        "ErrorInvalidIdMalformed",
        "ErrorItemSave",
        "ErrorItemCorrupt",
        "ErrorCorruptData",
        "ErrorCalendarIsCancelledForAccept",
        "ErrorCalendarIsCancelledForDecline",
        "ErrorCalendarIsOrganizerForAccept",
        "ErrorCalendarIsOrganizerForDecline",
        "ErrorCalendarIsDelegatedForAccept",
        "ErrorCalendarIsDelegatedForDecline",
        "ErrorMailRecipientNotFound",
    }
)


def code_of(exc: BaseException) -> str:
    """The EWS response code (exchangelib's class name) of ``exc``."""
    return type(exc).__name__


def translate(exc: BaseException, *, room: str, user: str, item_id: str | None = None) -> XesyncError:
    """The :mod:`xesync.errors` error for an exchangelib (or requests) error ``exc``.

    :param room: the room the call was for.
    :param user: the service account's user name, for the hints.
    :param item_id: the item the call was about, ``None`` for room-level calls.
    """
    code = code_of(exc)
    if isinstance(exc, RateLimitError):
        # FaultTolerance gave up: the server asked for more back-off than exchange.max_wait allows.
        return ServiceUnavailableError("ews", f"throttled past exchange.max_wait ({exc.value})", exc.wait)
    if code in _ACCESS_HINTS:
        return ExchangeAccessError(room, code, _ACCESS_HINTS[code].format(user=user, room=room))
    transient = code in _TRANSIENT or isinstance(exc, ErrorServerBusy | requests.RequestException)
    if item_id is not None and (code in _ITEM or not transient):
        # Any other per-item answer (ErrorQuotaExceeded, ErrorMessageSizeExceeded, …) also means this
        # item cannot be written as it is; the engine records it against the meeting.
        return ExchangeItemError(room, item_id, code)
    # Transient codes, requests' own errors, and unknown codes on room-level reads. An unknown code
    # is treated as transient on purpose: the engine then keeps the room's sync state and asks again
    # next pass, instead of skipping changes it never saw.
    back_off = exc.back_off if isinstance(exc, ErrorServerBusy) else None
    return ServiceUnavailableError("ews", f"{code}: {exc}", back_off or None)


@contextmanager
def ews_errors(*, room: str, user: str, item_id: str | None = None) -> Iterator[None]:
    """Translate any exchangelib error raised inside the block (see :func:`translate`)."""
    try:
        yield
    except (EWSError, requests.RequestException) as exc:
        raise translate(exc, room=room, user=user, item_id=item_id) from exc
