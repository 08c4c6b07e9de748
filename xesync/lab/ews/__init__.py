"""The lab's EWS simulator: Exchange Web Services as unmodified exchangelib 5.6 speaks it.

Wire formats follow ``shared/spec/ews.md``; the room behaviour follows its §3. Start it through the lab
(``xesync lab serve``, :class:`xesync.lab.runtime.Lab`), or wrap :class:`EwsSimulator` in a
:class:`xesync.lab.http.LabHTTPServer`.
"""

from __future__ import annotations

from xesync.lab.ews.server import EwsSimulator

__all__ = ["EwsSimulator"]
