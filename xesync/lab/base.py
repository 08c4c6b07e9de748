"""What every lab simulator offers the lab runtime, beyond answering HTTP (:class:`LabService`)."""

from __future__ import annotations

from typing import Any, Protocol

from xesync.lab.http import LabService


class ControlError(Exception):
    """A control-API call a simulator refuses; answered with ``status`` and ``message`` as JSON."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class Simulator(LabService, Protocol):
    """A simulator the lab can start, describe, reset and steer.

    ``fault_kinds`` are the simulator's own fault kinds (the lab core handles ``latency``,
    ``http_status`` and ``drop_connection`` itself).
    """

    fault_kinds: frozenset[str]

    def describe(self, base_url: str) -> dict[str, Any]:
        """This simulator's section of the JSON line ``xesync lab serve`` prints."""
        ...

    def state(self) -> dict[str, Any]:
        """A summary for ``GET /lab/state``."""
        ...

    def reset(self) -> None:
        """Back to the fixture (``POST /lab/reset``)."""
        ...

    def control(self, action: str, method: str, body: Any) -> Any:
        """Handle ``METHOD /lab/<name>/<action>`` with a parsed JSON body; return JSON-able data.

        :raises ControlError: for a bad action or body.
        """
        ...
