"""Adapters: one client per outside system (Exchange, TMS, CMS, LDAP), translating vendor errors once."""

from __future__ import annotations
