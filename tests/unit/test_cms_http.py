"""The pure parts of the CMS HTTP layer: API roots, Retry-After values and failureDetails codes."""

from __future__ import annotations

import pytest
import requests

from xesync.adapters.cms_http import _http_error, _retry_after, api_root


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("https://cb1.example:445/api/v1", "https://cb1.example:445/api/v1"),
        ("https://cb1.example:445/api/v1/", "https://cb1.example:445/api/v1"),
        ("https://cb1.example:445", "https://cb1.example:445/api/v1"),
        ("https://cb1.example:445/API/V1", "https://cb1.example:445/API/V1"),
    ],
)
def test_api_root(url, root):
    """A bridge URL gets /api/v1 once, whatever trailing slash or case it was written with."""
    assert api_root(url) == root


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: no wait
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(header, seconds):
    """Retry-After is read as delta-seconds or an HTTP date; anything else is ignored."""
    assert _retry_after(header) == seconds


def response(status: int, body: bytes) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = body
    return resp


@pytest.mark.parametrize(
    ("status", "body", "failure"),
    [
        (
            404,
            b'<?xml version="1.0"?>\n<failureDetails><coSpaceDoesNotExist /></failureDetails>',
            "coSpaceDoesNotExist",
        ),
        (404, b"<failureDetails><unrecognisedObject/></failureDetails>", "unrecognizedObject"),
        (404, b"<failureDetails><unrecognizedObject/></failureDetails>", "unrecognizedObject"),
        (
            400,
            b'<failureDetails><parameterError parameter="streamUrl" error="invalidValue" /></failureDetails>',
            "parameterError",
        ),
        (401, b"", None),
        (400, b"not xml at all", None),
        (400, b"<other><thing/></other>", None),
    ],
    ids=["does-not-exist", "british", "american", "parameter-error", "no-body", "not-xml", "not-failure"],
)
def test_failure_details_become_cms_http_errors(status, body, failure):
    """The first child of failureDetails is the code (both spellings unified); other bodies give none."""
    err = _http_error(response(status, body), "/coSpaces/x")
    assert (err.status, err.failure, err.path) == (status, failure, "/coSpaces/x")
