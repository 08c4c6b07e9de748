"""The store's trail: the audit entries and licence checks, as ``xesync explain``, ``xesync report``
and the licence checker read them.

:class:`TrailQueries` is a mixin of :class:`xesync.store.Store` (committed data, under its lock),
which supplies :meth:`TrailQueries._run`; writes go through :class:`xesync.store.Transaction`.
Nothing here logs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from xesync.model import AuditEntry, LicenceCheck
from xesync.store_schema import (
    AUDIT_COLUMNS,
    LICENCE_COLUMNS,
    audit_from_row,
    encode_occurrence,
    encode_ts,
    licence_check_from_row,
)

T = TypeVar("T")


class TrailQueries:
    """Reads of the audit trail and the licence checks (see the module docstring)."""

    __slots__ = ()

    def _run(self, query: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    def audit(
        self,
        *,
        room: str | None = None,
        uid: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Return the newest ``limit`` audit entries that match every filter given, oldest first.

        :param room: only this room's entries.
        :param uid: only this meeting's entries (every occurrence).
        :param since: only entries made at or after this time.
        :param limit: at most this many entries (the newest).
        :raises ValueError: ``limit`` is less than 1.
        :returns: the entries in the order they were made.
        """
        _check_limit(limit)
        sql, params = _select(
            f"SELECT {AUDIT_COLUMNS} FROM audit",  # noqa: S608 - constants only
            ("room = ?", room), ("uid = ?", uid), ("at >= ?", since),
        )  # fmt: skip
        rows = self._run(lambda c: c.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall())
        return [audit_from_row(row) for row in reversed(rows)]

    def licence_checks(
        self, room: str, uid: str, occurrence: datetime | None = None, *, limit: int = 10
    ) -> list[LicenceCheck]:
        """Return the newest ``limit`` licence checks of one meeting or occurrence, newest first.

        :raises ValueError: ``limit`` is less than 1.
        """
        _check_limit(limit)
        sql = (
            f"SELECT {LICENCE_COLUMNS} FROM licence_check "  # noqa: S608 - constants only
            "WHERE room = ? AND uid = ? AND occurrence = ? ORDER BY checked_at DESC, id DESC LIMIT ?"
        )
        params = (room, uid, encode_occurrence(occurrence), limit)
        rows = self._run(lambda c: c.execute(sql, params).fetchall())
        return [licence_check_from_row(row) for row in rows]

    def latest_licence_check(
        self, room: str, uid: str, occurrence: datetime | None = None
    ) -> LicenceCheck | None:
        """Return the newest licence check of one meeting or occurrence, or ``None`` if never checked."""
        checks = self.licence_checks(room, uid, occurrence, limit=1)
        return checks[0] if checks else None

    def licence_history(self, *, uid: str | None = None, since: datetime | None = None) -> list[LicenceCheck]:
        """Return the licence checks of one meeting (every occurrence and room) and/or since a time,
        oldest first (for ``xesync explain``, ``xesync report`` and the checker's schedule)."""
        sql, params = _select(
            f"SELECT {LICENCE_COLUMNS} FROM licence_check",  # noqa: S608 - constants only
            ("uid = ?", uid), ("checked_at >= ?", since),
        )  # fmt: skip
        rows = self._run(lambda c: c.execute(sql + " ORDER BY id", params).fetchall())
        return [licence_check_from_row(row) for row in rows]


def _select(select: str, *filters: tuple[str, str | datetime | None]) -> tuple[str, list[str]]:
    """``select`` with a WHERE of every filter whose value is given (times encoded), and its parameters."""
    given = [(clause, value) for clause, value in filters if value is not None]
    params = [encode_ts(v) if isinstance(v, datetime) else v for _, v in given]
    where = " AND ".join(clause for clause, _ in given)
    return (f"{select} WHERE {where}" if where else select), params


def _check_limit(limit: int) -> None:
    if limit < 1:
        msg = f"limit must be at least 1, got {limit}"
        raise ValueError(msg)
