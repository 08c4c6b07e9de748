"""The TMS simulator's state: users, systems, bookings, transactions and client sessions.

The store holds data and the rules that do not depend on a save (sessions, owner resolution,
transactions, lookups); ``booking.py`` holds the save/delete/end rules.
"""

from __future__ import annotations

import random
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from xesync.lab.fixture import LabFixture
from xesync.lab.tms.knobs import TmsKnobs
from xesync.lab.tms.model import Booking, Occurrence, TmsSystem, TmsUser, Transaction
from xesync.lab.tms.soap import Code, TmsFault

SERVICE_USER_ID = 16387  # the id CAP showed for the API user
FIRST_USER_ID = 16400
FIRST_VERSION = 49434700  # CAP: a large integer
FIRST_TRANSACTION_ID = 1000


@dataclass(slots=True)
class Session:
    """A ``ClientSession`` id and when it was issued (lab time)."""

    session_id: str
    issued: datetime


class TmsStore:
    """Everything the simulated TMS knows. Callers hold :attr:`lock` around reads and writes."""

    def __init__(self, fixture: LabFixture, knobs: TmsKnobs, guids: dict[str, str] | None = None) -> None:
        self.lock = threading.RLock()
        self.fixture = fixture
        self.knobs = knobs
        self._guids = guids or {}
        self.rng = random.Random(knobs.seed)
        self.users: dict[int, TmsUser] = {}
        self.systems: dict[int, TmsSystem] = {}
        self.bookings: dict[int, Booking] = {}
        self.index: dict[int, tuple[Booking, Occurrence | None]] = {}
        self.transactions: list[Transaction] = []
        self.sessions: dict[str, Session] = {}
        self._suggested: Session | None = None
        self._next_user = FIRST_USER_ID
        self._next_conference = knobs.conference_id_start
        self._next_numeric = knobs.numeric_id_start
        self._next_version = FIRST_VERSION
        self._next_transaction = FIRST_TRANSACTION_ID
        self.seed()

    # ---------------------------------------------------------------------------------- seeding

    def seed(self) -> None:
        """Users and systems from the fixture: the service user, directory users, rooms."""
        netbios = self.fixture.netbios
        self.users[SERVICE_USER_ID] = TmsUser(
            user_id=SERVICE_USER_ID,
            username=self.knobs.username,
            first_name="TMS",
            last_name="API",
            email=f"{self.knobs.username.split(chr(92))[-1]}@{self.fixture.domain}",
            hidden=True,
        )
        for user in self.fixture.users:
            if user.in_directory:  # TMS synced its users from the directory; externals are unknown
                self.add_user(
                    username=f"{netbios}\\{user.username}",
                    first_name=user.first_name,
                    last_name=user.last_name,
                    email=user.email,
                    ad_guid=self._guids.get(user.username.casefold())
                    or self._guids.get(user.email.casefold()),
                )
        for room in self.fixture.rooms:
            self.add_system(
                system_id=room.tms_system_id,
                name=room.name,
                sip_uri=room.email,
                allow_bookings=bool(room.settings.get("tms_allow_bookings", True)),
            )

    def add_user(
        self,
        *,
        username: str,
        first_name: str = "",
        last_name: str = "",
        email: str = "",
        ad_guid: str | None = None,
        auto_created: bool = False,
        user_id: int | None = None,
    ) -> TmsUser:
        """Add (or replace, by user name) a user."""
        existing = self.user_by_name(username)
        if user_id is None:
            user_id = existing.user_id if existing else self._next_user
        self._next_user = max(self._next_user, user_id + 1)
        user = TmsUser(
            user_id=user_id,
            username=username,
            first_name=first_name,
            last_name=last_name,
            email=email,
            ad_guid=ad_guid,
            auto_created=auto_created,
        )
        self.users[user_id] = user
        return user

    def add_system(
        self,
        *,
        system_id: int,
        name: str,
        sip_uri: str = "",
        allow_bookings: bool = True,
        details: Mapping[str, str] | None = None,
    ) -> TmsSystem:
        """Add (or replace) a system; ``details`` override the remote-setup strings derived here.

        A lab codec is ``<name>-codec.<domain>`` with its web interface there, its H.323 id the room
        name and its E.164 alias ``9<system id>`` (made-up but well-formed values, as TMS would show).
        """
        host = f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}-codec.{self.fixture.domain}"
        values = {
            "network_address": host,
            "web_interface_url": f"http://{host}/",
            "description": f"{name} meeting room system",
            "h323_id": name,
            "e164_alias": f"9{system_id:05d}",
            **(details or {}),
        }
        system = TmsSystem(
            system_id=system_id, name=name, sip_uri=sip_uri, allow_bookings=allow_bookings, **values
        )
        self.systems[system_id] = system
        return system

    # ---------------------------------------------------------------------------------- sessions

    def check_session(self, presented: str | None, now: datetime) -> str:
        """The valid session id presented, else a fault carrying a suggested id (§3.4).

        :raises TmsFault: ``ERR_CLIENT_SESSION_BLANK`` for a blank id, ``ERR_CLIENT_SESSION_EXPIRED``
            for an unknown or expired one.
        """
        presented = (presented or "").strip()
        if not presented:
            raise TmsFault(
                Code.ERR_CLIENT_SESSION_BLANK, "The client session id is blank.", session=self.suggest(now)
            )
        session = self.sessions.get(presented)
        if session is None or not self._valid(session, now):
            raise TmsFault(
                Code.ERR_CLIENT_SESSION_EXPIRED,
                "The client session id is expired.",
                session=self.suggest(now),
            )
        return presented

    def _valid(self, session: Session, now: datetime) -> bool:
        life = timedelta(seconds=self.knobs.session_lifetime_s + self.knobs.session_grace_s)
        return session.issued <= now < session.issued + life

    def suggest(self, now: datetime) -> str:
        """A session id to retry with: the last suggestion while it is fresh (CAP), else a new one."""
        last = self._suggested
        if (
            last is not None
            and last.session_id in self.sessions
            and timedelta(0) <= now - last.issued < timedelta(seconds=self.knobs.session_reuse_s)
        ):
            return last.session_id
        session = Session(session_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), issued=now)
        self.sessions[session.session_id] = session
        self._suggested = session
        return session.session_id

    def expire_session(self, session_id: str | None) -> None:
        """Forget a session (fault injection ``session_expired``)."""
        if session_id:
            self.sessions.pop(session_id.strip(), None)
        if self._suggested is not None and self._suggested.session_id == (session_id or "").strip():
            self._suggested = None

    # ---------------------------------------------------------------------------------- users

    def user_by_name(self, username: str) -> TmsUser | None:
        """A user by ``DOMAIN\\name`` (or a bare name), case-insensitively."""
        key = username.strip().casefold()
        bare = key.split("\\", 1)[-1]
        exact = next((u for u in self.users.values() if u.username.casefold() == key), None)
        if exact is not None or "\\" in key:
            return exact
        return next((u for u in self.users.values() if u.short_name.casefold() == bare), None)

    def user_by_email(self, email: str) -> TmsUser | None:
        """A user by e-mail, case-insensitively."""
        key = email.strip().casefold()
        return next((u for u in self.users.values() if u.email and u.email.casefold() == key), None)

    def resolve_owner(
        self,
        *,
        owner_id: int | None,
        username: str | None,
        email: str | None,
        first_name: str | None,
        last_name: str | None,
        caller: TmsUser,
    ) -> TmsUser:
        """The owner of a save (§7.4): look up by the knob's order, else auto-create, else fault.

        :raises TmsFault: ``ERR_USER_NOT_FOUND`` when the owner is neither known nor creatable.
        """
        given = {
            "username": username or None,
            "email": email or None,
            "id": owner_id if owner_id is not None and owner_id > 0 else None,
        }
        if all(v is None for v in given.values()):
            return caller  # no owner named: the authenticated (service) user owns it
        for how in self.knobs.owner_lookup:
            value = given.get(how)
            if value is None:
                continue
            found = (
                self.user_by_name(str(value))
                if how == "username"
                else self.user_by_email(str(value))
                if how == "email"
                else self.users.get(int(value))
            )
            if found is not None:
                return found
        if self.knobs.book_on_behalf and self.knobs.auto_create_users and (username or email):
            name = username or f"{self.fixture.netbios}\\{(email or '').split('@', 1)[0]}"
            return self.add_user(
                username=name,
                first_name=first_name or "",
                last_name=last_name or "",
                email=email or "",
                auto_created=True,
            )
        raise TmsFault(Code.ERR_USER_NOT_FOUND, "The owner could not be found or created.")

    # ---------------------------------------------------------------------------------- ids

    def next_conference_id(self) -> int:
        """A new ``ConferenceId``."""
        value = self._next_conference
        self._next_conference += 1
        return value

    def next_numeric_id(self) -> int:
        """A new numeric conference id (the dial-in number)."""
        value = self._next_numeric
        self._next_numeric += 1
        return value

    def next_version(self) -> int:
        """A new ``Version``; every save increments it (§7.3)."""
        self._next_version += 1
        return self._next_version

    def new_password(self) -> str:
        """A 4-digit PIN, as TMS generates."""
        return f"{self.rng.randrange(1000, 10000)}"

    # ---------------------------------------------------------------------------------- lookups

    def find(self, conference_id: int) -> tuple[Booking, Occurrence | None]:
        """A booking (and the occurrence, when the id is an instance's) by ``ConferenceId``.

        :raises TmsFault: ``MEETINGNOTFOUND``.
        """
        hit = self.index.get(conference_id)
        if hit is None:
            raise TmsFault(Code.MEETINGNOTFOUND, f"Conference {conference_id} was not found.")
        return hit

    def find_external(self, source: str | None, key: str | None) -> Booking | None:
        """The non-deleted booking with this ``(ExternalSourceId, ExternalPrimaryKey)``."""
        if not key:
            return None
        for booking in self.bookings.values():
            if (
                not booking.deleted
                and booking.external_primary_key == key
                and (booking.external_source_id or "") == (source or "")
            ):
                return booking
        return None

    def register(self, booking: Booking) -> None:
        """Index a booking and its occurrences by id (occurrences dropped by an update are forgotten)."""
        for stale in [cid for cid, (b, _) in self.index.items() if b is booking]:
            del self.index[stale]
        self.bookings[booking.booking_id] = booking
        self.index[booking.booking_id] = (booking, None if booking.recurrent else booking.occurrences[0])
        for occ in booking.occurrences:
            if occ.conference_id != booking.booking_id:
                self.index[occ.conference_id] = (booking, occ)

    # ---------------------------------------------------------------------------------- transactions

    def record(self, booking: Booking, kind: str, caller: TmsUser, conference_id: int | None = None) -> None:
        """Append a transaction (every create, update or delete, §7.5) and stamp the booking."""
        tx = Transaction(
            transaction_id=self._next_transaction,
            conference_id=conference_id or booking.booking_id,
            kind=kind,
            performed_by=caller.user_id,
            participant_ids=",".join(str(s) for s in booking.systems()),
            external_source_id=booking.external_source_id,
            external_primary_key=booking.external_primary_key,
        )
        self._next_transaction += 1
        self.transactions.append(tx)
        booking.transaction_id = tx.transaction_id

    def transactions_since(self, since: int) -> tuple[list[Transaction], bool]:
        """Transactions after ``since`` (exclusive), one page, and whether more remain.

        :raises TmsFault: for an id that does not exist (§7.5; the code is a knob).
        """
        if since != 0 and not any(t.transaction_id == since for t in self.transactions):
            raise TmsFault(self.knobs.code("unknown_transaction"), f"Transaction {since} does not exist.")
        after = [t for t in self.transactions if t.transaction_id > since]
        size = self.knobs.transactions_page_size
        return after[:size], len(after) > size
