"""Tests for coding.segmentation on the 17 real policy texts and on edge cases."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coding.segmentation import RULES, Segmentation, Span, parse_number, segment

POLICIES = Path(__file__).resolve().parents[3] / "shared" / "data" / "policies"
FILES = sorted(POLICIES.glob("*.txt"))

# Regulations with 第N条 articles and their last article number (SOURCES.md;
# 02 is partial: the source stops after article 18).
ARTICLE_COUNTS = {
    "01": 74,
    "02": 18,
    "03": 51,
    "04": 16,
    "07": 91,
    "09": 100,
    "10": 58,
    "11": 49,
    "12": 62,
    "13": 56,
}
NO_ARTICLES = ("05", "06", "08", "14", "15", "16", "17")
WORK_REPORTS = ("14", "15", "16", "17")
# Top-level 一、 items, counted by hand from the texts.
TOP_ITEMS = {"05": 5, "06": 5, "08": 16, "14": 2, "15": 3, "16": 2, "17": 2}

_DIGITS = "零一二三四五六七八九"
# Any line that is a 编/章/节 heading (used to check headings are in no clause).
HEADING_LINE = re.compile(r"(?m)^[ \t\u3000]*第[一二三四五六七八九十百零〇]+[编章节]")


def chinese_numeral(n: int) -> str:
    """Independent formatter for 1..999 in the style of 第N条 (十二, 一百零二)."""
    assert 0 < n < 1000
    hundreds, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    out = ""
    if hundreds:
        out += _DIGITS[hundreds] + "百"
        if rest and tens == 0:
            out += "零"
    if tens:
        out += ("" if tens == 1 and not hundreds else _DIGITS[tens]) + "十"
    if ones:
        out += _DIGITS[ones]
    return out


def load(prefix: str) -> str:
    (path,) = [p for p in FILES if p.name.startswith(prefix + "_")]
    return path.read_text(encoding="utf-8")


def clause_texts(text: str, seg: Segmentation) -> dict[int, str]:
    return {c.number: text[c.start : c.end] for c in seg.clauses}


def assert_invariants(text: str, seg: Segmentation) -> None:
    numbers = [c.number for c in seg.clauses]
    assert len(set(numbers)) == len(numbers), "clause numbers must be unique"
    previous_end = 0
    for c in seg.clauses:
        assert isinstance(c, Span)
        assert 0 <= c.start < c.end <= len(text), c
        assert c.start >= previous_end, f"clauses overlap or are unsorted at {c}"
        assert not text[c.start].isspace(), f"clause starts with whitespace: {c}"
        assert not text[c.end - 1].isspace(), f"clause ends with whitespace: {c}"
        previous_end = c.end
    assert seg.rule in RULES
    assert seg.rule_used in RULES
    assert seg.fell_back == (seg.rule_used != seg.rule)


def test_data_directory_resolves() -> None:
    # shared/ lies beside the clone (in CI too), not at a fixed path.
    assert POLICIES.is_dir(), POLICIES
    assert len(FILES) == 17


def test_chinese_numeral_helper() -> None:
    expected = {
        1: "一",
        10: "十",
        12: "十二",
        20: "二十",
        74: "七十四",
        100: "一百",
        102: "一百零二",
        110: "一百一十",
        999: "九百九十九",
    }
    assert {n: chinese_numeral(n) for n in expected} == expected


@pytest.mark.parametrize(
    ("numeral", "value"),
    [
        ("一", 1),
        ("十", 10),
        ("十二", 12),
        ("二十", 20),
        ("七十四", 74),
        ("一百", 100),
        ("一百零二", 102),
        ("一百一十", 110),
        ("一〇二", 102),
        ("两千零五", 2005),
        ("12", 12),
        ("１２", 12),
        ("甲", None),
    ],
)
def test_parse_number(numeral: str, value: int | None) -> None:
    assert parse_number(numeral) == value


def test_parse_number_round_trips_the_helper() -> None:
    for n in range(1, 1000):
        assert parse_number(chinese_numeral(n)) == n


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[:2])
def test_invariants_on_real_texts(path: Path, rule: str) -> None:
    text = path.read_text(encoding="utf-8")
    seg = segment(text, rule)
    assert seg.rule == rule
    assert seg.clauses
    assert_invariants(text, seg)


def test_jining_articles_1_to_74() -> None:
    text = load("01")
    seg = segment(text, "article")
    assert (seg.rule_used, seg.message) == ("article", "")
    assert [c.number for c in seg.clauses] == list(range(75))
    clauses = clause_texts(text, seg)
    assert clauses[0].startswith("济宁市智慧城市促进条例")
    assert clauses[0].endswith("会议批准")
    for c in seg.clauses[1:]:
        assert text[c.start :].startswith("第" + chinese_numeral(c.number) + "条 ")
    for n, body in clauses.items():
        assert not HEADING_LINE.search(body), f"clause {n} contains a heading"
        assert "\n第" + chinese_numeral(n + 1) + "条" not in body
    # Chapter headings that lost their 第X章 prefix in the source are in no clause.
    for heading in ("发展规划", "信息惠民", "产业发展", "保障和促进措施"):
        line = "\n" + heading + "\n"
        assert line in text
        assert all(line not in body for body in clauses.values()), heading
    assert clauses[6].endswith("做好智慧城市建设和管理的相关工作。")
    assert clauses[74] == "第七十四条 本条例自2017年5月1日起施行。"


@pytest.mark.parametrize("prefix", sorted(ARTICLE_COUNTS))
def test_regulations_give_consecutive_articles(prefix: str) -> None:
    text = load(prefix)
    count = ARTICLE_COUNTS[prefix]
    seg = segment(text, "article")
    assert not seg.fell_back
    assert seg.message == ""
    assert [c.number for c in seg.clauses] == list(range(count + 1))
    clauses = clause_texts(text, seg)
    for n in range(1, count + 1):
        assert clauses[n].startswith("第" + chinese_numeral(n) + "条")
        assert not HEADING_LINE.search(clauses[n]), f"article {n} has a heading"
    # Clause 0 is the title and adoption lines, never an article.
    assert "条例" in clauses[0] or "规定" in clauses[0]
    assert not re.search(r"(?m)^第[一二三四五六七八九十百]+条", clauses[0])
    if prefix != "02":  # complete regulations end with the commencement clause
        assert "施行" in clauses[count]
        assert text.rstrip().endswith(clauses[count])


def test_article_without_preamble() -> None:
    text = load("03")
    seg = segment(text, "article", keep_preamble=False)
    assert [c.number for c in seg.clauses] == list(range(1, 52))


def test_heading_directly_above_first_article_is_not_preamble() -> None:
    text = load("10")  # table of contents (chapter titles) then 第一章 总 则
    clauses = clause_texts(text, segment(text, "article"))
    assert "第二章 数字基础设施" in clauses[0]  # the table of contents stays
    assert clauses[0].endswith("第九章 附 则")
    assert clauses[0].count("第一章 总 则") == 1  # but not the body's heading


def test_lost_section_prefix_is_a_heading() -> None:
    text = load("09")  # "市场培育" stands where "第二节 市场培育" should be
    assert "\n市场培育\n" in text
    clauses = clause_texts(text, segment(text, "article"))
    assert all("市场培育\n" not in body for body in clauses.values())


@pytest.mark.parametrize("prefix", NO_ARTICLES)
def test_documents_without_articles_fall_back_to_paragraphs(prefix: str) -> None:
    text = load(prefix)
    seg = segment(text, "article")
    assert seg.fell_back
    assert seg.rule_used == "paragraph"
    assert "fell back to paragraphs" in seg.message
    assert "第X条" in seg.message
    assert seg.clauses == segment(text, "paragraph").clauses


@pytest.mark.parametrize("prefix", sorted(TOP_ITEMS))
def test_top_level_items(prefix: str) -> None:
    text = load(prefix)
    seg = segment(text, "item")
    count = TOP_ITEMS[prefix]
    assert (seg.rule_used, seg.message) == ("item", "")
    assert [c.number for c in seg.clauses] == list(range(count + 1))
    clauses = clause_texts(text, seg)
    for n in range(1, count + 1):
        assert clauses[n].startswith(chinese_numeral(n) + "、")
    # Every 一、-level line start in the text begins exactly one clause.
    top = re.findall(r"(?m)^[一二三四五六七八九十]+、", text)
    assert len(top) == count


def test_nested_items_stay_in_their_parent() -> None:
    text = load("06")
    clauses = clause_texts(text, segment(text, "item"))
    assert clauses[0].startswith("国务院办公厅关于推进政务新媒体健康有序发展的意见")
    assert "（三）基本原则。" in clauses[1]
    assert "1.坚持正确导向。" in clauses[1]
    assert "4.坚持创新发展。" in clauses[1]
    assert clauses[2].startswith("二、明确工作职责")
    report = load("14")
    items = clause_texts(report, segment(report, "item"))
    assert "（一）持续提升首都功能" in items[2]
    assert "（十一）加快构建大安全大应急框架" in items[2]


def test_item_numbering_restarts_are_numbered_sequentially() -> None:
    text = load("07")  # （一） lists inside articles, restarting in each
    seg = segment(text, "item")
    assert seg.rule_used == "item"
    numbers = [c.number for c in seg.clauses]
    assert numbers == list(range(len(numbers)))
    assert "numbered sequentially" in seg.message
    assert "（一）" in seg.message


@pytest.mark.parametrize(
    ("text", "markers"),
    [
        ("序言\n（1）甲；\n（2）乙。\n", ["（1）", "（2）"]),
        ("序言\n(1)甲；\n(2)乙。\n", ["(1)", "(2)"]),
        ("1. 甲\n  a) x\n2、乙\n3.5%不是条目\n", ["1.", "2、"]),
        ("（一）甲\n1.子项\n2.子项\n（二）乙\n", ["（一）", "（二）"]),
        ("　　一、甲\n（一）子\n　　二、乙\n", ["一、", "二、"]),
    ],
)
def test_item_schemes(text: str, markers: list[str]) -> None:
    seg = segment(text, "item", keep_preamble=False)
    assert seg.message == ""
    assert [c.number for c in seg.clauses] == list(range(1, len(markers) + 1))
    for c, m in zip(seg.clauses, markers, strict=True):
        assert text[c.start :].startswith(m)
    assert_invariants(text, seg)


def test_item_gap_is_reported() -> None:
    seg = segment("一、甲\n三、丙\n", "item")
    assert [c.number for c in seg.clauses] == [1, 2]
    assert "三、" in seg.message


def test_item_falls_back_when_no_items() -> None:
    text = load("01")
    seg = segment(text, "item")
    assert (seg.rule_used, seg.fell_back) == ("paragraph", True)
    assert "fell back to paragraphs" in seg.message


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[:2])
def test_paragraphs_are_the_non_blank_lines(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    seg = segment(text, "paragraph")
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    assert [text[c.start : c.end] for c in seg.clauses] == lines
    assert [c.number for c in seg.clauses] == list(range(1, len(lines) + 1))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[:2])
def test_sentences_cover_the_text(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    seg = segment(text, "sentence")
    assert [c.number for c in seg.clauses] == list(range(1, len(seg.clauses) + 1))
    # Sentences partition the text apart from whitespace.
    covered = "".join(text[c.start : c.end] for c in seg.clauses)
    assert re.sub(r"\s", "", covered) == re.sub(r"\s", "", text)
    for c in seg.clauses:
        body = text[c.start : c.end]
        assert "\n" not in body
        inner = re.sub(r"[。！？；!?]+[”’」』）)》]*$", "", body)
        assert not re.search(r"[。！？；!?]", inner), body
    assert len(seg.clauses) >= text.count("。")


def test_sentence_rules() -> None:
    text = "增长3.5%。真的吗？是！Done. Next one\n无标点一行\n他说：“好。”然后；最后."
    seg = segment(text, "sentence")
    assert [text[c.start : c.end] for c in seg.clauses] == [
        "增长3.5%。",
        "真的吗？",
        "是！",
        "Done.",
        "Next one",
        "无标点一行",
        "他说：“好。”",
        "然后；",
        "最后.",
    ]


def test_crlf_line_endings() -> None:
    lf = load("01")
    crlf = lf.replace("\n", "\r\n")
    for rule in RULES:
        lf_seg, crlf_seg = segment(lf, rule), segment(crlf, rule)
        assert_invariants(crlf, crlf_seg)
        assert crlf_seg.rule_used == lf_seg.rule_used
        assert [c.number for c in crlf_seg.clauses] == [c.number for c in lf_seg.clauses]
        assert [crlf[c.start : c.end].replace("\r\n", "\n") for c in crlf_seg.clauses] == [
            lf[c.start : c.end] for c in lf_seg.clauses
        ]
    clauses = clause_texts(crlf, segment(crlf, "article"))
    assert list(clauses) == list(range(75))
    assert "\r\n发展规划\r\n" in crlf
    assert all("发展规划\r" not in body for body in clauses.values())
    assert clauses[6].endswith("做好智慧城市建设和管理的相关工作。")


def test_offsets_are_code_points_outside_the_bmp() -> None:
    text = "标题𠀀\r\n\r\n第一条 𠀀字😀。\r\n第二章 总则\r\n第二条 乙𠀀。\r\n"
    seg = segment(text, "article")
    assert [c.number for c in seg.clauses] == [0, 1, 2]
    assert [text[c.start : c.end] for c in seg.clauses] == [
        "标题𠀀",
        "第一条 𠀀字😀。",
        "第二条 乙𠀀。",
    ]
    assert seg.clauses[1].start == 7  # 标 题 𠀀 \r \n \r \n: one index each
    assert seg.clauses[2].start == text.index("第二条")
    sentences = segment(text, "sentence")
    assert [text[c.start : c.end] for c in sentences.clauses] == [
        "标题𠀀",
        "第一条 𠀀字😀。",
        "第二章 总则",
        "第二条 乙𠀀。",
    ]
    paragraphs = segment(text, "paragraph")
    assert [c.end for c in paragraphs.clauses] == [3, 15, 23, 32]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("第九十九条 甲\n第一百条 乙\n第一百零二条 丙\n", [99, 100, 102]),
        ("第1条 甲\n第2条 乙\n第12条 丙\n", [1, 2, 12]),
        ("\u3000\u3000第一条\u3000甲\n  第二条 乙\n", [1, 2]),
        ("第一条 甲\n第三条规定的情形除外。\n第二条 乙\n", [1, 2]),
    ],
)
def test_article_numerals_and_line_starts(text: str, expected: list[int]) -> None:
    seg = segment(text, "article")
    assert [c.number for c in seg.clauses] == expected
    assert seg.message == ""
    assert_invariants(text, seg)


def test_article_in_mid_line_is_not_a_clause() -> None:
    seg = segment("根据第一条和第二条的规定。\n", "article")
    assert seg.rule_used == "paragraph"


def test_repeated_article_numbers_are_renumbered() -> None:
    text = "第一条 甲\n第二条 乙\n附件\n第一条 丙\n第二条 丁\n第七条 戊\n"
    seg = segment(text, "article")
    assert [c.number for c in seg.clauses] == [1, 2, 3, 4, 7]
    assert text[seg.clauses[2].start :].startswith("第一条 丙")
    assert "repeat or go backwards" in seg.message
    assert "第一条 (offset 15) as 3" in seg.message
    assert "第二条 (offset 21) as 4" in seg.message
    assert_invariants(text, seg)


def test_preamble_only_when_non_blank() -> None:
    assert [c.number for c in segment(" \n第一条 甲\n").clauses] == [1]
    seg = segment("  题目  \n\n第一条 甲\n", "article")
    assert seg.clauses[0] == Span(0, 2, 4)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("text", ["", "   ", "\r\n\n\u3000\n"])
def test_blank_text(rule: str, text: str) -> None:
    seg = segment(text, rule)
    assert seg.clauses == ()
    assert seg.message
    assert not seg.fell_back


def test_unknown_rule() -> None:
    with pytest.raises(ValueError, match="'chapter'") as info:
        segment("第一条 甲", "chapter")
    for rule in RULES:
        assert rule in str(info.value)


def test_largest_text_is_fast() -> None:
    text = load("17")
    assert len(text.encode("utf-8")) > 70_000
    for rule in RULES:
        best = min(_timed(text, rule) for _ in range(5))
        assert best < 0.025, f"{rule}: {best * 1000:.1f} ms"


def _timed(text: str, rule: str) -> float:
    start = time.perf_counter()
    segment(text, rule)
    return time.perf_counter() - start


_ALPHABET = st.sampled_from(
    [
        *"第一二十百条章节、（）()1.。；！？ \u3000\n\r\t甲乙𠀀😀总则",
        *("第一条 ", "第二章 总则\n", "一、", "（一）", "\r\n", "3.5"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join), st.sampled_from(RULES))
def test_invariants_on_arbitrary_text(text: str, rule: str) -> None:
    seg = segment(text, rule)
    assert_invariants(text, seg)
    if text.strip():
        assert seg.clauses
        # Every non-whitespace character of a paragraph/sentence lies in a clause.
        if seg.rule_used in ("paragraph", "sentence"):
            inside = "".join(text[c.start : c.end] for c in seg.clauses)
            assert re.sub(r"\s", "", inside) == re.sub(r"\s", "", text)
