"""The lab: protocol-faithful simulators of EWS, the TMS Booking API and the CMS API.

A product feature, not a test helper: admins use it for dry runs and ``make demo`` runs on it. The
contract is ``shared/spec/lab-contract.md``. The core of xesync never imports this package.
"""

from __future__ import annotations
