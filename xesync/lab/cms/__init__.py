"""The Cisco Meeting Server API simulator (``shared/spec/cms-api.md``): REST objects, LDAP sync and the
PMP+/SMP+ licence engine. The lab runtime builds it as ``CmsSimulator(fixture, clock, directory=…)``.
"""

from __future__ import annotations

from xesync.lab.cms.server import CmsSimulator

__all__ = ["CmsSimulator"]
