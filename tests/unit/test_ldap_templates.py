"""Templates, GUID rendering and configuration checks of the LDAP adapter."""

from __future__ import annotations

import base64
import uuid

import pytest

from xesync.adapters.ldap import LdapDirectory, format_template, render_guid
from xesync.config import LdapConfig, Secret, TlsConfig
from xesync.config.ldap_section import template_problems
from xesync.directory import Person
from xesync.errors import ConfigError
from xesync.lab.ldif_directory import LdifDirectory

LDIF = """\
dn: dc=lab,dc=example
objectClass: dcObject
dc: lab

dn: cn=svc,dc=lab,dc=example
objectClass: simpleSecurityObject
userPassword: pw

dn: cn=cms-pmp,dc=lab,dc=example
objectClass: groupOfNames
member: cn=nobody,dc=lab,dc=example

dn: CN=Ada Lovelace,dc=lab,dc=example
objectClass: user
sAMAccountName: ada
cn: Ada Lovelace
mail: ada@lab.example
objectGUID:: {guid}
"""


def config(url: str = "ldaps://dc.lab.example", **overrides) -> LdapConfig:
    values = {
        "url": url,
        "bind_dn": "cn=svc,dc=lab,dc=example",
        "password": Secret("pw"),
        "base_dn": "dc=lab,dc=example",
        "pmp_groups": ("cn=cms-pmp,dc=lab,dc=example",),
        "tms_domain": "LAB",
    }
    values.update(overrides)
    return LdapConfig(**values)


def test_format_template_fills_every_field():
    """{domain}, {username} and {mail} are filled in; literal text and backslashes stay."""
    assert format_template("{domain}\\{username}", domain="LAB", username="ada", mail="a@x") == "LAB\\ada"
    assert format_template("{username}@cms.{domain}|{mail}", domain="lab", username="ada", mail="a@x") == (
        "ada@cms.lab|a@x"
    )


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{user}@x", "unknown field {user}"),
        ("{username.__class__}", "unknown field {username.__class__}"),
        ("{0}", "unknown field {0}"),
        ("{username", "expected '}'"),
    ],
)
def test_template_problems(template, problem):
    """Unknown fields, attribute access and broken braces are each reported once."""
    problems = template_problems(template)
    assert len(problems) == 1
    assert problem in problems[0]


def test_good_templates_have_no_problems():
    """The shipped defaults and the lab's templates are accepted."""
    assert template_problems("{domain}\\{username}") == []
    assert template_problems("{username}@lab.example") == []
    assert template_problems("{mail}") == []


def test_render_guid_reads_ad_object_guid_bytes():
    """AD objectGUID bytes render little-endian in the first three fields, as AD shows them."""
    raw = bytes.fromhex("33221100554477668899aabbccddeeff")
    assert render_guid(raw) == "00112233-4455-6677-8899-aabbccddeeff"


@pytest.mark.parametrize(
    "text",
    ["4a2b1c3d-0000-4000-8000-00000000beef", "{4A2B1C3D-0000-4000-8000-00000000BEEF}"],
)
def test_render_guid_normalises_text_uuids(text):
    """A textual UUID (OpenLDAP entryUUID, or braced upper case) becomes the canonical form."""
    assert render_guid(text.encode()) == "4a2b1c3d-0000-4000-8000-00000000beef"


def test_render_guid_keeps_other_text():
    """A value that is not a UUID at all is passed through as text."""
    assert render_guid(b"nsuniqueid-like-123") == "nsuniqueid-like-123"


def test_person_guid_comes_from_binary_object_guid(tmp_path):
    """With guid_attribute = objectGUID, the binary value becomes the Person's canonical GUID."""
    guid = uuid.UUID("a1b2c3d4-e5f6-4a5b-8c7d-0123456789ab")
    path = tmp_path / "ad.ldif"
    path.write_text(LDIF.format(guid=base64.b64encode(guid.bytes_le).decode()), encoding="utf-8")
    directory = LdifDirectory(path, config(user_filter="(objectClass=user)"))
    ada = directory.resolve("ada@lab.example")
    assert isinstance(ada, Person)
    assert (ada.guid, ada.username, ada.tms_username) == (str(guid), "ada", "LAB\\ada")
    assert ada.dn == "CN=Ada Lovelace,dc=lab,dc=example"


def test_construction_collects_every_problem(tmp_path):
    """An unusable [ldap] section raises one ConfigError listing each problem with its key."""
    with pytest.raises(ConfigError) as caught:
        LdapDirectory(
            config(
                jid_template="{user}@x",
                tms_username_format="{domain.upper}\\{username}",
                user_filter="objectClass=user",
                mail_attributes=("mail", "mail)(uid=*"),
                pmp_groups=("not a dn",),
                tls=TlsConfig(ca_file=tmp_path / "missing.pem"),
            )
        )
    keys = sorted(p.split(":", 1)[0] for p in caught.value.problems)
    assert keys == [
        "ldap.ca_file",
        "ldap.jid_template",
        "ldap.mail_attributes[1]",
        "ldap.pmp_groups[0]",
        "ldap.tms_username_format",
        "ldap.user_filter",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://dc.example.com",
        "ldap://",
        "ldif://relative/path.ldif",
        "ldif:///abs/path.ldif",
        "ldap://dc.example.com:x",
    ],
)
def test_unusable_urls_are_config_errors(url):
    """Only ldap://host and ldaps://host are accepted: the production adapter knows no LDIF files."""
    with pytest.raises(ConfigError, match=r"ldap\.url"):
        LdapDirectory(config(url))


def test_unbalanced_user_filter_is_a_config_error():
    """A user_filter that is not a complete LDAP filter is refused before any connection."""
    with pytest.raises(ConfigError, match=r"ldap\.user_filter"):
        LdapDirectory(config(user_filter="(&(objectClass=user)"))
