"""Routing of ``/api/v1`` paths: case-insensitive segments, ids in between, canonical camelCase names.

TMS calls ``/api/v1/cospaces/<id>`` and ``/api/v1/calllegs`` and gets 200 (cms-api.md §1.1), so
literal segments match case-insensitively; ``Location`` headers and request counts use the canonical
camelCase template (``/coSpaces/{id}/coSpaceUsers``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from xesync.lab.cms.state import CmsState
from xesync.lab.cms.wire import CmsFailure, Fields, collection_doc, paging, parse_form
from xesync.lab.http import LabResponse

ID = "{id}"


@dataclass(slots=True)
class Req:
    """A CMS API request, reduced to what the handlers read."""

    method: str
    query: dict[str, list[str]]
    body: bytes
    _form: dict[str, str] | None = field(default=None, repr=False)

    def form(self) -> dict[str, str]:
        """The form-encoded body (parsed once)."""
        if self._form is None:
            self._form = parse_form(self.body)
        return self._form

    def q(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None


Handler = Callable[[CmsState, Req, list[str]], LabResponse]


@dataclass(frozen=True, slots=True)
class Route:
    """A path template and its handlers per method."""

    template: tuple[str, ...]
    methods: Mapping[str, Handler]

    @property
    def operation(self) -> str:
        """The canonical template, e.g. ``/coSpaces/{id}/coSpaceUsers``."""
        return "/" + "/".join(self.template)

    def match(self, segments: Sequence[str]) -> list[str] | None:
        """The ids in ``segments`` if they fit the template."""
        if len(segments) != len(self.template):
            return None
        ids: list[str] = []
        for want, got in zip(self.template, segments, strict=True):
            if want == ID:
                ids.append(got)
            elif want.lower() != got.lower():
                return None
        return ids


class Router:
    """Finds the route of a path; literal routes win over id routes (``/system/profiles``)."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: sum(1 for s in r.template if s == ID))

    def find(self, segments: Sequence[str]) -> tuple[Route, list[str]] | None:
        """The first matching route and its ids."""
        for route in self.routes:
            ids = route.match(segments)
            if ids is not None:
                return route, ids
        return None


def invalid_operation() -> CmsFailure:
    """400 ``invalidOperation``: a method the object does not support (e.g. POST /users)."""
    return CmsFailure(400, "invalidOperation")


def page_of(
    state: CmsState, req: Req, plural: str, singular: str, items: Sequence[tuple[str, Fields]]
) -> LabResponse:
    """A collection page under the server's cap for ``plural``; ``total`` counts every match."""
    page = paging(req.query, state.knobs.cap(plural))
    return collection_doc(plural, singular, len(items), page.apply(items))


def text_filter(req: Req, values: Iterable[str | None], name: str = "filter") -> bool:
    """Whether a free-text ``filter=`` matches any of ``values`` (substring, case-insensitive).

    spec: cms-api.md §1.3 and §6.7: which fields ``filter`` matches is [unconfirmed]; the lab matches
    the name/URI-like fields of each collection.
    """
    wanted = req.q(name)
    if not wanted:
        return True
    low = wanted.casefold()
    return any(v and low in v.casefold() for v in values)


def location(*parts: str) -> str:
    """``/api/v1/<parts>``."""
    return "/api/v1/" + "/".join(parts)
