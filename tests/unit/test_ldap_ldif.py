"""The lab's strict LDIF reader and the mock directory built from it (xesync.lab.ldif)."""

from __future__ import annotations

import base64
import uuid

import pytest
from ldap3.core.exceptions import LDAPInvalidCredentialsResult

from xesync.lab.ldif import (
    LdifError,
    mock_connection_from_ldif,
    parse_ldif,
    read_ldif,
    with_computed_attributes,
)

PEOPLE = """\
version: 1

# the base
dn: dc=lab,dc=example
objectClass: dcObject
dc: lab

dn: cn=svc,dc=lab,dc=example
objectClass: simpleSecurityObject
cn: svc
userPassword: Secret-Pw

dn: uid=alice,dc=lab,dc=example
objectClass: inetOrgPerson
uid: alice
mail: alice@lab.example

dn: uid=bob,dc=lab,dc=example
objectClass: inetOrgPerson
uid: bob
mail: bob@lab.example

dn: cn=inner,dc=lab,dc=example
objectClass: groupOfNames
member: uid=bob,dc=lab,dc=example
member: uid=ghost,dc=lab,dc=example

dn: cn=outer,dc=lab,dc=example
objectClass: groupOfNames
member: UID=Alice, DC=lab, DC=example
member: cn=inner,dc=lab,dc=example
"""


def test_reads_records_in_order():
    """Each blank-line separated record becomes one entry, in file order, with every value."""
    entries = parse_ldif(PEOPLE)
    assert [e.dn for e in entries][:3] == [
        "dc=lab,dc=example",
        "cn=svc,dc=lab,dc=example",
        "uid=alice,dc=lab,dc=example",
    ]
    assert entries[2].text("mail") == ["alice@lab.example"]
    assert entries[5].text("member") == ["UID=Alice, DC=lab, DC=example", "cn=inner,dc=lab,dc=example"]


def test_comments_and_continuations():
    """Comments (continued ones too) are dropped; a line starting with one space continues the previous."""
    entries = parse_ldif(
        "# a comment\n  that goes on\ndn: cn=x,\n dc=example\ncn: x\ndescription: one\n  two\n#trailing\n"
    )
    assert entries[0].dn == "cn=x,dc=example"
    assert entries[0].text("description") == ["one two"]


def test_base64_values():
    """'::' values are base64: UTF-8 text decodes, binary stays bytes; a base64 DN works too."""
    binary = bytes(range(16))
    text = (
        f"dn:: {base64.b64encode('cn=Åse,dc=example'.encode()).decode()}\n"
        f"displayName:: {base64.b64encode('Åse Ødegård'.encode()).decode()}\n"
        f"objectGUID:: {base64.b64encode(binary).decode()}\n"
    )
    entry = parse_ldif(text)[0]
    assert entry.dn == "cn=Åse,dc=example"
    assert entry.text("displayName") == ["Åse Ødegård"]
    assert entry.values("objectGUID") == [binary]


def test_attribute_names_are_case_insensitive():
    """Values of 'mail' and 'MAIL' are one attribute, kept under its first spelling."""
    entry = parse_ldif("dn: cn=x\nmail: a@x\nMAIL: b@x\nuserCertificate;binary:: AAE=\n")[0]
    assert entry.attributes["mail"] == [b"a@x", b"b@x"]
    assert entry.values("USERCERTIFICATE;BINARY") == [b"\x00\x01"]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("dn: cn=x\nchangetype: add\ncn: x\n", 2, "change records"),
        ("dn: cn=x\njpegPhoto:< file:///etc/passwd\n", 2, "URL values"),
        ("cn: x\ndn: cn=x\n", 1, "must start with 'dn:'"),
        ("dn: cn=x\ncn: x\n\ndn: CN=X\ncn: y\n", 4, "given twice"),
        ("dn: cn=x\ncn:: not base64!\n", 2, "invalid base64"),
        (" continued\ndn: cn=x\ncn: x\n", 1, "continuation"),
        ("dn: cn=x\ncn: x\n\n more\n", 4, "continuation"),
        ("dn: cn=x\ncn: x\ndn: cn=y\n", 3, "second 'dn:'"),
        ("dn: cn=x\nno colon here\n", 2, "expected 'attribute: value'"),
        ("dn: cn=x\nbad name: y\n", 2, "invalid attribute description"),
        ("version: 2\ndn: cn=x\ncn: x\n", 1, "version 1"),
        ("dn: not a dn\ncn: x\n", 1, "invalid DN"),
        ("dn: cn=x\n", 1, "no attributes"),
    ],
)
def test_refuses_what_it_does_not_support(text, line, reason):
    """Unsupported or malformed LDIF is refused with the line number and the reason."""
    with pytest.raises(LdifError) as caught:
        parse_ldif(text, source="t.ldif")
    assert (caught.value.line, caught.value.source) == (line, "t.ldif")
    assert reason in caught.value.reason


