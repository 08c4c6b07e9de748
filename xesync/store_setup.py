"""Opening the state store: file permissions, connection pragmas, schema checks and migrations.

Split from :mod:`xesync.store` (which re-exports what tests and callers use) so that each module
stays readable; the decisions are documented there (durability, privacy, schema).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Final

import structlog

from xesync import events
from xesync.errors import StoreBusyError, StoreError, StoreMigrationError, StoreVersionError
from xesync.store_schema import MIGRATIONS, Migration

log = structlog.get_logger("xesync.store")

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
DEFAULT_BUSY_TIMEOUT: Final = timedelta(seconds=10)
_SUFFIXES: Final = ("", "-wal", "-shm", "-journal")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    # SQLITE_BUSY / SQLITE_LOCKED; the sqlite3 module exposes the code from Python 3.11 on.
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    return "locked" in str(exc) or "busy" in str(exc)


# -- opening: permissions, pragmas, migrations ------------------------------------------------------


def _secure(path: Path) -> None:
    """Create ``path``'s directory (0700) and the file itself (0600), tightening existing ones."""
    directory = path.parent
    try:
        # Raises FileExistsError if the name is taken by something that is not a directory.
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        _secure_directory(path)
        # Created here rather than by sqlite3.connect, which would apply the umask (often 0644).
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        try:
            _tighten(path, FILE_MODE, fd=fd)
        finally:
            os.close(fd)
        for suffix in _SUFFIXES[1:]:
            _secure_side_file(path, Path(f"{path}{suffix}"))
    except OSError as exc:
        where = exc.filename or directory
        raise StoreError(str(path), f"cannot create or secure {where}: {exc.strerror or exc}") from exc


def _secure_directory(path: Path) -> None:
    directory = path.parent
    current = stat.S_IMODE(directory.stat().st_mode)
    if current == DIR_MODE:
        return
    if current & ~DIR_MODE:
        # Tighten only a directory that is evidently ours: chmod 0700 on a shared one (/tmp, /var/lib,
        # a home directory) would break everything else in it, and as root it would succeed.
        ours = {path.name + suffix for suffix in _SUFFIXES}
        others = sorted(p.name for p in directory.iterdir() if p.name not in ours)
        if current & stat.S_ISVTX or others:
            shown = f" (it holds {others[0]!r})" if others else ""
            raise StoreError(
                str(path),
                f"{directory} has mode {current:04o} and is shared{shown}",
                "Point sync.state_dir at a directory of its own; xesync creates it with mode 0700.",
            )
    _tighten(directory, DIR_MODE)


def _secure_side_file(path: Path, side: Path) -> None:
    if not side.exists() and not side.is_symlink():
        return
    if side.is_symlink() or not side.is_file():
        raise StoreError(str(path), f"{side} is not a regular file")
    _tighten(side, FILE_MODE)


def _tighten(target: Path, mode: int, *, fd: int | None = None) -> None:
    current = stat.S_IMODE(os.fstat(fd).st_mode if fd is not None else target.stat().st_mode)
    if current == mode:
        return
    if fd is not None:
        os.fchmod(fd, mode)
    else:
        target.chmod(mode)
    # A new file's mode may differ only by the umask; only a looser existing mode is news.
    if current & ~mode:
        log.warning(events.STORE_MODE_TIGHTENED, path=str(target), old_mode=f"{current:o}", mode=f"{mode:o}")


def _configure(conn: sqlite3.Connection, path: Path, busy_timeout: timedelta) -> None:
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.OperationalError as exc:
        # Switching to WAL needs the file to itself: a writer in another process is no corruption.
        if _is_busy(exc):
            raise StoreBusyError(str(path), busy_timeout.total_seconds()) from exc
        raise _unusable(path, exc) from exc
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from exc
    if str(mode).lower() != "wal":
        raise StoreError(
            str(path),
            f"the WAL journal is not available here (SQLite chose {mode!r})",
            "Keep sync.state_dir on a local file system.",
        )
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def _unusable(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    return StoreError(
        str(path),
        f"not a usable SQLite database ({exc})",
        "Restore it from a backup, or move it aside to start with an empty store.",
    )


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _version(conn: sqlite3.Connection, path: Path, supported: int) -> int:
    found = _user_version(conn)
    if found > supported:
        raise StoreVersionError(str(path), found, supported)
    if found == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise StoreError(
            str(path),
            "a SQLite database, but not an xesync store (it has tables and no schema version)",
            "Point sync.state_dir at a directory of its own.",
        )
    return found


def _rollback(conn: sqlite3.Connection) -> None:
    # Some errors (SQLITE_FULL, SQLITE_IOERR) have already rolled the transaction back.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _migrate(
    conn: sqlite3.Connection,
    path: Path,
    migrations: Sequence[Migration] = MIGRATIONS,
    *,
    busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT,
) -> int:
    """Apply the migrations the file lacks, each in its own transaction; return the final version.

    :raises StoreBusyError: another process held the write lock past ``busy_timeout``.
    :raises StoreMigrationError: SQLite refused a step; that step is rolled back.
    """
    target = len(migrations)
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise StoreBusyError(str(path), busy_timeout.total_seconds()) from exc
            raise _unusable(path, exc) from exc
        try:
            # Read under the write lock: another process may have migrated while we waited for it.
            current = _version(conn, path, target)
            if current == target:
                conn.execute("COMMIT")
                return current
            step = migrations[current]
            try:
                for statement in step.statements:
                    conn.execute(statement)
                # PRAGMA takes no parameters; the version is an int from this module.
                conn.execute(f"PRAGMA user_version = {step.version:d}")
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                # Rolled back below; the error names the step so the log says which one failed.
                raise StoreMigrationError(str(path), step.version, str(exc)) from exc
        except BaseException:
            _rollback(conn)
            raise
        log.info(
            events.STORE_MIGRATED, path=str(path), from_version=current, to_version=step.version,
            summary=step.summary,
        )  # fmt: skip


def _check_migrations(migrations: Sequence[Migration]) -> None:
    # Catches a mis-numbered migration at import time rather than on a customer's database.
    for index, migration in enumerate(migrations, start=1):
        if migration.version != index:
            msg = f"migration {migration.version} is at position {index}; versions must count up from 1"
            raise RuntimeError(msg)


_check_migrations(MIGRATIONS)
