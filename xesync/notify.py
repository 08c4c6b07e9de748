"""Mails to the organiser: the confirmation with the dial-in details, and the refusal with its reason.

The organiser never sees the room's copy of their meeting, so what xesync did reaches them by mail,
sent as the room (ews.md §1.12): once per booking, and again only when the details change
(:attr:`xesync.model.Booking.notified_hash`). The texts come from templates an admin can edit
(``sync.templates_dir``; the shipped ones are in ``xesync/templates``, linked as
``config/templates``): ``confirmation.txt``/``.html`` and ``declined.txt``/``.html``, with
``string.Template`` placeholders (``$subject``, ``$when``, ``$rooms``, ``$dial_in``,
``$conference_id``, ``$owner``, ``$licence_note``, ``$reason``, ``$uid``). Values are HTML-escaped in
the HTML templates; a placeholder a template does not know is left as it is rather than failing.

Loading reads files; rendering (:meth:`Templates.confirmation`, :meth:`Templates.declined`) is pure.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from string import Template
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xesync.errors import ConfigError
from xesync.meetings import Mail

NAMES = ("confirmation.txt", "confirmation.html", "declined.txt", "declined.html")


def notice_hash(*parts: str) -> str:
    """A short digest of what the organiser was told, to tell them again only when it changes."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def when_text(start: datetime, end: datetime, time_zone: str) -> str:
    """``Mon 7 Dec 2026 10:00-11:00 (Europe/Oslo)`` in the meeting's own zone (an en dash in the text)."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, time_zone = ZoneInfo("UTC"), "UTC"
    a, b = start.astimezone(zone), end.astimezone(zone)
    day = f"{a:%a} {a.day} {a:%b %Y}"
    return f"{day} {a:%H:%M}\u2013{b:%H:%M} ({time_zone})"


@dataclass(frozen=True, slots=True)
class Templates:
    """The four mail templates, loaded once."""

    confirmation_text: Template
    confirmation_html: Template
    declined_text: Template
    declined_html: Template

    @classmethod
    def load(cls, directory: Path | None = None) -> Templates:
        """Read the templates from ``directory``, or the shipped ones when it is ``None``.

        :raises ConfigError: a template is missing or unreadable (naming ``sync.templates_dir``).
        """
        texts: list[str] = []
        problems: list[str] = []
        for name in NAMES:
            try:
                if directory is None:
                    texts.append(resources.files("xesync").joinpath("templates", name).read_text("utf-8"))
                else:
                    texts.append((directory / name).read_text(encoding="utf-8"))
            except OSError as exc:
                problems.append(f"sync.templates_dir: cannot read {name}: {exc.strerror or exc}")
        if problems:
            raise ConfigError(problems)
        return cls(*(Template(t) for t in texts))

    def confirmation(
        self,
        *,
        room: str,
        to: str,
        subject: str,
        when: str,
        rooms: str,
        info_text: str,
        info_html: str,
        conference_id: int | None,
        owner: str,
        licence_note: str = "",
    ) -> Mail:
        """The confirmation mail with the dial-in details."""
        values = {
            "subject": subject,
            "when": when,
            "rooms": rooms,
            "conference_id": "" if conference_id is None else str(conference_id),
            "owner": owner,
            "licence_note": licence_note,
        }
        text = self.confirmation_text.safe_substitute(values, dial_in=info_text.strip())
        escaped = {k: html.escape(v) for k, v in values.items()}
        dial_in_html = info_html.strip() or "<pre>" + html.escape(info_text.strip()) + "</pre>"
        body = self.confirmation_html.safe_substitute(escaped, dial_in=dial_in_html)
        return Mail(room=room, to=to, subject=f"Booked: {subject}", text=text, html=body)

    def declined(
        self, *, room: str, to: str, subject: str, when: str, rooms: str, reason: str, uid: str
    ) -> Mail:
        """The refusal mail with its reason."""
        values = {"subject": subject, "when": when, "rooms": rooms, "reason": reason, "uid": uid}
        text = self.declined_text.safe_substitute(values)
        body = self.declined_html.safe_substitute({k: html.escape(v) for k, v in values.items()})
        return Mail(room=room, to=to, subject=f"Not booked: {subject}", text=text, html=body)
