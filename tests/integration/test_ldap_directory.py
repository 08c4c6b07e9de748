"""The LDAP resolver against a real slapd and against the same LDIF on ldap3's mock strategy."""

from __future__ import annotations

import socket
import uuid
from datetime import timedelta

import ldap3
import pytest
from ldap_lab import PASSWORD, PMP_GROUP
from structlog.testing import capture_logs

from xesync import events
from xesync.config import GroupMembership, Secret, TlsConfig
from xesync.directory import NotInDirectory, Person
from xesync.errors import LdapLookupError, LdapTlsError, LdapUnavailableError, TransientError

MODES = [GroupMembership.AUTO, GroupMembership.MEMBER_OF, GroupMembership.WALK]


class Clock:
    """A hand-driven monotonic clock for the cache."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def person(result) -> Person:
    assert isinstance(result, Person), result
    return result


# ---------------------------------------------------------------------------------- lookups


def test_found_by_mail(lab_directory):
    """An organiser is found by mail, with every field the booking and the licence check need."""
    alice = person(lab_directory.resolve("alice@lab.example"))
    assert alice.dn == "uid=alice,ou=people,dc=lab,dc=example"
    assert alice.username == "alice"
    assert alice.tms_username == "LAB\\alice"
    assert alice.jid == "alice@lab.example"
    assert (alice.display_name, alice.first_name, alice.last_name) == ("Alice Example", "Alice", "Example")
    assert alice.email == "alice@lab.example"
    assert alice.pmp is True
    assert alice.pmp_group == PMP_GROUP
    assert alice.guid == str(uuid.UUID(alice.guid or ""))


def test_found_by_proxy_address(lab_directory):
    """A secondary smtp: proxy address finds its owner, whose primary address is mail."""
    bob = person(lab_directory.resolve("robert@lab.example"))
    assert bob.dn == "uid=bob,ou=people,dc=lab,dc=example"
    assert bob.email == "bob@lab.example"
    assert bob.addresses == frozenset({"bob@lab.example", "robert@lab.example"})


def test_primary_proxy_address_matches_whatever_the_prefix_case(lab_backend, make_directory):
    """With only proxyAddresses configured, the upper-case SMTP: primary address is found too."""
    directory = make_directory(lab_backend.target, mail_attributes=("proxyAddresses",))
    assert person(directory.resolve("BOB@lab.example")).username == "bob"


def test_found_by_user_principal_name(lab_directory):
    """A UPN that differs from the mail address finds the person; the primary address stays mail."""
    carol = person(lab_directory.resolve("carol.jones@lab.example"))
    assert carol.username == "carol"
    assert carol.email == "carol@lab.example"


def test_address_match_ignores_case_and_spaces(lab_directory):
    """Addresses match case-insensitively and surrounding spaces are ignored."""
    assert person(lab_directory.resolve("  ALICE@Lab.Example ")).username == "alice"


def test_unknown_address_is_not_in_directory(lab_directory):
    """An external organiser is a clear 'not in directory' value, logged as ldap.user_not_found."""
    with capture_logs() as logs:
        result = lab_directory.resolve("erin@partner.example")
    assert result == NotInDirectory("erin@partner.example")
    assert {"event": events.LDAP_USER_NOT_FOUND, "address": "erin@partner.example"}.items() <= logs[
        -1
    ].items()


@pytest.mark.parametrize(
    "address",
    [
        "*",
        "*@lab.example",
        "alice*",
        "*)(uid=*",
        "alice@lab.example)(|(mail=*",
        "alice@lab.example)(mail=*",
        "\\",
        "\\2a",
        "alice\\40lab.example",
        "\x00",
        "alice@lab.example\x00",
        "()",
        "(mail=alice@lab.example)",
    ],
)
def test_filter_injection_matches_nothing(lab_directory, address):
    """Filter metacharacters in an address are data: they match no entry and raise nothing."""
    assert lab_directory.resolve(address) == NotInDirectory(address.strip())


def test_empty_address_is_not_in_directory(lab_directory):
    """A blank organiser address is 'not in directory' without asking the server."""
    assert isinstance(lab_directory.resolve("   "), NotInDirectory)


@pytest.mark.parametrize("mode", MODES)
def test_nested_group_membership_counts(lab_backend, make_directory, mode):
    """Bob is PMP+ through video-team, a member of cms-pmp, whichever membership method is used."""
    directory = make_directory(lab_backend.target, group_membership=mode)
    bob = person(directory.resolve("bob@lab.example"))
    assert (bob.pmp, bob.pmp_group) == (True, PMP_GROUP)


@pytest.mark.parametrize("mode", MODES)
def test_people_outside_the_pmp_group_are_not_pmp(lab_backend, make_directory, mode):
    """Carol (in another group) and Dave (in none) are not PMP+."""
    directory = make_directory(lab_backend.target, group_membership=mode)
    assert person(directory.resolve("carol@lab.example")).pmp is False
    assert person(directory.resolve("dave@lab.example")).pmp is False


def test_auto_membership_finds_the_servers_memberof(lab_directory):
    """'auto' on OpenLDAP with the memberof overlay (and on the mock) settles on member_of."""
    assert lab_directory.membership is None
    lab_directory.resolve("alice@lab.example")
    assert lab_directory.membership is GroupMembership.MEMBER_OF


def test_templates_build_tms_user_name_and_jid(lab_backend, make_directory):
    """tms_username_format and jid_template are filled from the entry."""
    directory = make_directory(
        lab_backend.target, tms_username_format="{username}@{domain}", jid_template="{mail}", tms_domain="lab"
    )
    carol = person(directory.resolve("carol.jones@lab.example"))
    assert (carol.tms_username, carol.jid) == ("carol@lab", "carol@lab.example")


def test_bad_credentials_are_a_lookup_error(lab_backend, make_directory):
    """A wrong bind password is a permanent LdapLookupError that names the keys to fix."""
    directory = make_directory(lab_backend.target, password=Secret("not-the-password"))
    with pytest.raises(LdapLookupError, match=r"ldap\.password"):
        directory.resolve("alice@lab.example")


def test_password_case_matters(lab_backend, make_directory):
    """A bind password that differs only in case is refused (the mock alone would accept it)."""
    directory = make_directory(lab_backend.target, password=Secret(PASSWORD.upper()))
    with pytest.raises(LdapLookupError):
        directory.resolve("alice@lab.example")


def test_bad_base_dn_is_a_lookup_error(lab_backend, make_directory):
    """A base DN that does not exist is a permanent LdapLookupError that names ldap.base_dn."""
    directory = make_directory(lab_backend.target, base_dn="ou=nowhere,dc=lab,dc=example")
    with pytest.raises(LdapLookupError, match=r"ldap\.base_dn"):
        directory.resolve("alice@lab.example")


def test_the_bind_password_is_never_logged(lab_backend, make_directory):
    """Neither a successful lookup nor a refused bind logs the service account's password."""
    with capture_logs() as logs:
        make_directory(lab_backend.target).resolve("alice@lab.example")
        with pytest.raises(LdapLookupError):
            make_directory(lab_backend.target, password=Secret(PASSWORD + "x")).resolve("alice@lab.example")
    assert logs
    assert PASSWORD not in repr(logs)


