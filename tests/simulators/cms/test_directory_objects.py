"""Users, tenants, /system/profiles and the LDAP configuration objects over raw HTTP (§2.3, §2.7)."""

from __future__ import annotations


def _user_id(api, email):
    return api.xml("/users", emailFilter=email)[0].get("id")


def test_users_come_from_the_directory_with_list_and_detail_fields(api):
    """The fixture sync imported alice..dave; list items carry userJid, details name, email and profile."""
    jids = sorted(api.text(u, "userJid") for u in api.all("/users"))
    assert jids == ["alice@lab.example", "bob@lab.example", "carol@lab.example", "dave@lab.example"]
    item = api.all("/users", filter="alice")[0]
    assert [c.tag for c in item] == ["userJid"]
    got = api.xml(f"/users/{item.get('id')}")
    assert (api.text(got, "name"), api.text(got, "email"), api.text(got, "authenticationId")) == (
        "Alice Example",
        "alice@lab.example",
        "alice",
    )
    profile = api.text(got, "userProfile")
    assert api.text(api.xml(f"/userProfiles/{profile}"), "hasLicense") == "true"


def test_user_filters(api):
    """filter is free text; emailFilter is exact; cdrTagFilter matches nobody without cdr tags."""
    assert [api.text(u, "userJid") for u in api.all("/users", filter="Builder")] == ["bob@lab.example"]
    assert api.all("/users", emailFilter="bob@lab") == []
    assert len(api.all("/users", emailFilter="BOB@lab.example")) == 1
    assert api.all("/users", cdrTagFilter="x") == []


def test_unlicensed_user_shows_no_profile_unless_the_knob_says_inherited(cms, api):
    """carol has no source profile: GET shows none, or the global one with user_shows_inherited_profile."""
    carol = _user_id(api, "carol@lab.example")
    assert api.xml(f"/users/{carol}").find("userProfile") is None
    cms.knobs(user_shows_inherited_profile=True)
    profile = api.text(api.xml(f"/users/{carol}"), "userProfile")
    assert profile == api.text(api.xml("/system/profiles"), "userProfile")


def test_users_cannot_be_changed_through_the_api(api):
    """DELETE and PUT on an LDAP user answer invalidOperation."""
    alice = _user_id(api, "alice@lab.example")
    assert api.failure(api.delete(f"/users/{alice}")) == (400, "invalidOperation", {})
    assert api.failure(api.put(f"/users/{alice}", name="x")) == (400, "invalidOperation", {})


def test_user_cospaces_lists_memberships(api):
    """/users/<id>/usercoSpaces lists the spaces the user belongs to, with coSpaceId."""
    alice = _user_id(api, "alice@lab.example")
    personal = next(s for s in api.all("/coSpaces") if api.text(s, "uri") == "alice.space").get("id")
    extra = api.create("/coSpaces", name="Extra")
    api.create(f"/coSpaces/{extra}/coSpaceUsers", userJid="alice@lab.example")
    got = api.xml(f"/users/{alice}/usercoSpaces")
    assert got.tag == "userCoSpaces"
    assert sorted(api.text(i, "coSpaceId") for i in got) == sorted([personal, extra])


def test_system_profiles_get_and_put(api):
    """PUT /system/profiles attaches a global userProfile; a missing id is userProfileDoesNotExist."""
    licensed = api.create("/userProfiles", hasLicense="true")
    api.ok(api.put("/system/profiles", userProfile=licensed))
    assert api.text(api.xml("/system/profiles"), "userProfile") == licensed
    missing = "00000000-0000-0000-0000-000000000000"
    assert api.failure(api.put("/system/profiles", userProfile=missing)) == (
        400,
        "userProfileDoesNotExist",
        {},
    )
    api.ok(api.put("/system/profiles", userProfile=""))
    assert api.xml("/system/profiles").find("userProfile") is None


def test_global_profile_licenses_everyone_without_a_source_profile(api):
    """Attaching a hasLicense=true profile globally licenses the users whose source sets no profile."""
    assert api.text(api.xml("/system/multipartyLicensing"), "personalLicenses") == "2"
    api.ok(api.put("/system/profiles", userProfile=api.create("/userProfiles", hasLicense="true")))
    assert api.text(api.xml("/system/multipartyLicensing"), "personalLicenses") == "4"


def test_tenants_crud(api):
    """Tenants support CRUD with name and userProfile; a missing tenant is 404 tenantDoesNotExist."""
    profile = api.create("/userProfiles", hasLicense="false")
    tenant = api.create("/tenants", name="Tenant A", userProfile=profile)
    assert [api.text(t, "name") for t in api.all("/tenants", filter="tenant a")] == ["Tenant A"]
    assert api.text(api.xml(f"/tenants/{tenant}"), "userProfile") == profile
    api.ok(api.delete(f"/tenants/{tenant}"))
    assert api.failure(api.get(f"/tenants/{tenant}"))[:2] == (404, "tenantDoesNotExist")


def test_user_profile_fields_by_version(cms, api):
    """userProfiles keep hasLicense in 3.0 but lose the 2.x can* fields."""
    profile = api.create("/userProfiles", hasLicense="true", canCreateCoSpaces="true")
    assert api.text(api.xml(f"/userProfiles/{profile}"), "canCreateCoSpaces") == "true"
    cms.knobs(cms_version="3.0")
    got = api.xml(f"/userProfiles/{profile}")
    assert (api.text(got, "hasLicense"), got.find("canCreateCoSpaces")) == ("true", None)


def test_ldap_objects_crud_and_required_parameters(api):
    """ldapServers/ldapMappings/ldapSources support CRUD; required parameters and references are checked."""
    assert api.failure(api.post("/ldapServers", address="ldap.lab.example"))[:2] == (400, "parameterError")
    server = api.create(
        "/ldapServers",
        address="ldap.lab.example",
        portNumber="389",
        secure="false",
        username="cn=x",
        password="pw",
    )
    got = api.xml(f"/ldapServers/{server}")
    assert (api.text(got, "address"), api.text(got, "portNumber"), got.find("password")) == (
        "ldap.lab.example",
        "389",
        None,
    )
    mapping = api.create("/ldapMappings", jidMapping="$uid$@lab.example", coSpaceUriMapping="$uid$.space")
    assert api.failure(api.post("/ldapSources", server=server, baseDn="dc=x"))[:2] == (400, "parameterError")
    ghost = "00000000-0000-0000-0000-000000000000"
    assert api.failure(api.post("/ldapSources", server=ghost, mapping=mapping, baseDn="dc=x")) == (
        400,
        "ldapServerDoesNotExist",
        {},
    )
    source = api.create("/ldapSources", server=server, mapping=mapping, baseDn="dc=x", filter="(uid=*)")
    assert [s.get("id") for s in api.all("/ldapSources", filter="dc=x")] == [source]
    api.ok(api.put(f"/ldapSources/{source}", filter="(mail=*)"))
    assert api.text(api.xml(f"/ldapSources/{source}"), "filter") == "(mail=*)"
    api.ok(api.delete(f"/ldapSources/{source}"))
    assert api.failure(api.get(f"/ldapSources/{source}"))[:2] == (404, "ldapSourceDoesNotExist")
    assert api.failure(api.get(f"/ldapMappings/{ghost}"))[:2] == (404, "ldapMappingDoesNotExist")
