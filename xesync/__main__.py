"""``python -m xesync`` runs the same CLI as the ``xesync`` console script."""

from __future__ import annotations

from xesync.cli import app

if __name__ == "__main__":
    app(prog_name="xesync")
