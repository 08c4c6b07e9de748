"""The directory port: who an organiser is, and whether they hold a PMP+ licence.

xesync books a meeting in TMS with the organiser as owner and later proves on CMS that the call used
the organiser's personal (PMP+) licence. Both need the organiser as the directory knows them: the TMS
user name, the CMS JID, the AD GUID and whether they are in the PMP+ group (nested groups count).

Terminology:

*address*
    The SMTP address Exchange names as the organiser, matched case-insensitively against the
    directory's mail attributes (``mail``, ``proxyAddresses``, ``userPrincipalName``).
*person*
    A directory entry found for an address (:class:`Person`).
*not in directory*
    No entry has the address: an external organiser, or a typo. This is an ordinary answer
    (:class:`NotInDirectory`), never an exception; the sync policy decides what to do with it
    (``sync.unknown_organiser``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """An organiser as the directory knows them.

    :ivar dn: the entry's distinguished name.
    :ivar username: the logon name (``ldap.username_attribute``: ``sAMAccountName`` on AD, ``uid``
        on OpenLDAP).
    :ivar tms_username: the TMS user name, from ``ldap.tms_username_format`` (e.g. ``LAB\\alice``).
    :ivar display_name: ``displayName``, else ``cn``, else the primary e-mail address.
    :ivar first_name: ``givenName``, if set.
    :ivar last_name: ``sn``, if set.
    :ivar email: the primary SMTP address (``mail``, else the ``SMTP:`` proxy address, else the UPN).
    :ivar addresses: every SMTP address of the entry (``mail`` and ``smtp:`` proxies), lower case.
    :ivar jid: the CMS JID, from ``ldap.jid_template``; ``None`` when that is not set (no ``[cms]``).
    :ivar guid: the canonical GUID string from ``ldap.guid_attribute`` (AD ``objectGUID``, OpenLDAP
        ``entryUUID``), or ``None`` when the entry has none.
    :ivar pmp: whether the person is in one of ``ldap.pmp_groups``, directly or through nested groups.
    :ivar pmp_group: the PMP+ group that granted it, when ``pmp`` is true.
    """

    dn: str
    username: str
    tms_username: str
    display_name: str
    first_name: str | None
    last_name: str | None
    email: str
    addresses: frozenset[str]
    jid: str | None
    guid: str | None
    pmp: bool
    pmp_group: str | None = None


@dataclass(frozen=True, slots=True)
class NotInDirectory:
    """No directory entry has this address (an external organiser, or a typo).

    :ivar address: the address as it was asked for.
    """

    address: str


Resolution = Person | NotInDirectory


class Directory(Protocol):
    """Looks organisers up by SMTP address. Implementations cache answers (negative ones too)."""

    def resolve(self, address: str) -> Person | NotInDirectory:
        """Find the person with ``address``.

        :param address: an SMTP address, matched case-insensitively.
        :returns: the :class:`Person`, or :class:`NotInDirectory` when no entry has the address.
        :raises xesync.errors.LdapUnavailableError: the directory cannot be reached (retry later).
        :raises xesync.errors.LdapTlsError: the directory's certificate cannot be verified.
        :raises xesync.errors.LdapLookupError: the directory refused the lookup (bind, base DN,
            access), or the address names more than one entry.
        """
        ...

    def close(self) -> None:
        """Release the connection; a later :meth:`resolve` connects again."""
        ...
