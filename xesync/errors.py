"""The one error tree of xesync.

Errors take **data, not sentences**: each class stores what happened as attributes and builds its
message itself, so that the CLI and the daemon (the only two boundaries that turn errors into advice)
can log the fields and print an actionable line.

::

    XesyncError
    ├── UserError                 configuration or usage (exit 2, and only these); no traceback
    │   └── ConfigError           every problem found, each with its key path
    ├── StoreError                the state store cannot be opened or used as it is (exit 74)
    │   ├── StoreVersionError     the store was written by a newer xesync
    │   └── StoreMigrationError   SQLite refused a migration step
    ├── TransientError            retry later: throttling, 5xx, timeouts, a server gone away
    │   ├── StoreBusyError        another writer held the store's lock past the busy timeout
    │   ├── LdapUnavailableError
    │   └── ServiceUnavailableError  EWS, TMS or CMS unreachable, 5xx, throttled past max_wait
    ├── PermanentError            this item cannot succeed as it is
    │   ├── TmsFaultError         a SOAP fault from TMS (error code + text)
    │   │   ├── TmsConflictError      a participant is already booked (Strict mode)
    │   │   ├── TmsOwnerError         the owner is not (and cannot be made) a TMS user
    │   │   ├── TmsLimitError         a booking limit (past, window, recurrence, title, system)
    │   │   ├── TmsNotFoundError      the conference does not exist (any more)
    │   │   └── TmsStaleVersionError  the Version sent is out of date: re-read, then save again
    │   ├── ExchangeItemError     one room item cannot be read or written (gone, stale changekey)
    │   ├── ExchangeAccessError   a room mailbox cannot be opened (impersonation, no such mailbox)
    │   ├── CmsHttpError          an HTTP error from CMS (status + failureDetails code)
    │   ├── LdapLookupError       the directory refused a lookup
    │   └── LdapTlsError          the directory's certificate could not be verified
    └── SyncSafetyError           a guard tripped
        └── MassCancelRefusedError
"""

from __future__ import annotations

from collections.abc import Sequence


class XesyncError(Exception):
    """Root of every error xesync raises on purpose."""

    # Exit 2 is reserved for UserError (configuration and usage), as click uses it for usage errors;
    # tests/unit/test_cli.py checks that no other class claims it.
    exit_code = 1


class UserError(XesyncError):
    """A problem the user fixes (configuration, command-line usage); shown without a traceback."""

    exit_code = 2


class ConfigError(UserError):
    """The configuration is invalid; ``problems`` lists every problem with its key path."""

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} configuration problem(s){where}:\n{lines}")


class StoreError(XesyncError):
    """The state store at ``path`` cannot be opened or used (permissions, journal mode, file system).

    Not a :class:`UserError`: a corrupt file or a full disk is no configuration problem, and exit 2
    must mean one. A closed store is a bug (``RuntimeError``); a locked one is :class:`StoreBusyError`.

    :param path: the database file.
    :param reason: what went wrong, e.g. ``"cannot set mode 0700 on /var/lib/xesync: not the owner"``.
    :param hint: what to change.
    """

    def __init__(self, path: str, reason: str, hint: str = "Check sync.state_dir and its ownership.") -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"state store {path}: {reason}. {hint}")

    exit_code = 74  # EX_IOERR


class StoreVersionError(StoreError):
    """The store's schema is newer than this xesync knows: a later release wrote it.

    :param path: the database file.
    :param found: the schema version in the file (``PRAGMA user_version``).
    :param supported: the newest schema version this release knows.
    """

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            path,
            f"schema version {found} is newer than {supported}, the newest this xesync knows",
            "Run the xesync release that wrote it, or point sync.state_dir elsewhere.",
        )


class StoreMigrationError(StoreError):
    """SQLite refused a migration step; the step was rolled back, the file is at ``version - 1``.

    :param path: the database file.
    :param version: the schema version the failed step leads to.
    :param reason: SQLite's message, e.g. ``"database or disk is full"``.
    """

    def __init__(self, path: str, version: int, reason: str) -> None:
        self.version = version
        super().__init__(
            path,
            f"migration to schema version {version} failed ({reason}); the file is unchanged",
            "Free disk space or fix the file system, then start xesync again.",
        )


class TransientError(XesyncError):
    """A failure that may go away if the same call is made later (throttling, 5xx, timeouts)."""

    exit_code = 75  # EX_TEMPFAIL


class PermanentError(XesyncError):
    """This item cannot succeed as it is; retrying the same call will fail again."""

    exit_code = 1


class TmsFaultError(PermanentError):
    """A SOAP fault from the TMS Booking API.

    :param code: the TMS error code (``detail/errorcode``), e.g. ``-2147218253``, or the symbolic
        code such as ``SYSTEM_ALREADY_BOOKED`` when TMS gives one.
    :param text: the fault string as TMS sent it.
    :param operation: the SOAP operation that failed.
    """

    def __init__(self, code: str, text: str, operation: str | None = None) -> None:
        self.code = code
        self.text = text
        self.operation = operation
        op = f" {operation}" if operation else ""
        super().__init__(f"TMS{op} fault {code}: {text}")


