"""The lab directory's names that LDAP tests compare against: its LDIF, service password and PMP+ group."""

from __future__ import annotations

from pathlib import Path

LAB_LDIF = Path(__file__).resolve().parents[1] / "xesync" / "lab" / "data" / "lab.ldif"
PASSWORD = "lab-ldap-secret"
PMP_GROUP = "cn=cms-pmp,ou=groups,dc=lab,dc=example"
