"""The lab: protocol-faithful simulators of EWS, the TMS Booking API and the CMS API.

A product feature, not a test helper: admins use it for dry runs and ``make demo`` runs on it. The
contract is ``shared/spec/lab-contract.md``; :class:`Lab` is its Python API (the same start, clock,
faults, request counts and reset as the control API). The core of xesync never imports this package.
"""

from __future__ import annotations

from xesync.lab.runtime import Lab

__all__ = ["Lab"]
