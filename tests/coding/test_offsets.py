"""Tests for coding.offsets: code points ↔ UTF-16 code units."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coding.offsets import codepoint_to_utf16, utf16_length, utf16_to_codepoint

POLICIES = Path(__file__).resolve().parents[3] / "shared" / "data" / "policies"

# 𠀀 (U+20000) and 😀 (U+1F600) are two UTF-16 units each; the rest one.
MIXED = "a𠀀b😀\r\n条😀😀𠀀。"


def js_units(text: str) -> int:
    """UTF-16 length the way a browser counts it, computed by encoding."""
    return len(text.encode("utf-16-le")) // 2


def test_lengths() -> None:
    assert utf16_length("") == 0
    assert utf16_length("abc\r\n") == 5
    assert utf16_length("第一条") == 3
    assert utf16_length("𠀀") == 2
    assert utf16_length("😀") == 2
    assert utf16_length(MIXED) == 16 == js_units(MIXED)
    assert len(MIXED) == 11


def test_known_positions() -> None:
    # a=0 𠀀=1..2 b=3 😀=4..5 \r=6 \n=7 条=8 😀=9..10 😀=11..12 𠀀=13..14 。=15
    expected = {0: 0, 1: 1, 2: 3, 3: 4, 4: 6, 5: 7, 6: 8, 7: 9, 8: 11, 9: 13, 10: 15}
    expected[11] = 16
    for cp, unit in expected.items():
        assert codepoint_to_utf16(MIXED, cp) == unit
        assert utf16_to_codepoint(MIXED, unit) == cp


def test_round_trip_every_position() -> None:
    for cp in range(len(MIXED) + 1):
        unit = codepoint_to_utf16(MIXED, cp)
        assert unit == js_units(MIXED[:cp])
        assert utf16_to_codepoint(MIXED, unit) == cp


def test_every_utf16_position_either_maps_or_is_mid_pair() -> None:
    boundaries = {js_units(MIXED[:cp]) for cp in range(len(MIXED) + 1)}
    mid_pair = set(range(utf16_length(MIXED) + 1)) - boundaries
    assert mid_pair == {2, 5, 10, 12, 14}
    for unit in mid_pair:
        with pytest.raises(ValueError, match=f"UTF-16 offset {unit} falls inside"):
            utf16_to_codepoint(MIXED, unit)


def test_bmp_and_crlf_text_is_identity() -> None:
    text = "第一条 甲。\r\n第二条 乙。\r\n"
    assert utf16_length(text) == len(text)
    for i in range(len(text) + 1):
        assert codepoint_to_utf16(text, i) == i
        assert utf16_to_codepoint(text, i) == i


def test_lone_surrogate_counts_one_unit() -> None:
    text = "a\ud800b"  # possible in a Python str; one unit in JavaScript too
    assert utf16_length(text) == 3
    assert utf16_to_codepoint(text, 2) == 2


@pytest.mark.parametrize("offset", [-1, 12, 100])
def test_codepoint_out_of_range(offset: int) -> None:
    with pytest.raises(ValueError, match=f"offset {offset} .*11 code points"):
        codepoint_to_utf16(MIXED, offset)


@pytest.mark.parametrize("offset", [-1, 17, 100])
def test_utf16_out_of_range(offset: int) -> None:
    with pytest.raises(ValueError, match=f"offset {offset} .*16 UTF-16 code units"):
        utf16_to_codepoint(MIXED, offset)


def test_empty_text() -> None:
    assert codepoint_to_utf16("", 0) == 0
    assert utf16_to_codepoint("", 0) == 0
    with pytest.raises(ValueError, match="offset 1 is out of range"):
        utf16_to_codepoint("", 1)


def test_non_integer_offset() -> None:
    with pytest.raises(TypeError):
        codepoint_to_utf16(MIXED, 1.0)  # type: ignore[arg-type]


def test_long_real_text_many_calls() -> None:
    text = (POLICIES / "17_shenzhen_gov_work_report_2024.txt").read_text("utf-8")
    astral = text[:10_000] + "𠀀😀" + text[10_000:] + "𠀀"
    for sample in (text, astral):
        start = time.perf_counter()
        positions = range(0, len(sample) + 1, 7)
        units = [codepoint_to_utf16(sample, i) for i in positions]
        back = [utf16_to_codepoint(sample, u) for u in units]
        elapsed = time.perf_counter() - start
        assert back == list(positions)
        assert elapsed < 0.5, f"{len(positions)} conversions took {elapsed:.3f}s"
    assert utf16_length(astral) == len(astral) + 3 == js_units(astral)
    assert codepoint_to_utf16(astral, 10_002) == 10_004
    assert utf16_to_codepoint(astral, 10_004) == 10_002


@given(st.text(alphabet=st.sampled_from(list("a条\r\n𠀀😀\U0010ffff")), max_size=40))
def test_round_trip_property(text: str) -> None:
    assert utf16_length(text) == js_units(text)
    for cp in range(len(text) + 1):
        unit = codepoint_to_utf16(text, cp)
        assert unit == js_units(text[:cp])
        assert utf16_to_codepoint(text, unit) == cp
