"""The people the licence rule tables (test_licence_rules.py, test_licence_prediction.py) are about:
Alice in the PMP+ group, Carol outside it, Erin not in the directory, and the CMS users of the first two."""

from __future__ import annotations

from xesync.cms_facts import CmsUser
from xesync.directory import NotInDirectory, Person

GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def person(name: str, *, pmp: bool) -> Person:
    return Person(
        dn=f"uid={name},ou=people,dc=lab,dc=example",
        username=name,
        tms_username=f"LAB\\{name}",
        display_name=name.title(),
        first_name=name.title(),
        last_name="Example",
        email=f"{name}@lab.example",
        addresses=frozenset({f"{name}@lab.example"}),
        jid=f"{name}@lab.example",
        guid=GUID if name == "alice" else None,
        pmp=pmp,
        pmp_group="cn=cms-pmp,ou=groups,dc=lab,dc=example" if pmp else None,
    )


ALICE = person("alice", pmp=True)
CAROL = person("carol", pmp=False)
ERIN = NotInDirectory("erin@partner.example")
ALICE_CMS = CmsUser(
    id="u-alice", jid="alice@lab.example", user_profile="p-pmp", profile_from="user", has_license=True
)
CAROL_CMS = CmsUser(
    id="u-carol", jid="carol@lab.example", user_profile="p-smp", profile_from="system", has_license=False
)
