"""Split a policy text into numbered clauses by a segmentation rule.

Pure module (no Django).  Offsets are Python ``str`` indexes, i.e. Unicode code
points, and spans are half-open ``[start, end)``.  Convert to UTF-16 offsets at
the browser boundary with :mod:`coding.offsets`.

Rules
-----
``article``
    Chinese articles ``第X条`` at the start of a line (after optional
    whitespace, including full-width spaces); X is a Chinese numeral
    (``第一百零二条``, ``第一〇二条``) or Arabic digits (``第12条``), followed by
    anything but a continuation such as ``的``/``第``/``款``/``之``/``、`` (so a line
    opening with a reference, "第三条规定的…", is not an article; nor is an
    inserted "第五条之一", which stays inside article 5).  Clause N is
    the article the document itself numbers N.  An article runs up to the next
    article, the next heading line, or the end of the text, with trailing
    whitespace removed.  Heading lines (``第二章 总则``, ``第一节 …``,
    ``第一编``/``第一部分``) belong to no clause; so does a short line made only of
    Chinese characters (``附则``, ``发展规划``) that stands between two articles
    and is followed by an article or a heading, since some sources lost the
    ``第X章`` prefix of their chapter headings.  If an article number repeats or
    goes backwards (a quoted article, a document in two parts), that article is
    numbered previous + 1 so numbers stay unique, and ``message`` says so.
``item``
    Numbered items at the start of a line in one of four schemes: ``一、``;
    ``（一）``/``(一)``; ``1.``/``1、``; ``（1）``/``(1)``.  The scheme whose marker
    appears first at a line start is the top level; only its markers start
    clauses, so lower-level items stay inside their parent.  Items are numbered
    1..M; when the document's own numbers are not exactly 1..M (restarts,
    gaps), ``message`` says the clauses were numbered sequentially.
``paragraph``
    Every non-blank line is a clause, numbered 1..M.
``sentence``
    Sentences end at ``。！？；!?`` (with any closing quotes or brackets right
    after), at ``.`` followed by whitespace or the end of the text (so ``3.5``
    is not split), and at line ends.  Each non-blank sentence is a clause 1..M.

For ``article`` and ``item`` the text before the first clause (title, adoption
lines, table of contents, preamble) is clause 0 when ``keep_preamble`` is true
and it is not blank; for ``article`` the chapter/section heading lines directly
above the first article are excluded from it.  A rule that finds nothing falls
back to ``paragraph`` (``rule_used == "paragraph"``) and says so in
``message``.  Every clause span is trimmed: it neither starts nor ends with
whitespace.  Line ends may be ``\\n`` or ``\\r\\n``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RULES", "Segmentation", "Span", "segment"]

RULES = ("article", "item", "paragraph", "sentence")


@dataclass(frozen=True)
class Span:
    """One clause: its number and its code-point span ``[start, end)``."""

    number: int
    start: int
    end: int


@dataclass(frozen=True)
class Segmentation:
    """The result of :func:`segment`."""

    rule: str
    rule_used: str
    clauses: tuple[Span, ...]
    message: str

    @property
    def fell_back(self) -> bool:
        """True when the requested rule found nothing and another was used."""
        return self.rule_used != self.rule


# --- patterns -------------------------------------------------------------

_HS = r"[^\S\r\n]*"  # horizontal whitespace (incl. U+3000), never a line break
_CN_DIGITS = "〇零一二三四五六七八九两"
_CN_NUM = f"[{_CN_DIGITS}十百千]+"
_AR_NUM = "[0-9０-９]+"
_NUM = f"(?:{_CN_NUM}|{_AR_NUM})"

# 第N条 at a line start.  The look-ahead rejects a line that merely begins with
# a reference such as "第三条规定的…" or "第三条第二款…".
_ARTICLE_RE = re.compile(
    rf"^{_HS}(?P<mark>第(?P<num>{_NUM})条)(?![的之款项规中所第和及或至、，,])",
    re.MULTILINE,
)
# A whole line that is a 编/章/节/部分 heading, e.g. "第二章　总　则".
_HEADING_RE = re.compile(
    rf"^{_HS}(?P<mark>第{_NUM}(?P<level>分编|编|部分|章|节))"
    r"[^\r\n。；：，、]{0,60}\r?$",
    re.MULTILINE,
)
_HEADING_RANK = {"编": 0, "部分": 0, "分编": 1, "章": 2, "节": 3}
# A short line of Chinese characters only, followed (after blank lines) by an
# article or a heading: a heading that lost its "第X章" prefix ("发展规划", "附则").
_CJK = "\u4e00-\u9fff\u3400-\u4dbf"
_ORPHAN_HEADING_RE = re.compile(
    rf"^{_HS}(?P<mark>(?!第{_NUM}[条章节编])[{_CJK}]"
    rf"(?:[{_CJK} \t\u3000]{{0,18}}[{_CJK}])?){_HS}\r?$"
    rf"(?=\n(?:{_HS}\r?\n)*{_HS}第{_NUM}(?:条|分编|编|部分|章|节))",
    re.MULTILINE,
)

_ITEM_RE = re.compile(
    rf"^{_HS}(?:"
    rf"(?P<cn_dun>(?P<n1>{_CN_NUM})、)"
    rf"|(?P<cn_paren>[（(](?P<n2>{_CN_NUM})[）)])"
    rf"|(?P<ar_paren>[（(](?P<n3>[0-9０-９]{{1,3}})[）)])"
    rf"|(?P<ar_dot>(?P<n4>[0-9０-９]{{1,3}})(?:[.．](?![0-9０-９])|、))"
    r")",
    re.MULTILINE,
)
_ITEM_SCHEMES = {"cn_dun": "n1", "cn_paren": "n2", "ar_paren": "n3", "ar_dot": "n4"}

_LINE_RE = re.compile(r"[^\r\n]+")
_SENTENCE_END_RE = re.compile(r"(?:[。！？；!?]|\.(?=\s|\Z))+[”’」』）)\]》〉\"']*|\r?\n|\r")
_NON_SPACE_RE = re.compile(r"\S")

_CN_DIGIT_VALUE = {c: i for i, c in enumerate("〇一二三四五六七八九")}
_CN_DIGIT_VALUE.update({"零": 0, "两": 2})
_CN_UNIT_VALUE = {"十": 10, "百": 100, "千": 1000}


def parse_number(numeral: str) -> int | None:
    """Value of a Chinese or Arabic numeral (``一百零二`` → 102), or None."""
    if numeral.isdecimal():
        return int(numeral)  # int() also accepts full-width digits
    if not numeral or any(c not in _CN_DIGIT_VALUE and c not in _CN_UNIT_VALUE for c in numeral):
        return None
    if not any(c in _CN_UNIT_VALUE for c in numeral):  # digit by digit: 一〇二
        return int("".join(str(_CN_DIGIT_VALUE[c]) for c in numeral))
    total = current = 0
    for c in numeral:
        if c in _CN_DIGIT_VALUE:
            current = _CN_DIGIT_VALUE[c]
        else:
            total += (current or 1) * _CN_UNIT_VALUE[c]
            current = 0
    return total + current


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Shrink ``[start, end)`` to exclude surrounding whitespace; None if blank."""
    m = _NON_SPACE_RE.search(text, start, end)
    if m is None:
        return None
    return m.start(), start + len(text[start:end].rstrip())


