"""Convert text offsets between Python code points and browser UTF-16 units.

Pure module (no Django).  Python ``str`` indexes count Unicode code points;
JavaScript strings (and so selection offsets from the browser) count UTF-16
code units, in which a character outside the Basic Multilingual Plane (U+10000
and above, e.g. 𠀀 U+20000 or most emoji) takes two units, a surrogate pair.
Everything else, including CR and LF, takes one unit in both.

Offsets are positions *between* characters, so ``0`` and the length of the
text are both valid.  Every function raises ValueError for a negative offset,
an offset past the end of the text, and (UTF-16 input only) an offset that
falls between the two halves of a surrogate pair; TypeError for a non-integer
offset.

The positions of the astral characters of the last few texts are cached, so
each call after the first on the same text costs O(log k) for k astral
characters, and a text with none costs O(1).
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_left
from functools import lru_cache

__all__ = ["codepoint_to_utf16", "utf16_length", "utf16_to_codepoint"]

_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")


@lru_cache(maxsize=16)
def _astral(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Code-point and UTF-16 positions of the text's astral characters."""
    if text.isascii():
        return (), ()
    cp = tuple(m.start() for m in _ASTRAL_RE.finditer(text))
    # The k-th astral character (0-based) has k earlier ones, each one unit longer.
    return cp, tuple(i + k for k, i in enumerate(cp))


def utf16_length(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (JavaScript ``text.length``)."""
    return len(text) + len(_astral(text)[0])


def codepoint_to_utf16(text: str, offset: int) -> int:
    """Convert a code-point offset (Python index) into ``text`` to UTF-16 units.

    ``offset`` must satisfy ``0 <= offset <= len(text)``; otherwise ValueError.
    """
    offset = operator.index(offset)
    if not 0 <= offset <= len(text):
        raise ValueError(
            f"Code-point offset {offset} is out of range for a text of {len(text)} code points (valid: 0..{len(text)})."
        )
    return offset + bisect_left(_astral(text)[0], offset)


def utf16_to_codepoint(text: str, offset: int) -> int:
    """Convert a UTF-16 offset (browser/JavaScript index) into a Python index.

    ``offset`` must satisfy ``0 <= offset <= utf16_length(text)`` and must not
    fall between the two code units of a surrogate pair; otherwise ValueError.
    """
    offset = operator.index(offset)
    length = utf16_length(text)
    if not 0 <= offset <= length:
        raise ValueError(
            f"UTF-16 offset {offset} is out of range for a text of {length} "
            f"UTF-16 code units ({len(text)} code points; valid: 0..{length})."
        )
    utf16_starts = _astral(text)[1]
    before = bisect_left(utf16_starts, offset)  # astral chars starting before it
    if before and utf16_starts[before - 1] + 1 == offset:
        raise ValueError(
            f"UTF-16 offset {offset} falls inside a surrogate pair (the character "
            f"at code-point index {offset - before} of a text of {length} UTF-16 "
            "code units); offsets must lie between characters."
        )
    return offset - before
