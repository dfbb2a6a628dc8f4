"""Text search: regular expressions run with a time limit, and find what Python's ``re`` finds."""

import re
import time

import pytest
from django.core.exceptions import ValidationError

from coding import services, stats
from tests.coding import table3

pytestmark = pytest.mark.django_db

# Exponential backtracking for re: every way of splitting the a's is tried before "!" fails it.
PATHOLOGICAL = "(a+)+$"
TRAP = "第一条　" + "a" * 32 + "!\n"


@pytest.fixture
def texts(project, admin_user):
    policies = table3.build_policies(project, admin_user, count=6)
    services.create_policy(
        actor=admin_user, project=project, title="Astral", text="第一条　甲𠀀乙 Data-sharing，数据𠀀共享。\n"
    )
    return policies


def expected_hits(project, pattern: str) -> list[tuple[int, int, int]]:
    """(policy number, start, end) of every non-empty match, by Python's re in this process."""
    compiled = re.compile(pattern, re.IGNORECASE)
    policies = stats.policies(project).exclude(text="").order_by("number")
    return [
        (number, m.start(), m.end())
        for number, text in policies.values_list("number", "text")
        for m in compiled.finditer(text)
        if m.end() > m.start()
    ]


@pytest.mark.parametrize("pattern", [r"第[一二三]条", r"数据\w?共享", r"𠀀.", r"data-\w+", r"(?<=智慧)城市", r"\d*条"])
def test_regex_search_finds_what_re_finds(project, texts, pattern):
    result = stats.search(project, pattern, "regex")

    assert [(h.number, h.start, h.end) for h in result.hits] == expected_hits(project, pattern)
    assert result.total == len(result.hits) > 0
    assert not result.truncated


def test_regex_and_phrase_search_agree(project, texts):
    by_phrase = stats.search(project, "数据共享", "phrase")
    by_regex = stats.search(project, "数据共享", "regex")

    assert by_regex.hits == by_phrase.hits
    assert len(by_regex.hits) == 6 * 10


def test_regex_hits_past_the_limit_are_counted_not_kept(project, texts, monkeypatch):
    monkeypatch.setattr(stats, "MAX_HITS", 25)

    result = stats.search(project, "条", "regex")

    # 20 per policy ("第一条　第一条的内容…"): the second takes the total past 25, the rest are not searched.
    assert (len(result.hits), result.total, result.truncated) == (25, 40, True)
    assert [(h.number, h.start, h.end) for h in result.hits] == expected_hits(project, "条")[:25]


def test_a_pathological_regex_is_stopped_with_a_message(project, admin_user, texts):
    services.create_policy(actor=admin_user, project=project, title="Trap", text=TRAP)
    started = time.perf_counter()

    with pytest.raises(ValidationError, match=r"was stopped after 0\.5 seconds.*nested repeats such as \(a\+\)\+"):
        stats.search(project, PATHOLOGICAL, "regex", seconds=0.5)

    assert time.perf_counter() - started < 3
    # The same pattern on texts where it cannot backtrack much answers at once.
    assert stats.search(project, PATHOLOGICAL, "regex", stats.PolicyFilter(numbers=(1, 2))).hits == []


def test_the_time_budget_counts_searching_not_handing_over_the_texts(project, admin_user, monkeypatch):
    # ~6 million characters: starting the child and passing them to it take far longer than
    # 20 ms of CPU; an anchored pattern is refused at the first position of each text in
    # microseconds. Only that counts against the budget.
    body = "第一条　" + "智慧城市建设和管理。" * 60_000 + "\n"
    for n in range(10):
        services.create_policy(actor=admin_user, project=project, title=f"P{n}", text=body)
    handed_over = []
    real_run = stats.subprocess.run
    monkeypatch.setattr(
        stats.subprocess, "run", lambda *a, **k: handed_over.append(len(k["input"])) or real_run(*a, **k)
    )

    result = stats.search(project, r"\Azzz", "regex", seconds=0.02)

    assert result.hits == [] and handed_over[0] > 15_000_000  # bytes of JSON


@pytest.mark.parametrize("pattern", ["a{99999999999}", "x{1,4294967296}"])
def test_a_regex_too_large_to_compile_is_refused_with_a_message(project, texts, pattern):
    with pytest.raises(ValidationError, match="too large to compile as a regular expression"):
        stats.search(project, pattern, "regex")
