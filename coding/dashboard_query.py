"""What a dashboard is asked: which policies (``PolicyFilter``), across which policy attribute
(``ATTRIBUTES``, ``check_attribute``) and which text to search for (``compile_query``).

Plain values and their validation, no database: ``forms.py`` validates request input into
them and ``stats.py`` counts and searches with them, so the forms need not import the reads
(and ``stats`` still offers every name here, for its callers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

# Built-in policy attributes a crosstab can run across; custom ones are "attr:<key>".
ATTRIBUTES = {
    "jurisdiction": "Jurisdiction",
    "year": "Release year",
    "potency_level": "Potency level",
    "department": "Release department",
}


@dataclass(frozen=True)
class PolicyFilter:
    """Which policies a dashboard counts. Values within one field are alternatives (OR);
    fields combine with AND. Empty fields do not filter."""

    jurisdictions: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    potency_levels: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()  # (key, value) pairs
    numbers: tuple[int, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self == ALL_POLICIES


ALL_POLICIES = PolicyFilter()  # no filter: the default of every read that takes one


def attribute_label(by: str) -> str:
    if by.startswith("attr:"):
        return by[len("attr:") :]
    return ATTRIBUTES[by]


def check_attribute(by: str) -> str:
    if by in ATTRIBUTES or (by.startswith("attr:") and len(by) > len("attr:")):
        return by
    raise ValidationError(
        f"{by!r} is not a policy attribute; use one of {', '.join(ATTRIBUTES)} or attr:<key> for a custom one."
    )


# --- text search -----------------------------------------------------------------------------

SEARCH_MODES = ("word", "phrase", "regex")
MAX_QUERY_LENGTH = 200

# Word frequency: what the dashboard's form and the API take when an option is not given, and
# the bounds (low, high) both accept.
WORD_DEFAULTS = {"min_length": 2, "top": 50, "threshold": 0.0}
WORD_BOUNDS = {"min_length": (1, 20), "top": (1, 1000), "threshold": (0, 100)}


def compile_query(query: str, mode: str) -> re.Pattern[str]:
    """The pattern a search runs: a word or a phrase (case-insensitive, any white space
    between words, whole words where they start or end with a Latin letter or digit), or a
    regular expression. Raises ValidationError naming what is wrong."""
    query = query.strip()
    if mode not in SEARCH_MODES:
        raise ValidationError(f"{mode!r} is not a search mode; use one of {', '.join(SEARCH_MODES)}.")
    if not query:
        raise ValidationError("Enter a word, a phrase or a regular expression to search for.")
    if len(query) > MAX_QUERY_LENGTH:
        raise ValidationError(f"The search is {len(query)} characters long; at most {MAX_QUERY_LENGTH} are allowed.")
    if mode == "regex":
        try:
            pattern = re.compile(query, re.IGNORECASE)
        except re.error as exc:
            raise ValidationError(f"{query!r} is not a valid regular expression: {exc}.") from None
        except (OverflowError, RecursionError):  # a{99999999999}, or nesting too deep to compile
            raise ValidationError(
                f"{query!r} is too large to compile as a regular expression (a repeat count such as "
                "{n} that is too large, or groups nested too deep)."
            ) from None
        if pattern.fullmatch(""):
            raise ValidationError(f"The regular expression {query!r} matches empty text; make it match something.")
        return pattern
    words = query.split()
    if mode == "word" and len(words) > 1:
        raise ValidationError("A word search takes one word; use a phrase search for several.")
    body = r"\s+".join(re.escape(w) for w in words)
    head = r"(?<![A-Za-z0-9])" if re.match(r"[A-Za-z0-9]", words[0]) else ""
    tail = r"(?![A-Za-z0-9])" if re.search(r"[A-Za-z0-9]$", words[-1]) else ""
    return re.compile(head + body + tail, re.IGNORECASE)
