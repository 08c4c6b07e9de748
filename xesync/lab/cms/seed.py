"""The state a fresh CMS simulator starts from (lab-contract.md, "The default fixture").

The TAC 212326 recipe: a global userProfile without licence (SMP+), a ``hasLicense=true`` profile on an
LDAP source whose filter selects the PMP group, and a complementary source for everyone else. Users then
come from an LDAP sync of the lab's directory, as on a real Call Bridge.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from xesync.lab.cms.state import CmsState, Obj, new_id
from xesync.lab.fixture import DirectoryLink

PROFILE_FLAGS = {
    "audioParticipationAllowed": "true",
    "videoParticipationAllowed": "true",
    "presentationParticipationAllowed": "true",
}


def _add(state: CmsState, plural: str, values: dict[str, str], **meta: str) -> Obj:
    obj = Obj(id=new_id(), values={k: v for k, v in values.items() if v != ""}, meta=dict(meta))
    state.objects[plural][obj.id] = obj
    return obj


def seed(state: CmsState, domain: str, directory: DirectoryLink | None) -> None:
    """Profiles, the Call Bridge, and (with a directory) the LDAP server, mapping and two sources."""
    smp = _add(state, "userprofiles", {"hasLicense": "false", **PROFILE_FLAGS}, role="smp")
    pmp = _add(state, "userprofiles", {"hasLicense": "true", **PROFILE_FLAGS}, role="pmp")
    state.system_profiles["userProfile"] = smp.id
    bridge = Obj(id=new_id(), values={"name": "lab-callbridge", "address": "127.0.0.1", "sipDomain": domain})
    state.call_bridges[bridge.id] = bridge
    if directory is None:
        return
    seeds = state.knobs.ldap
    server = _add(state, "ldapservers", _server_values(directory), role="lab")
    mapping = _add(
        state,
        "ldapmappings",
        {
            "jidMapping": seeds["jid_mapping"],
            "nameMapping": seeds["name_mapping"],
            "authenticationIdMapping": seeds["authentication_id_mapping"],
            "cdrTagMapping": seeds["cdr_tag_mapping"],
            "coSpaceNameMapping": seeds["space_name_mapping"],
            "coSpaceUriMapping": seeds["space_uri_mapping"],
            "coSpaceSecondaryUriMapping": seeds["space_secondary_uri_mapping"],
            "coSpaceCallIdMapping": seeds["space_call_id_mapping"],
        },
        role="lab",
    )
    for role, key, profile in (("pmp", "pmp_filter", pmp.id), ("other", "other_filter", "")):
        _add(
            state,
            "ldapsources",
            {
                "server": server.id,
                "mapping": mapping.id,
                "baseDn": directory.base_dn,
                "filter": seeds[key].replace("{pmp_group_dn}", directory.pmp_group_dn),
                "userProfile": profile,
            },
            role=role,
        )


def _server_values(directory: DirectoryLink) -> dict[str, str]:
    url = urlsplit(directory.url)
    if url.scheme == "ldif":
        # A lab-only address: the LDIF on ldap3's mock strategy (see xesync.lab.cms.ldapsync.connect).
        return {
            "address": directory.url,
            "portNumber": "0",
            "secure": "false",
            "username": directory.bind_dn,
            "password": directory.password,
        }
    secure = url.scheme == "ldaps"
    return {
        "address": url.hostname or "127.0.0.1",
        "portNumber": str(url.port or (636 if secure else 389)),
        "secure": "true" if secure else "false",
        "username": directory.bind_dn,
        "password": directory.password,
    }
