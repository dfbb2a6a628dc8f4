import re

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_coder_logs_in_and_reads_policy_1_clause_by_clause(page):
    call_command("load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    page.goto("/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill("coder1")
    page.get_by_label("Password").fill("coder1-demo")
    page.get_by_role("button", name="Log in").click()

    page.get_by_role("link", name=re.compile("Smart-city policy tools")).click()
    page.get_by_role("link", name="济宁市智慧城市促进条例").click()
    assert page.url.endswith("/projects/smart-city/policies/1/")

    # The link click returns once navigation commits; wait for the clauses to be in the page.
    page.locator("#clause-1-74").wait_for()
    labels = page.locator("li.clause .label").all_inner_texts()
    assert labels == ["1-0"] + [f"1-{n}" for n in range(1, 75)]
    assert page.locator("#clause-1-5 .clause-text").inner_text().startswith("第五条")
    page.get_by_role("link", name="Policy 2 →").click()
    assert page.url.endswith("/policies/2/")


def test_wrong_password_says_so(page, db):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    assert "didn't match" in page.get_by_role("alert").inner_text()
