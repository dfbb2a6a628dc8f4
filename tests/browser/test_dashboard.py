"""The dashboard in real Chromium: charts drawn by the vendored Chart.js, htmx redraws with the
filters in the URL, a chart downloaded as PNG, and no console errors on any dashboard page."""

import pytest

from coding import services
from coding.models import Role
from tests.coding import table3
from tests.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def study():
    project = ProjectFactory(slug="study", name="Study")
    supervisor = UserFactory(username="sue", password="sue-pass")
    coder = UserFactory(username="cody", password="cody-pass")
    services.set_membership(actor=None, project=project, user=supervisor, role=Role.SUPERVISOR)
    services.set_membership(actor=None, project=project, user=coder, role=Role.CODER)
    nodes = table3.build_codebook(project, supervisor)
    table3.build_policies(project, supervisor)
    table3.code_table3(project, supervisor, coder, nodes)
    return project


def log_in(page, username, password):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def charts_drawn(page) -> int:
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('canvas[data-chart]'))"
        ".filter((c) => window.Chart && window.Chart.getChart(c)).length"
    )


def test_dashboard_pages_draw_their_charts_without_console_errors(page, study):
    problems = []
    page.on(
        "console",
        lambda message: (
            message.type in ("error", "warning") and problems.append(f"{message.text} ({message.location.get('url')})")
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    log_in(page, "sue", "sue-pass")

    page.goto("/projects/study/dashboard/")
    page.wait_for_function("() => window.Chart && document.querySelector('canvas[data-chart]')")
    assert charts_drawn(page) == 1
    first_row = page.locator("table.dashboard-table tbody tr").first.locator("td").all_inner_texts()
    assert first_row == ["Supply-based", "53", "32.1%", "53"]

    # A filter redraws the result with htmx and puts itself in the URL.
    page.locator("select[name=jurisdiction]").select_option("Beijing")
    page.wait_for_url("**jurisdiction=Beijing**")
    page.wait_for_function("() => window.Chart.getChart(document.querySelector('canvas[data-chart]'))")
    beijing = page.locator("table.dashboard-table tbody tr").first.locator("td").all_inner_texts()
    assert beijing[0] == "Supply-based" and int(beijing[1]) < 53

    with page.expect_download() as download:
        page.get_by_role("button", name="Download PNG").click()
    path = download.value.path()
    assert download.value.suggested_filename == "study-chart-distribution.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page.get_by_label("the study's Table 3").check()
    page.wait_for_selector("table.table3")
    assert page.locator("table.table3 th").first.inner_text().startswith("Supply-based")

    # Alpha per node is asked for with a tick; summed layers say what it needs instead.
    page.get_by_label("nodes as rows").check()
    page.wait_for_selector("table.dashboard-table")
    page.get_by_label("Krippendorff's α per node").check()
    page.wait_for_url("**alpha=1**")
    assert "compares layers side by side" in page.get_by_role("status").inner_text()

    for tab, canvas in [("Crosstab", "chart-crosstab"), ("Trend", "chart-trend")]:
        page.get_by_role("link", name=tab, exact=True).click()
        page.wait_for_function(f"() => window.Chart && window.Chart.getChart(document.getElementById('{canvas}'))")
        assert "jurisdiction=Beijing" in page.url

    page.get_by_role("link", name="Word frequency", exact=True).click()
    page.get_by_role("button", name="Count words").click()
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.getElementById('chart-words'))")

    page.get_by_role("link", name="Text search", exact=True).click()
    page.get_by_label("Search").fill("第十条")
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector("table.kwic tbody tr")
    assert page.locator("table.kwic td.label").first.inner_text().endswith("-10")

    assert problems == []


def test_blind_coder_sees_their_layer_only(page, study):
    log_in(page, "cody", "cody-pass")

    page.goto("/projects/study/dashboard/")
    page.wait_for_function("() => window.Chart && window.Chart.getChart(document.querySelector('canvas[data-chart]'))")

    assert "blind coding" in page.locator("fieldset.layers").inner_text()
    assert page.locator("input[name=layer][type=checkbox]").count() == 0