class TmsConflictError(TmsFaultError):
    """A participant (room system) is already booked in the period, or TMS found no call route."""


class TmsOwnerError(TmsFaultError):
    """The owner named in the booking is not a TMS user and TMS could not create it (ERR_USER_NOT_FOUND)."""


class TmsLimitError(TmsFaultError):
    """The booking breaks a TMS limit (tms-booking-api.md §11): past, window, recurrence, title, system."""


class TmsNotFoundError(TmsFaultError):
    """The conference (or occurrence) does not exist in TMS, or no longer does."""


class TmsStaleVersionError(TmsFaultError):
    """The ``Version`` sent is older than TMS's (tms-booking-api.md §7.3): re-read, then save again."""


class ServiceUnavailableError(TransientError):
    """EWS, TMS or CMS could not be asked: refused or dropped connection, timeout, 5xx, throttling.

    :param service: ``"ews"``, ``"tms"`` or ``"cms"``.
    :param reason: what happened, e.g. ``"HTTP 503"`` or ``"connection refused"``.
    :param retry_after: the server's back-off in seconds (``Retry-After``, ``BackOffMilliseconds``),
        if it sent one.
    """

    def __init__(self, service: str, reason: str, retry_after: float | None = None) -> None:
        self.service = service
        self.reason = reason
        self.retry_after = retry_after
        wait = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        super().__init__(f"{service} unavailable: {reason}{wait}")


class ExchangeItemError(PermanentError):
    """One room item cannot be read or written as it is (deleted meanwhile, stale changekey).

    :param room: the room key.
    :param item_id: the Exchange item id, if known.
    :param code: the EWS response code, e.g. ``ErrorItemNotFound``.
    """

    def __init__(self, room: str, item_id: str | None, code: str) -> None:
        self.room = room
        self.item_id = item_id
        self.code = code
        super().__init__(f"room {room!r}: item {item_id or '?'} failed with {code}")


class ExchangeAccessError(PermanentError):
    """A room mailbox cannot be opened by the service account.

    :param room: the room key.
    :param code: the EWS response code, e.g. ``ErrorImpersonateUserDenied`` or ``ErrorNonExistentMailbox``.
    :param hint: what to change.
    """

    def __init__(self, room: str, code: str, hint: str = "") -> None:
        self.room = room
        self.code = code
        self.hint = hint
        more = f". {hint}" if hint else ""
        super().__init__(f"room {room!r}: mailbox refused with {code}{more}")


class CmsHttpError(PermanentError):
    """An HTTP error from the Cisco Meeting Server API.

    :param status: the HTTP status code.
    :param failure: the ``failureDetails`` child element name (e.g. ``coSpaceDoesNotExist``), if any.
    :param path: the API path that was requested.
    """

    def __init__(self, status: int, failure: str | None, path: str) -> None:
        self.status = status
        self.failure = failure
        self.path = path
        detail = f" ({failure})" if failure else ""
        super().__init__(f"CMS {path} answered HTTP {status}{detail}")


class StoreBusyError(TransientError):
    """Another process held the state store's write lock past the busy timeout; retry later.

    :param path: the database file.
    :param waited_s: how long the write lock was waited for.
    """

    def __init__(self, path: str, waited_s: float) -> None:
        self.path = path
        self.waited_s = waited_s
        super().__init__(
            f"state store {path} stayed locked by another writer for {waited_s:g} s; "
            "is a second xesync running against the same sync.state_dir?"
        )


class LdapUnavailableError(TransientError):
    """The directory could not be reached or went away mid-operation; retry later."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"directory {url} unavailable: {reason}")


class LdapLookupError(PermanentError):
    """The directory answered, but refused the lookup (bad bind, bad base DN, insufficient access)."""

    def __init__(self, dn: str, reason: str) -> None:
        self.dn = dn
        self.reason = reason
        super().__init__(f"directory lookup under {dn!r} failed: {reason}")


class LdapTlsError(PermanentError):
    """The directory's TLS certificate could not be verified."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"TLS verification failed for {url}: {reason}. Set ldap.ca_file to the CA that signed "
            "the directory's certificate (PEM), or fix the server name in ldap.url to match it."
        )


class SyncSafetyError(XesyncError):
    """A safety guard refused to go on."""

    exit_code = 3


class MassCancelRefusedError(SyncSafetyError):
    """Exchange suddenly returned no meetings for a room that has bookings; cancelling was refused."""

    def __init__(self, room: str, count: int) -> None:
        self.room = room
        self.count = count
        super().__init__(
            f"room {room!r}: Exchange returned no meetings but {count} booking(s) exist in TMS; "
            "refusing to cancel them all. Check the room's calendar, then re-run with --force-cancel."
        )
