"""``xesync check``: a preflight against the configured services; one result per check, a fix per failure.

Every check is independent: one that fails (or cannot run because an earlier one failed, e.g. no
TMS answer at all) is reported and the others still run, so an admin sees every problem at once.
The checks only read: nothing is booked, answered or written, except a probe file in the state
directory that is removed again.

The TMS API version and the service user's right to book on behalf of others are asked with two
SOAP calls of their own (``GetDefaultConference`` for the ``VersionSoapHeader``, tms-booking-api.md
§3.3; ``IsTMSBookOnBehalfUser``, §5), because the booking sink has no use for them in a pass.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from xesync import events
from xesync.config.model import Config

log = structlog.get_logger("xesync.check")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the report: what was checked, whether it passed, what was found, and the fix."""

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""


def render(results: list[CheckResult]) -> Iterator[str]:
    """The report's lines: ``PASS``/``FAIL``, the check, what was found; ``fix:`` under each failure."""
    width = max((len(r.name) for r in results), default=0)
    for r in results:
        yield f"{'PASS' if r.ok else 'FAIL'}  {r.name.ljust(width)}  {r.detail}".rstrip()
        if not r.ok and r.fix:
            yield f"      fix: {r.fix}"
    failed = sum(not r.ok for r in results)
    yield f"{len(results) - failed} passed, {failed} failed"


def run_checks(cfg: Config) -> list[CheckResult]:
    """Run every check the configuration calls for, in the order of the report."""
    results: list[CheckResult] = []
    for group in (_exchange, _tms, _cms, _ldap, _state):
        results.extend(group(cfg))
    log.info(events.CHECK_FINISHED, passed=sum(r.ok for r in results), failed=sum(not r.ok for r in results))
    return results


def _attempt(name: str, fix: str, probe: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, ok=True, detail=probe())
    except Exception as exc:  # noqa: BLE001 - every failure becomes a report line, never a traceback
        return CheckResult(
            name, ok=False, detail=f"{type(exc).__name__}: {exc}".splitlines()[0][:300], fix=fix
        )


# ---------------------------------------------------------------------------------- Exchange


def _exchange(cfg: Config) -> Iterator[CheckResult]:
    from xesync.adapters.exchange import ExchangeCalendarSource  # noqa: PLC0415 - exchangelib is heavy

    ex = cfg.exchange
    source = ExchangeCalendarSource(ex, cfg.rooms, cfg.sync.lookahead)
    try:
        rooms = list(cfg.rooms)

        def reach() -> str:
            if not rooms:
                return "no rooms configured"
            source.calendar_id(rooms[0].email)  # GetFolder: the endpoint answers and the credentials work
            return f"{ex.url} answers; build {source.streaming_account(rooms[0].email).version.build}"

        reached = _attempt(
            "exchange reachable", f"check exchange.url ({ex.url}), exchange.username and its password", reach
        )
        yield reached
        how = "impersonation" if ex.impersonation else "delegate access"
        for room in rooms:
            right = (
                f"grant ApplicationImpersonation to {ex.username} for {room.email}"
                if ex.impersonation
                else f"give {ex.username} FullAccess on {room.email}"
            )

            def read(email: str = room.email) -> str:
                source.calendar_id(email)
                return f"calendar readable by {how}"

            if not reached.ok:
                yield CheckResult(
                    f"exchange room {room.email}", ok=False, detail="skipped: EWS unreachable", fix=right
                )
            else:
                yield _attempt(f"exchange room {room.email}", right, read)
    finally:
        source.close()


# ---------------------------------------------------------------------------------- TMS