def _some(notes: list[str], limit: int = 3) -> str:
    """Join the first ``limit`` notes for a message, counting the rest."""
    shown = "; ".join(notes[:limit])
    return shown + (f"; and {len(notes) - limit} more" if len(notes) > limit else "")


# --- rules ----------------------------------------------------------------


def _paragraphs(text: str) -> list[Span]:
    spans: list[Span] = []
    for m in _LINE_RE.finditer(text):
        trimmed = _trim(text, m.start(), m.end())
        if trimmed is not None:
            spans.append(Span(len(spans) + 1, *trimmed))
    return spans


def _sentences(text: str) -> list[Span]:
    spans: list[Span] = []
    pos = 0
    for m in _SENTENCE_END_RE.finditer(text):
        # Terminating punctuation is part of the sentence; a line break is
        # whitespace, which _trim drops.
        trimmed = _trim(text, pos, m.end())
        if trimmed is not None:
            spans.append(Span(len(spans) + 1, *trimmed))
        pos = m.end()
    trimmed = _trim(text, pos, len(text))
    if trimmed is not None:
        spans.append(Span(len(spans) + 1, *trimmed))
    return spans


def _with_preamble(text: str, preamble_end: int, keep_preamble: bool, spans: list[Span]) -> list[Span]:
    if keep_preamble:
        trimmed = _trim(text, 0, preamble_end)
        if trimmed is not None:
            return [Span(0, *trimmed), *spans]
    return spans


