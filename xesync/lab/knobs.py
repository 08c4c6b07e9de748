"""What the simulators' knob sets share: showing them and applying a control-API change."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

K = TypeVar("K")


def knobs_as_dict(knobs: Any) -> dict[str, Any]:
    """A knob dataclass as the control API shows it, its ``password`` masked."""
    out = {f.name: getattr(knobs, f.name) for f in dataclasses.fields(knobs)}
    if "password" in out:
        out["password"] = "***"
    return out


def with_changes(knobs: K, changes: Mapping[str, Any], label: str) -> K:
    """A copy of ``knobs`` with ``changes`` applied (unchecked); unknown names raise ValueError."""
    names = {f.name for f in dataclasses.fields(knobs)}  # type: ignore[arg-type]
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(f"unknown {label} knob(s) {unknown}; known: {sorted(names)}")
    return dataclasses.replace(knobs, **dict(changes))  # type: ignore[type-var]