def _tms(cfg: Config) -> Iterator[CheckResult]:
    import requests  # noqa: PLC0415

    from xesync.adapters.tms import TmsBookingSink, make_auth, tls_verify  # noqa: PLC0415

    tms = cfg.tms
    http = requests.Session()
    http.auth, http.verify = make_auth(tms), tls_verify(tms.tls)
    sink = TmsBookingSink(tms)
    try:
        yield _attempt(
            "tms api version",
            f"check tms.url ({tms.url}), tms.username and its password; TMS 15 serves API 22",
            lambda: f"ConfAPIVersion {_tms_version(http, cfg)} (we send {tms.client_version})",
        )

        def behalf() -> str:
            if not _tms_bool(http, cfg, "IsTMSBookOnBehalfUser"):
                raise PermissionError(f"{tms.username} may not book on behalf of others")
            return f"{tms.username} may book on behalf of others"

        yield _attempt(
            "tms book on behalf",
            f"in TMS, give {tms.username}'s group the 'Book on behalf of' permission "
            "(Administrative Tools > User Administration > Groups)",
            behalf,
        )
        try:
            systems: set[int] | None = set(sink.system_ids())
            error = ""
        except Exception as exc:  # noqa: BLE001 - reported per room below
            systems, error = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
        for room in cfg.rooms:
            name = f"tms system {room.tms_system_id} ({room.name})"
            if systems is None:
                yield CheckResult(
                    name,
                    ok=False,
                    detail=f"GetSystems failed: {error}",
                    fix=f"check tms.remote_setup_url ({tms.remote_setup_url})",
                )
            elif room.tms_system_id in systems:
                yield CheckResult(name, ok=True, detail="listed by GetSystems")
            else:
                yield CheckResult(
                    name, ok=False, detail=f"not among TMS's {len(systems)} systems",
                    fix=f"add the system to TMS, or set rooms.tms_system_id of {room.email} to its id in TMS "
                    "(Systems > Navigator shows it)",
                )  # fmt: skip
    finally:
        sink.close()
        http.close()


def _tms_post(http: Any, cfg: Config, op: str, service: str) -> Any:
    """One SOAP call with a blank session (renewed once if TMS suggests one); the parsed root element."""
    from xesync import xmlsafe  # noqa: PLC0415
    from xesync.adapters import tms_soap as soap  # noqa: PLC0415

    url = cfg.tms.url if service == soap.BOOKING_NS else cfg.tms.remote_setup_url
    session = ""
    for _ in (1, 2):
        data = soap.envelope(op, service, [], client_version=cfg.tms.client_version, session=session)
        headers = {"Content-Type": f'{soap.CONTENT_TYPE}; action="{service}{op}"'}
        response = http.post(url, data=data, headers=headers, timeout=cfg.tms.timeout.total_seconds())
        answer = soap.read_answer(response.content)
        if answer is None:
            raise ConnectionError(f"{op}: HTTP {response.status_code}, not a SOAP answer")
        if answer.fault is None:
            return xmlsafe.parse(response.content)
        if answer.fault.is_session and answer.fault.session and not session:
            session = answer.fault.session
            continue
        raise RuntimeError(f"{op}: fault {soap.code_name(answer.fault.code)}: {answer.fault.text}")
    raise RuntimeError(f"{op}: the ClientSession was refused twice")


def _tms_version(http: Any, cfg: Config) -> str:
    from xesync.adapters import tms_soap as soap  # noqa: PLC0415

    root = _tms_post(http, cfg, "GetDefaultConference", soap.BOOKING_NS)
    found = next(
        (e.text for e in root.iter() if isinstance(e.tag, str) and e.tag.endswith("}ConfAPIVersion")), None
    )
    if not found:
        raise LookupError("TMS sent no VersionSoapHeader")
    return str(found).strip()


def _tms_bool(http: Any, cfg: Config, op: str) -> bool:
    from xesync.adapters import tms_soap as soap  # noqa: PLC0415

    root = _tms_post(http, cfg, op, soap.REMOTE_NS)
    found = next(
        (e.text for e in root.iter() if isinstance(e.tag, str) and e.tag.endswith(f"}}{op}Result")), ""
    )
    return (found or "").strip().lower() == "true"


# ---------------------------------------------------------------------------------- CMS