def _articles(text: str, keep_preamble: bool) -> tuple[list[Span], str] | None:
    articles = list(_ARTICLE_RE.finditer(text))
    if not articles:
        return None
    first = articles[0].start("mark")

    # Preamble: everything before the first article, except the heading lines
    # directly above it (at most one per level, e.g. "第一章 总则" then
    # "第一节 一般规定"), so a table of contents made of headings stays in it.
    preamble_end = first
    rank_limit = len(_HEADING_RANK) + 1
    for h in reversed(list(_HEADING_RE.finditer(text, 0, first))):
        rank = _HEADING_RANK[h.group("level")]
        if rank >= rank_limit or text[h.end() : preamble_end].strip():
            break
        preamble_end, rank_limit = h.start("mark"), rank

    # Every article ends at the next boundary: an article or a heading line.
    boundaries = sorted(
        {m.start("mark") for m in articles}
        | {m.start("mark") for m in _HEADING_RE.finditer(text, first)}
        | {m.start("mark") for m in _ORPHAN_HEADING_RE.finditer(text, first)}
    )
    next_boundary = dict(zip(boundaries, [*boundaries[1:], len(text)], strict=True))

    spans: list[Span] = []
    renumbered: list[str] = []
    previous = 0  # clause 0 is the preamble
    for m in articles:
        start = m.start("mark")
        own = parse_number(m.group("num"))
        number = own if own is not None and own > previous else previous + 1
        if number != own:
            renumbered.append(f"{m.group('mark')} (offset {start}) as {number}")
        previous = number
        trimmed = _trim(text, start, next_boundary[start])
        assert trimmed is not None  # it starts with 第
        spans.append(Span(number, *trimmed))

    message = ""
    if renumbered:
        message = (
            "Article numbers repeat or go backwards; to keep clause numbers "
            f"unique such articles were numbered after the previous clause: "
            f"{_some(renumbered)}."
        )
    return _with_preamble(text, preamble_end, keep_preamble, spans), message


def _items(text: str, keep_preamble: bool) -> tuple[list[Span], str] | None:
    first = _ITEM_RE.search(text)
    if first is None:
        return None
    scheme = next(name for name in _ITEM_SCHEMES if first.group(name))
    number_group = _ITEM_SCHEMES[scheme]
    starts = [m for m in _ITEM_RE.finditer(text, first.start()) if m.group(scheme)]
    ends = [m.start(scheme) for m in starts[1:]] + [len(text)]

    spans: list[Span] = []
    for m, end in zip(starts, ends, strict=True):
        trimmed = _trim(text, m.start(scheme), end)
        assert trimmed is not None  # it starts with the item marker
        spans.append(Span(len(spans) + 1, *trimmed))

    # Own numbers that are not 1, 2, 3, ... (restart, gap, repeat).
    irregular = [
        f"{m.group(scheme)} (offset {m.start(scheme)}) as {expected}"
        for expected, m in enumerate(starts, 1)
        if parse_number(m.group(number_group)) != expected
    ]
    message = ""
    if irregular:
        message = (
            "Top-level item numbers are not consecutive from 1, so items were "
            f"numbered sequentially 1..{len(starts)}: {_some(irregular)}."
        )
    return _with_preamble(text, first.start(scheme), keep_preamble, spans), message


_FALLBACK_MESSAGES = {
    "article": "No 第X条 articles found; fell back to paragraphs.",
    "item": ("No numbered items (一、, （一）, 1., （1）) found at line starts; fell back to paragraphs."),
}


def segment(text: str, rule: str = "article", *, keep_preamble: bool = True) -> Segmentation:
    """Split ``text`` into clauses by ``rule`` (one of :data:`RULES`).

    Returns clause spans in code points, sorted, non-overlapping, with unique
    numbers, none starting or ending with whitespace.  ``article`` and ``item``
    fall back to ``paragraph`` when they find nothing (see ``message`` and
    ``fell_back``).  Blank text gives no clauses and a message.

    Raises ValueError for an unknown rule.
    """
    if rule not in RULES:
        raise ValueError(f"Unknown segmentation rule {rule!r}; valid rules are: {', '.join(RULES)}.")
    if not text.strip():
        return Segmentation(rule, rule, (), "The text is empty; no clauses.")

    found: tuple[list[Span], str] | None
    if rule == "article":
        found = _articles(text, keep_preamble)
    elif rule == "item":
        found = _items(text, keep_preamble)
    elif rule == "sentence":
        found = _sentences(text), ""
    else:
        found = _paragraphs(text), ""

    if found is None:
        return Segmentation(rule, "paragraph", tuple(_paragraphs(text)), _FALLBACK_MESSAGES[rule])
    spans, message = found
    return Segmentation(rule, rule, tuple(spans), message)
