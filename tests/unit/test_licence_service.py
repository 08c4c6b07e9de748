"""The licence pre-flight over a fake CMS: the predicted licence, the advice for the organiser, and an
unknown prediction (never an exception) when CMS is down or the adapter fails.

The per-sitting checker is tested in test_licence_checker.py; the fakes are in tests/licence_fakes.py.
"""

from __future__ import annotations

from licence_fakes import FakeCallMonitor, make_booking, person
from structlog.testing import capture_logs

from xesync import events
from xesync.licence_service import LicencePreflightService

# ---------------------------------------------------------------------------------- pre-flight


def test_preflight_predicts_pmp_for_a_licensed_cms_user():
    """Alice, in the PMP+ group and a licensed CMS user, is predicted PMP+ with no note for her."""
    prediction = LicencePreflightService(FakeCallMonitor()).predict(make_booking(), person("alice", pmp=True))
    assert (prediction.licence, prediction.note) == ("pmp", "")
    assert "alice@lab.example" in prediction.reason


def test_preflight_predicts_smp_and_says_what_to_ask_it_for():
    """Carol, outside the group and unlicensed, is predicted SMP+; her note names what to ask IT for."""
    service = LicencePreflightService(FakeCallMonitor(), pmp_groups=("cn=cms-pmp",))
    prediction = service.predict(make_booking(organiser="carol@lab.example"), person("carol", pmp=False))
    assert prediction.licence == "smp"
    assert "ask IT for membership of cn=cms-pmp" in prediction.note


def test_preflight_without_advice_leaves_the_confirmation_alone():
    """With advise_organiser off, an SMP+ prediction carries no note."""
    service = LicencePreflightService(FakeCallMonitor(), advise_organiser=False)
    assert service.predict(make_booking(), person("carol", pmp=False)).note == ""


def test_preflight_never_raises_when_cms_is_down():
    """CMS down: licence unknown, the reason says so and what the directory suggests; an event is logged."""
    with capture_logs() as logs:
        prediction = LicencePreflightService(FakeCallMonitor(down=True)).predict(
            make_booking(), person("alice", pmp=True)
        )
    assert prediction.licence is None
    assert "CMS could not be asked" in prediction.reason
    assert "the directory alone suggests PMP+" in prediction.reason
    assert [e["event"] for e in logs] == [events.LICENCE_PREDICTION_FAILED]


def test_preflight_turns_a_bug_into_an_unknown_prediction():
    """An unexpected error in the adapter gives licence=None instead of breaking the sync."""
    monitor = FakeCallMonitor()
    monitor.find_user = lambda **_: 1 / 0  # type: ignore[method-assign]
    with capture_logs():
        prediction = LicencePreflightService(monitor).predict(make_booking(), person("alice", pmp=True))
    assert prediction.licence is None
    assert "ZeroDivisionError" in prediction.reason


def test_preflight_without_a_directory_asks_cms_by_e_mail():
    """No directory: the organiser's CMS user is found by e-mail and its licence decides."""
    service = LicencePreflightService(FakeCallMonitor())
    assert service.predict(make_booking(), None).licence == "pmp"
    assert service.predict(make_booking(organiser="carol@lab.example"), None).licence == "smp"
    assert service.predict(make_booking(organiser="erin@partner.example"), None).licence == "smp"