def _cms(cfg: Config) -> Iterator[CheckResult]:
    if cfg.cms is None:
        return
    from xesync.adapters.cms import CmsCallMonitor  # noqa: PLC0415
    from xesync.adapters.cms_http import CmsHttp, text  # noqa: PLC0415

    cms = cfg.cms
    http = CmsHttp(cms, attempts=1)
    monitor = CmsCallMonitor(cms, attempts=1)
    try:

        def version() -> str:
            doc = http.get(http.bridges[0], "/system/status")
            if doc is None:
                raise LookupError("GET /system/status gave no document")
            return f"{cms.url} answers; softwareVersion {text(doc, 'softwareVersion') or 'unknown'}"

        yield _attempt(
            "cms reachable",
            f"check cms.url ({cms.url}), cms.username (an API user) and its password",
            version,
        )

        def licensing() -> str:
            snapshot = monitor.licensing()
            if not snapshot.personal_licenses:
                raise LookupError("no personal (PMP+) licences are installed")
            return f"{snapshot.personal_licenses} personal licences, {snapshot.bridges} bridge(s)"

        yield _attempt(
            "cms multiparty licensing",
            "install the PMP+ (personal multiparty) licences on CMS and assign them through the LDAP sync",
            licensing,
        )
    finally:
        monitor.close()
        http.close()


# ---------------------------------------------------------------------------------- LDAP


def _ldap(cfg: Config) -> Iterator[CheckResult]:
    if cfg.ldap is None:
        return
    from xesync.adapters.ldap import LdapDirectory  # noqa: PLC0415 - ldap3
    from xesync.directory import Person  # noqa: PLC0415

    ld = cfg.ldap
    directory = LdapDirectory(ld)
    session = directory._session  # noqa: SLF001 - the resolver's own bound session
    group = ld.pmp_groups[0] if ld.pmp_groups else ""
    found: list[str] = []
    try:

        def bind() -> str:
            found.append(session.call(lambda conn: _first_member(conn, group)))
            return f"bound to {ld.url} as {ld.bind_dn}"

        fix = f"check ldap.url ({ld.url}), ldap.bind_dn and its password, and ldap.pmp_groups"
        yield _attempt("ldap bind", fix, bind)

        def lookup() -> str:
            if not found:
                raise LookupError("no member to look up (see the bind line)")
            mail = session.call(lambda conn: _mail_of(conn, found[0]))
            person = directory.resolve(mail)
            if not isinstance(person, Person) or not person.pmp:
                raise LookupError(f"{mail} did not resolve as a PMP+ member")
            return f"{mail} resolves to {person.tms_username}, PMP+"

        yield _attempt(
            "ldap pmp+ member",
            "check ldap.base_dn, ldap.username_attribute, ldap.group_membership and ldap.pmp_groups",
            lookup,
        )
    finally:
        directory.close()


def _first_member(conn: Any, group: str) -> str:
    """The first ``member`` of the PMP+ group (a BASE search on the group's entry)."""
    import ldap3  # noqa: PLC0415

    conn.search(group, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["member"])
    if not conn.entries:
        raise LookupError(f"the PMP+ group {group} was not found")
    members = list(conn.entries[0]["member"].values) if "member" in conn.entries[0] else []
    if not members:
        raise LookupError(f"the PMP+ group {group} has no members")
    return str(members[0])


def _mail_of(conn: Any, dn: str) -> str:
    import ldap3  # noqa: PLC0415

    conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["mail"])
    if not conn.entries or "mail" not in conn.entries[0]:
        raise LookupError(f"{dn} has no mail attribute")
    return str(conn.entries[0]["mail"].value)


# ---------------------------------------------------------------------------------- state


def _state(cfg: Config) -> Iterator[CheckResult]:
    state_dir = cfg.sync.state_dir

    def writable() -> str:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".xesync-check-", dir=state_dir)
        os.close(fd)
        with contextlib.suppress(OSError):
            Path(probe).unlink()
        return f"{state_dir} is writable"

    yield _attempt(
        "state directory",
        f"create {state_dir} for the service user (systemd: StateDirectory=xesync), or set sync.state_dir",
        writable,
    )
