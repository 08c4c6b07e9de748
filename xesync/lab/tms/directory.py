"""What TMS knows from the directory: each user's directory GUID, for ``owner_to_cms = ownerAdGuid``.

A real TMS learns users (and their AD ``objectGUID``) from its LDAP/AD sync. The lab reads the same LDIF
the lab directory serves, keyed by ``uid`` and ``mail``. ``entryUUID`` is the OpenLDAP equivalent the
lab's CMS matches ``ownerAdGuid`` against; a binary ``objectGUID`` is turned into AD's string form.
spec: cms-api.md §4.2: whether TMS sends ``ownerAdGuid`` at all is [unconfirmed] (hence the knob).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from pathlib import Path

from xesync.lab.fixture import LabFixture

GUID_ATTRIBUTES = ("entryuuid", "objectguid")


def directory_guids(fixture: LabFixture) -> dict[str, str]:
    """``{uid or mail (casefolded): guid}`` from the fixture's LDIF; empty when there is none."""
    if fixture.directory is None:
        return {}
    try:
        raw = Path(fixture.directory.ldif).read_text(encoding="utf-8")
    except OSError:
        return {}
    return parse_ldif_guids(raw)


def parse_ldif_guids(raw: str) -> dict[str, str]:
    """The GUID map of an LDIF text (folded lines and ``::`` base64 values understood)."""
    out: dict[str, str] = {}
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        attrs: dict[str, list[str]] = {}
        lines: list[str] = []
        for line in block.split("\n"):
            if line.startswith(" ") and lines:
                lines[-1] += line[1:]
            elif line and not line.startswith("#"):
                lines.append(line)
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = name.strip().lower()
            if value.startswith(":"):
                attrs.setdefault(key, []).append(_b64(key, value[1:].strip()))
            else:
                attrs.setdefault(key, []).append(value.strip())
        guid = next((attrs[a][0] for a in GUID_ATTRIBUTES if attrs.get(a)), None)
        if not guid:
            continue
        for key in attrs.get("uid", []) + attrs.get("mail", []):
            out[key.casefold()] = guid
    return out


def _b64(attribute: str, value: str) -> str:
    try:
        data = base64.b64decode(value)
    except (binascii.Error, ValueError):
        return ""
    if attribute == "objectguid" and len(data) == 16:  # noqa: PLR2004 - a GUID is 16 bytes
        return str(uuid.UUID(bytes_le=data))
    return data.decode("utf-8", "replace")
