"""The ``[ldap]`` section: its reader and the one validator of every rule the directory adapter relies on.

Each rule lives here once: :func:`ldap_problems` checks a built :class:`LdapConfig` (the URL, the
filter, the DNs, the attribute names, the templates), and both ``check-config`` (through
:func:`read_ldap`) and :class:`~xesync.adapters.ldap.LdapDirectory` call it, so the daemon refuses
nothing that ``check-config`` let through.

ldap3 parses the filter and the DNs (it is what will send them); it is imported only when an
``[ldap]`` section is checked, so ``xesync --help`` stays fast.
"""

from __future__ import annotations

import re
import string
from datetime import timedelta
from urllib.parse import urlsplit

from xesync.config.model import GroupMembership, LdapConfig, Secret
from xesync.config.reader import Reader, read_tls

__all__ = [
    "TEMPLATE_FIELDS",
    "filter_problem",
    "ldap_endpoint",
    "ldap_problems",
    "read_ldap",
    "template_problems",
]

TEMPLATE_FIELDS = frozenset({"domain", "username", "mail"})
_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$")
_DEFAULTS = LdapConfig(url="", bind_dn="", password=Secret(""), base_dn="", pmp_groups=())


def ldap_endpoint(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``ldap.url``.

    :raises ValueError: not ``ldap://host[:port]`` or ``ldaps://host[:port]``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"ldap", "ldaps"} or not parts.hostname:
        msg = "must be ldap://host[:port] or ldaps://host[:port]"
        raise ValueError(msg)
    try:
        port = parts.port or (636 if scheme == "ldaps" else 389)
    except ValueError:
        msg = "the port must be a number"
        raise ValueError(msg) from None
    return scheme, parts.hostname, port


def template_problems(template: str) -> list[str]:
    """What is wrong with ``ldap.tms_username_format`` or ``ldap.jid_template`` (fields, braces)."""
    try:
        fields = [
            name for _text, name, _spec, _conv in string.Formatter().parse(template) if name is not None
        ]
    except ValueError as exc:
        return [str(exc)]
    allowed = ", ".join(f"{{{f}}}" for f in sorted(TEMPLATE_FIELDS))
    return [f"unknown field {{{name}}}; use {allowed}" for name in fields if name not in TEMPLATE_FIELDS]


def ldap_problems(cfg: LdapConfig) -> list[tuple[str, str]]:
    """Every problem of a built ``[ldap]`` section, as ``(key, text)``; the key is relative to ``ldap``.

    The CA file is checked by :func:`xesync.config.reader.ca_file_problem`, which the reader applies
    to every section's ``ca_file``.
    """
    problems: list[tuple[str, str]] = []
    try:
        scheme, _host, _port = ldap_endpoint(cfg.url)
    except ValueError as exc:
        problems.append(("url", str(exc)))
    else:
        if cfg.start_tls and scheme == "ldaps":
            problems.append(("start_tls", "cannot be used with an ldaps:// url"))
    templates = [("tms_username_format", cfg.tms_username_format)]
    if cfg.jid_template is not None:
        templates.append(("jid_template", cfg.jid_template))
    problems += [(key, text) for key, template in templates for text in template_problems(template)]
    problem = filter_problem(cfg.user_filter)
    if problem:
        problems.append(("user_filter", problem))
    named_dns = [("base_dn", cfg.base_dn)] + [(f"pmp_groups[{i}]", g) for i, g in enumerate(cfg.pmp_groups)]
    problems += [(key, f"not a DN: {dn!r}") for key, dn in named_dns if not _is_dn(dn)]
    if not cfg.pmp_groups:
        problems.append(("pmp_groups", "must name at least one PMP+ group DN"))
    if not cfg.mail_attributes:
        problems.append(("mail_attributes", "must name at least one attribute"))
    attributes = [(f"mail_attributes[{i}]", a) for i, a in enumerate(cfg.mail_attributes)]
    attributes += [("username_attribute", cfg.username_attribute), ("guid_attribute", cfg.guid_attribute)]
    problems += [
        (key, f"not an attribute name: {name!r}") for key, name in attributes if not _ATTRIBUTE.match(name)
    ]
    return problems


def filter_problem(text: str) -> str | None:
    """Why ``text`` is not a complete LDAP filter (RFC 4515), or ``None``."""
    from ldap3.core.exceptions import LDAPException  # noqa: PLC0415 - heavy, and only for [ldap]
    from ldap3.operation.search import parse_filter  # noqa: PLC0415

    if not text.startswith("("):
        return "not an LDAP filter: it must be in parentheses, e.g. '(objectClass=user)'"
    try:
        parse_filter(text, None, auto_escape=False, auto_encode=False, validator=None, check_names=False)
    except LDAPException as exc:
        return f"not an LDAP filter ({exc})"
    return None


def _is_dn(text: str) -> bool:
    from ldap3.core.exceptions import LDAPInvalidDnError  # noqa: PLC0415
    from ldap3.utils.dn import safe_dn  # noqa: PLC0415

    try:
        safe_dn(text)
    except LDAPInvalidDnError:
        return False
    return True


def read_ldap(r: Reader) -> LdapConfig:
    """Read ``[ldap]`` and report every problem :func:`ldap_problems` finds, with its key."""
    d = _DEFAULTS
    cfg = LdapConfig(
        url=r.req_str("url"),
        bind_dn=r.req_str("bind_dn"),
        password=r.secret("password", required=True) or Secret(""),
        base_dn=r.req_str("base_dn"),
        pmp_groups=r.str_list("pmp_groups"),
        start_tls=r.flag("start_tls", default=False),
        tls=read_tls(r),
        timeout=r.duration("timeout", timedelta(seconds=10)),
        user_filter=r.string("user_filter", d.user_filter),
        mail_attributes=r.str_list("mail_attributes", d.mail_attributes),
        username_attribute=r.string("username_attribute", d.username_attribute),
        tms_username_format=r.string("tms_username_format", d.tms_username_format),
        tms_domain=r.text("tms_domain", "") or "",
        jid_template=r.get("jid_template", _check_template_text, None, required=False),
        guid_attribute=r.string("guid_attribute", d.guid_attribute),
        group_membership=r.enum("group_membership", GroupMembership, GroupMembership.AUTO),
        # 0s is meaningful here: every lookup asks the directory.
        cache_ttl=r.duration("cache_ttl", timedelta(minutes=15), positive=False),
        page_size=r.integer("page_size", 500, minimum=1),
    )
    reported = {p.split(":", 1)[0] for p in r.problems}
    for key, text in ldap_problems(cfg):
        # A key the reader already refused (absent, wrong type) is not reported twice.
        if r.key(key.split("[", 1)[0]) not in reported:
            r.problem(key, text)
    return cfg


def _check_template_text(v: object) -> str:
    if not isinstance(v, str) or not v.strip():
        msg = "must be a non-empty string such as '{username}@example.com'"
        raise ValueError(msg)
    return v
