"""The lab's Cisco TMS simulator: Booking API and Remote Setup API (``tms-booking-api.md``).

:class:`TmsSimulator` serves both SOAP services behind :class:`xesync.lab.http.LabHTTPServer` and,
when given the CMS simulator's API, schedules calls on it as TMS 15.x does (``cms-api.md`` §4).
"""

from __future__ import annotations

from xesync.lab.tms.server import TmsSimulator

__all__ = ["TmsSimulator"]