# ---------------------------------------------------------------------------------- extended directory


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("address", "pmp"),
    [
        ("frank@lab.example", True),  # four levels of nesting
        ("gina@lab.example", False),  # a cycle that never reaches cms-pmp
        ("hank@lab.example", True),  # a cycle, one of whose groups is in cms-pmp
        ("jo@lab.example", True),  # a DN with a comma and parentheses
    ],
)
def test_membership_through_deep_nesting_and_cycles(extended_backend, make_directory, mode, address, pmp):
    """Deep nesting is followed to the end and group cycles terminate, in every membership mode."""
    directory = make_directory(extended_backend.target, group_membership=mode)
    assert person(directory.resolve(address)).pmp is pmp


def test_only_smtp_proxy_addresses_are_mail_addresses(extended_backend, make_directory):
    """An smtp: alias finds its owner; the text of sip: and X500: proxies does not."""
    directory = make_directory(extended_backend.target)
    ivan = person(directory.resolve("ip@old.example"))
    assert ivan.username == "ivan"
    assert "ivan.petrov@lab.example" in ivan.addresses
    assert isinstance(directory.resolve("ivan.sip@lab.example"), NotInDirectory)
    assert isinstance(directory.resolve("ivan.x500@lab.example"), NotInDirectory)


def test_base64_and_continued_values_are_read(extended_backend, make_directory):
    """Base64 (non-ASCII) and folded LDIF values arrive intact through either backend."""
    aase = person(make_directory(extended_backend.target).resolve("aase@lab.example"))
    assert (aase.display_name, aase.first_name, aase.last_name) == ("Åse Ødegård", "Åse", "Odegaard")


def test_mail_outranks_user_principal_name(extended_backend, make_directory):
    """When one entry has the address as mail and another as UPN, the mail owner is the organiser."""
    assert person(make_directory(extended_backend.target).resolve("kim@lab.example")).username == "kim"


def test_an_ambiguous_address_is_a_lookup_error(extended_backend, make_directory):
    """Two entries with the same mail address are refused, naming both."""
    directory = make_directory(extended_backend.target)
    with pytest.raises(LdapLookupError, match=r"twin1.*twin2"):
        directory.resolve("twins@lab.example")


def test_an_entry_without_logon_name_is_a_lookup_error(extended_backend, make_directory):
    """An entry lacking username_attribute cannot become a TMS user; the error names the key."""
    directory = make_directory(extended_backend.target)
    with pytest.raises(LdapLookupError, match=r"ldap\.username_attribute"):
        directory.resolve("nemo@lab.example")