def test_read_ldif_names_the_file(tmp_path):
    """Errors from a file carry its path."""
    path = tmp_path / "broken.ldif"
    path.write_text("dn: cn=x\nchangetype: delete\n", encoding="utf-8")
    with pytest.raises(LdifError, match=r"broken\.ldif:2"):
        read_ldif(path)


def test_memberof_is_computed_from_group_members():
    """Every member (groups included) gets the group in memberOf; dangling members are ignored."""
    entries = {e.dn: e for e in with_computed_attributes(parse_ldif(PEOPLE))}
    assert entries["uid=alice,dc=lab,dc=example"].text("memberOf") == ["cn=outer,dc=lab,dc=example"]
    assert entries["uid=bob,dc=lab,dc=example"].text("memberOf") == ["cn=inner,dc=lab,dc=example"]
    assert entries["cn=inner,dc=lab,dc=example"].text("memberOf") == ["cn=outer,dc=lab,dc=example"]
    assert entries["cn=outer,dc=lab,dc=example"].text("memberOf") == []


def test_entry_uuid_is_stable_and_kept_when_given():
    """entryUUID is a UUID derived from the DN (stable across loads), unless the LDIF gives one."""
    first = with_computed_attributes(parse_ldif(PEOPLE + "\ndn: cn=fixed\nentryUUID: 0-given\ncn: f\n"))
    again = with_computed_attributes(parse_ldif(PEOPLE))
    uuids = [e.text("entryUUID")[0] for e in first]
    assert uuids[: len(again)] == [e.text("entryUUID")[0] for e in again]
    assert len(set(uuids)) == len(uuids)
    assert str(uuid.UUID(uuids[0])) == uuids[0]
    assert uuids[-1] == "0-given"


def test_mock_connection_is_bound_and_searchable(tmp_path):
    """The mock connection binds as the LDIF's service account and finds entries by computed memberOf."""
    path = tmp_path / "people.ldif"
    path.write_text(PEOPLE, encoding="utf-8")
    conn = mock_connection_from_ldif(path, "cn=svc,dc=lab,dc=example", "Secret-Pw")
    assert conn.bound
    conn.search("dc=lab,dc=example", "(memberOf=cn=outer,dc=lab,dc=example)", attributes=["uid"])
    assert sorted(r["dn"] for r in conn.response) == [
        "cn=inner,dc=lab,dc=example",
        "uid=alice,dc=lab,dc=example",
    ]


@pytest.mark.parametrize("password", ["secret-pw", "wrong", ""])
def test_mock_bind_needs_the_exact_password(tmp_path, password):
    """A password differing in case, a wrong one, or none at all is refused like a real server."""
    path = tmp_path / "people.ldif"
    path.write_text(PEOPLE, encoding="utf-8")
    with pytest.raises(LDAPInvalidCredentialsResult):
        mock_connection_from_ldif(path, "cn=svc,dc=lab,dc=example", password)


def test_mock_without_bind_dn_is_anonymous(tmp_path):
    """Without a bind DN (the CMS simulator's call), the mock connection binds anonymously."""
    path = tmp_path / "people.ldif"
    path.write_text(PEOPLE, encoding="utf-8")
    conn = mock_connection_from_ldif(path)
    conn.search("dc=lab,dc=example", "(uid=bob)", attributes=["mail"])
    assert [r["attributes"]["mail"] for r in conn.response] == [["bob@lab.example"]]
