"""/api/docs/: the vendored Swagger UI reads the schema and "Try it out" works on the session
(the CSRF header comes from static/coding/js/api-docs.js)."""

import pytest

from coding import services
from coding.models import DoneMark, Role
from tests.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_docs_list_the_endpoints_and_try_it_out_uses_the_session(page):
    project = ProjectFactory(slug="study", name="Study")
    coder = UserFactory(username="coder_a")
    services.set_membership(actor=None, project=project, user=coder, role=Role.CODER)
    policy = services.create_policy(actor=None, project=project, title="Policy", text="第一条　总则。\n")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("coder_a")
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Log in").click()

    page.goto("/api/docs/")
    operation = page.locator(
        ".opblock-post", has=page.locator("[data-path='/api/projects/{slug}/policies/{number}/done/']")
    )
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("input[placeholder='slug']").fill("study")
    operation.locator("input[placeholder='number']").fill("1")
    operation.get_by_role("button", name="Execute").click()

    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert DoneMark.objects.filter(policy=policy, coder=coder).exists()
    assert page.locator(".opblock-summary-path").count() >= 20
    assert errors == []
