"""The licence prediction at booking, table-driven: it follows the CMS profile (the directory when CMS
was not asked), with advice for the organiser when it predicts SMP+."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from licence_people import ALICE, ALICE_CMS, CAROL, CAROL_CMS, ERIN

from xesync.cms_facts import CmsUser
from xesync.directory import NotInDirectory, Person
from xesync.licence import Licence, predict


@dataclass(frozen=True)
class PredictionCase:
    name: str
    organiser: Person | NotInDirectory
    user: CmsUser | None
    checked: bool
    licence: Licence
    reason_has: tuple[str, ...]
    ask_has: tuple[str, ...] | None


# Whether CMS was asked at booking.
ASKED, NOT_ASKED = True, False

PREDICTIONS = [
    PredictionCase(
        "PMP+ group and licensed CMS user", ALICE, ALICE_CMS, ASKED, Licence.PMP, ("user level",), None
    ),
    PredictionCase(
        "external organiser",
        ERIN,
        None,
        ASKED,
        Licence.SMP,
        ("not in the directory",),
        ("erin@partner.example", "cn=cms-pmp"),
    ),
    PredictionCase(
        "PMP+ group but not imported into CMS",
        ALICE,
        None,
        ASKED,
        Licence.SMP,
        ("no user alice@lab.example",),
        ("import of alice@lab.example",),
    ),
    PredictionCase(
        "PMP+ group but an unlicensed CMS profile",
        ALICE,
        replace(ALICE_CMS, has_license=False, profile_from="system"),
        ASKED,
        Licence.SMP,
        ("system level", "no hasLicense"),
        ("hasLicense=true",),
    ),
    PredictionCase(
        "outside the group",
        CAROL,
        CAROL_CMS,
        ASKED,
        Licence.SMP,
        ("not in cn=cms-pmp",),
        ("membership of cn=cms-pmp",),
    ),
    PredictionCase(
        "outside the group, not in CMS", CAROL, None, ASKED, Licence.SMP, ("no user carol",), ("membership",)
    ),
    PredictionCase(
        "outside the group but CMS licenses them",
        CAROL,
        replace(CAROL_CMS, has_license=True, profile_from="tenant"),
        ASKED,
        Licence.PMP,
        ("tenant level", "directory does not list them"),
        None,
    ),
    PredictionCase(
        "CMS down, PMP+ group", ALICE, None, NOT_ASKED, Licence.PMP, ("could not be asked",), None
    ),
    PredictionCase(
        "CMS down, outside", CAROL, None, NOT_ASKED, Licence.SMP, ("could not be asked",), ("membership",)
    ),
]


@pytest.mark.parametrize("case", PREDICTIONS, ids=[c.name for c in PREDICTIONS])
def test_prediction_table(case):
    """The prediction follows the CMS profile (the directory if CMS was not asked), with advice for SMP+."""
    got = predict(case.organiser, case.user, cms_checked=case.checked, pmp_groups=("cn=cms-pmp,ou=groups",))
    assert got.licence is case.licence
    for part in case.reason_has:
        assert part in got.reason
    if case.ask_has is None:
        assert got.ask_it is None
    else:
        assert got.ask_it is not None
        for part in case.ask_has:
            assert part in got.ask_it
