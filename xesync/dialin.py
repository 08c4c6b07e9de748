"""The dial-in block in a room item's body: rendered between markers, found again, replaced in place.

TMS gives the dial-in details only as text (``ConferenceInfoText``/``ConferenceInfoHtml``,
tms-booking-api.md §8.1). xesync writes them into the room copy's body between two markers, so that
an update replaces the block instead of adding a second one, and so that the planner can tell from
the body alone whether the room copy already shows the current details (no store read, no request).

- Text bodies get ``[xesync dial-in begin]`` … ``[xesync dial-in end]`` lines.
- HTML bodies get the same markers as HTML comments around a ``<div>``: Exchange keeps comments in
  HTML bodies, and a reader sees only the details.
- :func:`digest` hashes the block's visible text with whitespace collapsed, because Exchange may
  re-wrap or re-indent a body it stores; a digest that differs means "write again".

Pure functions only; nothing here logs or reads a clock.
"""

from __future__ import annotations

import hashlib
import html
import re
from typing import Final

TEXT_BEGIN: Final = "[xesync dial-in begin]"
TEXT_END: Final = "[xesync dial-in end]"
HTML_BEGIN: Final = "<!-- xesync dial-in begin -->"
HTML_END: Final = "<!-- xesync dial-in end -->"

_TEXT_BLOCK = re.compile(re.escape(TEXT_BEGIN) + r".*?" + re.escape(TEXT_END), re.DOTALL)
# Exchange may re-serialise comments with other spacing; match the words, not the exact bytes.
_HTML_BLOCK = re.compile(r"<!--\s*xesync dial-in begin\s*-->.*?<!--\s*xesync dial-in end\s*-->", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def render_text(info_text: str) -> str:
    """The text block for ``ConferenceInfoText``, markers included."""
    return f"{TEXT_BEGIN}\n{info_text.strip()}\n{TEXT_END}"


def render_html(info_text: str, info_html: str) -> str:
    """The HTML block: ``ConferenceInfoHtml`` when TMS sent one, else the escaped text, markers included."""
    inner = info_html.strip() or "<pre>" + html.escape(info_text.strip()) + "</pre>"
    return f'{HTML_BEGIN}<div class="xesync-dial-in">{inner}</div>{HTML_END}'


def _visible(fragment: str, *, is_html: bool) -> str:
    if is_html:
        fragment = html.unescape(_TAG.sub(" ", fragment.replace(HTML_BEGIN, "").replace(HTML_END, "")))
    else:
        fragment = fragment.replace(TEXT_BEGIN, "").replace(TEXT_END, "")
    return _SPACE.sub(" ", fragment).strip()


def _hash(visible: str) -> str:
    return hashlib.sha256(visible.encode()).hexdigest()[:16]


def find(body: str, *, is_html: bool) -> list[str]:
    """Every dial-in block in ``body`` (normally none or one), markers included."""
    blocks = _HTML_BLOCK.findall(body) if is_html else []
    return blocks + _TEXT_BLOCK.findall(body)


def digest(info_text: str, info_html: str, *, is_html: bool) -> str:
    """The digest of the block xesync would write for these details into a body of this kind."""
    block = render_html(info_text, info_html) if is_html else render_text(info_text)
    return _hash(_visible(block, is_html=is_html))


def current_digest(body: str, *, is_html: bool) -> str | None:
    """The digest of the one block in ``body``; ``None`` when there is none, or more than one."""
    blocks = find(body, is_html=is_html)
    if len(blocks) != 1:
        return None
    return _hash(_visible(blocks[0], is_html=is_html and blocks[0].lstrip().startswith("<!--")))


def replace(body: str, info_text: str, info_html: str, *, is_html: bool) -> str:
    """``body`` with exactly one current dial-in block: the first one replaced, any others removed,
    or the block appended when there was none."""
    block = render_html(info_text, info_html) if is_html else render_text(info_text)
    pattern = _HTML_BLOCK if is_html else _TEXT_BLOCK
    done = False

    def swap(_match: re.Match[str]) -> str:
        nonlocal done
        if done:
            return ""
        done = True
        return block

    out = pattern.sub(swap, body)
    if is_html:
        out = _TEXT_BLOCK.sub("", out)  # a text block left by an earlier plain-text body
    if done:
        return out
    if is_html:
        closing = out.lower().rfind("</body>")
        if closing >= 0:
            return out[:closing] + block + out[closing:]
        return out + block
    separator = "\n\n" if out.strip() else ""
    return out.rstrip("\n") + separator + block + "\n"
