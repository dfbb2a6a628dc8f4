import re

import pytest
from django.core.management import call_command

from coding.models import Clause, Event, Membership, Node, Policy, Project
from tests.conftest import POLICY_TEXTS

pytestmark = pytest.mark.django_db

CN_DIGITS = "零一二三四五六七八九"


def chinese_numeral(n: int) -> str:
    """Independent of the segmenter: 1..199 the way the regulations write them."""
    if n < 10:
        return CN_DIGITS[n]
    if n < 20:
        return "十" + (CN_DIGITS[n % 10] if n % 10 else "")
    if n < 100:
        return CN_DIGITS[n // 10] + "十" + (CN_DIGITS[n % 10] if n % 10 else "")
    rest = n % 100
    if rest == 0:
        return CN_DIGITS[n // 100] + "百"
    if rest < 10:
        return CN_DIGITS[n // 100] + "百零" + CN_DIGITS[rest]
    return (
        CN_DIGITS[n // 100]
        + "百"
        + (CN_DIGITS[rest // 10] if rest >= 10 else "")
        + "十"
        + (CN_DIGITS[rest % 10] if rest % 10 else "")
    )


def test_load_demo_builds_the_study_and_is_idempotent(capsys):
    call_command("load_demo")
    out = capsys.readouterr().out
    for username in ["admin", "supervisor", "coder1", "coder2"]:
        assert re.search(rf"{username}\s+\w+\s+password: \S+", out)
    project = Project.objects.get(slug="smart-city")
    counts = (Policy.objects.count(), Clause.objects.count(), Node.objects.count(), Membership.objects.count())
    events = Event.objects.count()
    assert counts[0] == 17 and counts[2] == 18 and counts[3] == 4

    call_command("load_demo")
    assert (Policy.objects.count(), Clause.objects.count(), Node.objects.count(), Membership.objects.count()) == counts
    assert Event.objects.count() == events

    roots = list(Node.objects.filter(project=project, parent=None).order_by("position").values_list("name", flat=True))
    assert roots == ["Supply-based", "Environmental-based", "Demand-based"]
    talent = Node.objects.get(project=project, name="Talent")
    assert talent.parent.name == "Supply-based" and talent.description


def test_demo_policy_1_is_the_jining_regulation_with_74_articles():
    call_command("load_demo")
    policy = Policy.objects.get(project__slug="smart-city", number=1)
    source = (POLICY_TEXTS / "01_jining_smart_city_promotion_regulation_2017.txt").read_text(encoding="utf-8")
    assert policy.text == source
    assert (policy.release_date, policy.implementation_date, policy.jurisdiction) == (
        "2016-12-27",
        "2017-05-01",
        "Jining",
    )
    articles = [c for c in policy.clauses.order_by("number") if c.number > 0]
    assert [c.label_for(policy) for c in articles] == [f"1-{n}" for n in range(1, 75)]
    for clause in articles:
        assert policy.text[clause.start :].startswith(f"第{chinese_numeral(clause.number)}条"), clause.number
