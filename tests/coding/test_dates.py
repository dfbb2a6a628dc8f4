import datetime as dt

import pytest

from coding.dates import parse_partial_date, partial_date_year


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("2011", "2011"),
        (2011, "2011"),
        ("2021.4", "2021-04"),
        ("2021.4.28", "2021-04-28"),
        ("2021.04.28", "2021-04-28"),
        ("2021-04-28", "2021-04-28"),
        ("2021/4/28", "2021-04-28"),
        ("20210428", "2021-04-28"),
        ("2017年5月1日", "2017-05-01"),
        ("2024年1月", "2024-01"),
        (dt.date(2019, 12, 5), "2019-12-05"),
        ("", None),
        (None, None),
    ],
)
def test_parse_keeps_the_precision_given(raw, stored):
    assert parse_partial_date(raw) == stored


@pytest.mark.parametrize(
    ("raw", "reason"), [("2021.13.45", "month 13"), ("2021.2.30", "day 30"), ("soon", "not a date")]
)
def test_impossible_dates_are_refused_with_the_value(raw, reason):
    with pytest.raises(ValueError, match=reason) as info:
        parse_partial_date(raw)
    assert repr(raw) in str(info.value)


def test_year_of_a_partial_date():
    assert partial_date_year("2021-04") == 2021
    assert partial_date_year("") is None