# ---------------------------------------------------------------------------------- outages and TLS


@pytest.mark.slapd
def test_server_going_away_mid_run_is_retryable(fresh_slapd, make_directory):
    """Stopping slapd mid-run gives a retryable LdapUnavailableError; cached answers still serve."""
    directory = make_directory(fresh_slapd.url)
    assert person(directory.resolve("alice@lab.example")).pmp
    fresh_slapd.stop()
    with capture_logs() as logs, pytest.raises(LdapUnavailableError) as caught:
        directory.resolve("dave@lab.example")
    assert isinstance(caught.value, TransientError)
    assert any(e["event"] == events.LDAP_REQUEST_FAILED and e.get("retry") for e in logs)
    with pytest.raises(LdapUnavailableError):
        directory.resolve("dave@lab.example")
    assert person(directory.resolve("alice@lab.example")).username == "alice"


@pytest.mark.slapd
def test_a_dropped_connection_is_reopened_once(lab_slapd, make_directory):
    """When the connection drops between lookups, the next lookup reconnects and succeeds."""
    directory = make_directory(lab_slapd.url)
    directory.resolve("alice@lab.example")
    directory._connector.conn.socket.shutdown(socket.SHUT_RDWR)
    with capture_logs() as logs:
        dave = person(directory.resolve("dave@lab.example"))
    assert dave.username == "dave"
    assert [e["event"] for e in logs].count(events.LDAP_RECONNECTED) == 1


def test_an_unreachable_server_is_retryable(make_directory):
    """Nothing listening on the port gives LdapUnavailableError, not a crash."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = make_directory(f"ldap://127.0.0.1:{port}", timeout=timedelta(seconds=2))
    with pytest.raises(LdapUnavailableError, match=str(port)):
        directory.resolve("alice@lab.example")


@pytest.mark.slapd
@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_tls_verification_failure_names_the_fix(lab_slapd, make_directory, start_tls):
    """An unverifiable (self-signed) certificate is an LdapTlsError that says to set ldap.ca_file."""
    url = lab_slapd.url if start_tls else lab_slapd.ldaps_url
    directory = make_directory(url, start_tls=start_tls)
    with pytest.raises(LdapTlsError, match=r"ldap\.ca_file") as caught:
        directory.resolve("alice@lab.example")
    assert "self-signed" in caught.value.reason


@pytest.mark.slapd
@pytest.mark.parametrize("start_tls", [False, True], ids=["ldaps", "starttls"])
def test_tls_verifies_with_the_configured_ca(lab_slapd, make_directory, start_tls):
    """With ca_file set to the server's CA, ldaps:// and StartTLS both verify and resolve."""
    url = lab_slapd.url if start_tls else lab_slapd.ldaps_url
    directory = make_directory(url, start_tls=start_tls, tls=TlsConfig(ca_file=lab_slapd.ca_file))
    with capture_logs() as logs:
        assert person(directory.resolve("alice@lab.example")).pmp
    connected = next(e for e in logs if e["event"] == events.LDAP_CONNECTED)
    assert connected["tls"] == ("starttls" if start_tls else "ldaps")


@pytest.mark.slapd
def test_tls_verification_can_be_switched_off(lab_slapd, make_directory):
    """verify_tls = false accepts the self-signed certificate."""
    directory = make_directory(lab_slapd.ldaps_url, tls=TlsConfig(verify=False))
    assert person(directory.resolve("bob@lab.example")).pmp


# ---------------------------------------------------------------------------------- cache


@pytest.mark.slapd
def test_answers_are_cached_for_the_ttl(fresh_slapd, make_directory):
    """A change in the directory shows only after cache_ttl, for found and for unknown addresses."""
    clock = Clock()
    directory = make_directory(fresh_slapd.url, cache_ttl=timedelta(minutes=15))
    directory._clock = clock
    assert person(directory.resolve("alice@lab.example")).pmp
    assert isinstance(directory.resolve("new@lab.example"), NotInDirectory)
    admin = fresh_slapd.connection()
    admin.modify(PMP_GROUP, {"member": [(ldap3.MODIFY_DELETE, ["uid=alice,ou=people,dc=lab,dc=example"])]})
    admin.add(
        "uid=new,ou=people,dc=lab,dc=example",
        ["inetOrgPerson"],
        {"uid": "new", "cn": "New Person", "sn": "Person", "mail": "new@lab.example"},
    )
    admin.unbind()
    clock.now += 15 * 60 - 1
    assert person(directory.resolve("alice@lab.example")).pmp
    assert isinstance(directory.resolve("new@lab.example"), NotInDirectory)
    clock.now += 2
    assert person(directory.resolve("alice@lab.example")).pmp is False
    assert person(directory.resolve("new@lab.example")).username == "new"
