"""Reading one TOML table: typed getters that collect problems with key paths and flag unknown keys.

A key that is present is used as written or refused with a problem; only an absent key takes the
default. ``0``, ``"0s"``, ``[]`` and ``""`` are values, never a reason to fall back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from xesync.config.model import Secret, TlsConfig

T = TypeVar("T")

LEVELS = ("debug", "info", "warning", "error", "critical")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def as_duration(value: object) -> timedelta:
    """Convert ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"250ms"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as '90s', '15m' or '2h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError("must be a duration such as '90s', '15m' or '2h'")
    if seconds < 0:
        raise ValueError("must not be negative")
    return timedelta(seconds=seconds)


class Reader:
    """Walks one table, collecting problems with key paths and flagging unknown keys."""

    def __init__(
        self,
        table: Mapping[str, Any],
        path: str,
        problems: list[str],
        env: Mapping[str, str],
        base: Path | None = None,
    ) -> None:
        self.base = base
        self.table = dict(table)
        self.path = path
        self.problems = problems
        self.env = env
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, text: str) -> None:
        self.problems.append(f"{self.key(name)}: {text}")

    def get(self, name: str, check: Callable[[Any], T], default: T | None, required: bool) -> T | None:
        self.seen.add(name)
        if name not in self.table:
            if required:
                self.problem(name, "is required")
            return default
        try:
            return check(self.table[name])
        except ValueError as exc:
            self.problem(name, str(exc))
            return default

    def optional(self, name: str, check: Callable[[Any], T], default: T) -> T:
        """The checked value if present (whatever it is), else ``default``; a bad value is a problem."""
        value = self.get(name, check, default, required=False)
        return default if value is None else value

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        return self.get(name, check_str, default, required)

    def string(self, name: str, default: str) -> str:
        """A non-empty string: an empty one is refused, not replaced by ``default``."""
        return self.optional(name, check_nonempty, default)

    def req_str(self, name: str) -> str:
        return self.get(name, check_nonempty, None, required=True) or ""

    def integer(self, name: str, default: int, *, minimum: int | None = None) -> int:
        def check(v: Any) -> int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError("must be an integer")
            if minimum is not None and v < minimum:
                raise ValueError(f"must be at least {minimum}")
            return v

        return self.optional(name, check, default)

    def flag(self, name: str, default: bool) -> bool:
        def check(v: Any) -> bool:
            if not isinstance(v, bool):
                raise ValueError("must be true or false")
            return v

        value = self.get(name, check, default, required=False)
        return default if value is None else value

    def duration(self, name: str, default: timedelta, *, positive: bool = True) -> timedelta:
        """A duration; ``positive=False`` lets ``0`` through where it means "off" (e.g. no cache)."""

        def check(v: Any) -> timedelta:
            value = as_duration(v)
            if positive and not value:
                raise ValueError("must be longer than 0s")
            return value

        return self.optional(name, check, default)

    def enum(self, name: str, kind: type[T], default: T) -> T:
        def check(v: Any) -> T:
            try:
                return kind(v)  # type: ignore[call-arg]
            except ValueError:
                choices = ", ".join(repr(m.value) for m in kind)  # type: ignore[attr-defined]
                raise ValueError(f"must be one of {choices}") from None

        return self.optional(name, check, default)

    def str_list(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        def check(v: Any) -> tuple[str, ...]:
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise ValueError("must be a list of non-empty strings")
            return tuple(v)

        return self.optional(name, check, default)

    def path_(
        self, name: str, default: Path | None = None, *, relative_to_config: bool = False
    ) -> Path | None:
        """A path; with ``relative_to_config`` a relative one is taken from the config file's directory."""
        value = self.get(name, check_nonempty, None, required=False)
        if value is None:
            return default
        path = Path(value)
        if relative_to_config and not path.is_absolute() and self.base is not None:
            path = self.base / path
        return path

    def table_(self, name: str) -> Mapping[str, Any] | None:
        self.seen.add(name)
        value = self.table.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(name, "must be a table")
            return None
        return value

    def secret(self, name: str, *, required: bool) -> Secret | None:
        """Read ``name`` / ``name_file`` / ``name_env`` / ``name_credential``: exactly one of them."""
        variants = {
            name: "inline",
            f"{name}_file": "file",
            f"{name}_env": "env",
            f"{name}_credential": "credential",
        }
        self.seen.update(variants)
        given = [k for k in variants if k in self.table]
        if len(given) > 1:
            self.problem(name, f"give only one of {', '.join(given)}")
            return None
        if not given:
            if required:
                self.problem(name, f"is required (or {name}_file, {name}_env, {name}_credential)")
            return None
        key = given[0]
        raw = self.table[key]
        if not isinstance(raw, str) or not raw:
            self.problem(key, "must be a non-empty string")
            return None
        try:
            return _load_secret(variants[key], raw, self.env, self.base)
        except ValueError as exc:
            self.problem(key, str(exc))
            return None

    def finish(self) -> None:
        for name in sorted(set(self.table) - self.seen):
            self.problem(name, "unknown key")


def ca_file_problem(ca_file: Path | None) -> str | None:
    """Why a ``ca_file`` is unusable, or ``None`` (ldap3 and requests would not name the key)."""
    if ca_file is not None and not ca_file.is_file():
        return f"no such file: {ca_file}"
    return None


def read_tls(r: Reader) -> TlsConfig:
    """``verify_tls`` and ``ca_file`` of a section; a relative ``ca_file`` is relative to the config file."""
    tls = TlsConfig(
        verify=r.flag("verify_tls", default=True), ca_file=r.path_("ca_file", relative_to_config=True)
    )
    problem = ca_file_problem(tls.ca_file)
    if problem:
        r.problem("ca_file", problem)
    return tls


def check_str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("must be a string")
    return v


def check_nonempty(v: Any) -> str:
    if not check_str(v).strip():
        raise ValueError("must not be empty")
    return str(v)


def _load_secret(kind: str, raw: str, env: Mapping[str, str], base: Path | None) -> Secret:
    """One secret from its source kind (inline, file, env, credential).

    A relative ``*_file`` path is relative to the configuration file's directory.
    """
    if kind == "inline":
        return Secret(raw)
    if kind == "file":
        path = Path(raw)
        if not path.is_absolute() and base is not None:
            path = base / path
        return Secret(_read_secret_file(path), f"file:{path}")
    if kind == "env":
        if raw not in env:
            raise ValueError(f"environment variable {raw} is not set")
        return Secret(env[raw], f"env:{raw}")
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ValueError("$CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the systemd unit)")
    return Secret(_read_secret_file(Path(directory) / raw), f"credential:{raw}")


def _read_secret_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
