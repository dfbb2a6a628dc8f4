"""Partial dates as the study's tables give them: a bare year, a year and month, or a day.

Stored as ISO text of the precision given ("2011", "2021-04", "2021-04-28"), which sorts
and compares correctly as a string, so year ranges filter in the database without
inventing a month or a day. Pure: no Django.
"""

import datetime as dt
import re

_SEPARATED = re.compile(r"^\s*(\d{4})(?:\s*[-./年]\s*(\d{1,2})(?:\s*[-./月]\s*(\d{1,2})\s*日?)?\s*月?)?\s*年?\s*$")
_COMPACT = re.compile(r"^\s*(\d{4})(\d{2})(\d{2})\s*$")
ISO_PARTIAL = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def parse_partial_date(value: str | int | dt.date | None) -> str | None:
    """Normalise a date of any common writing to ISO text keeping its precision.

    Accepts 2021, "2021", "2021.4", "2021.4.28", "2021.04.28", "2021-04-28", "2021/4/28",
    "20210428", "2021年4月28日" and date objects. Returns None for empty input and raises
    ValueError naming the value when it is not a real date (e.g. "2021.13.45").
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    if not text:
        return None
    match = _SEPARATED.match(text) or _COMPACT.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a date (expected e.g. 2021, 2021.4 or 2021-04-28)")
    year, month, day = (int(part) if part else None for part in match.groups())
    if month is None:
        return f"{year:04d}"
    if not 1 <= month <= 12:
        raise ValueError(f"{text!r} is not a date (month {month} does not exist)")
    if day is None:
        return f"{year:04d}-{month:02d}"
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        raise ValueError(f"{text!r} is not a date (day {day} does not exist in {year:04d}-{month:02d})") from None


def partial_date_year(value: str | None) -> int | None:
    """The year of a stored partial date, or None."""
    return int(value[:4]) if value else None
