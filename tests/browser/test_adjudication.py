"""A supervisor drills from a node's figures into its disagreements and decides them, in a
real browser: htmx swaps, and a text selection with 𠀀 (two UTF-16 units, one code point)
turned into code-point offsets by agreement.js."""

import pytest

from coding import services
from coding.models import Adjudication, Reference
from tests.coding.test_agreement_data import code, done

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_supervisor_resolves_disagreements_from_the_agreement_page(
    page, project, admin_user, supervisor, coder_a, coder_b, policy
):
    r1 = services.add_node(actor=admin_user, project=project, name="R1")
    a = services.add_node(actor=admin_user, project=project, name="A", parent=r1)
    code(coder_a, policy, 1, a)
    code(coder_a, policy, 2, a)
    code(coder_b, policy, 2, a)
    code(coder_a, policy, 3, a, 0, 5)
    done(policy, coder_a, coder_b)

    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("supervisor_p")
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Log in").click()
    page.goto("/projects/study/agreement/")
    assert page.locator("table.nodes tbody tr").first.inner_text().split("\t")[:5] == [
        "R1 › A",
        "4",
        "3",
        "1",
        "2 (0 resolved)",
    ]

    page.get_by_role("link", name="R1 › A").click()
    units = page.locator("#drilldown article.unit")
    units.first.wait_for()
    assert units.count() == 2
    assert page.url.endswith("/projects/study/agreement/")  # drilled down in place

    first = page.locator("article.unit", has_text="1-1")
    first.get_by_role("button", name="Accept coder_a").click()
    page.locator("article.unit.resolved", has_text="Resolved: accepted coder_a").wait_for()

    third = page.locator("article.unit", has_text="1-3")
    third.locator("summary", has_text="Code anew").click()
    box = third.locator(".anew-text")
    box.evaluate(
        """(box) => {
            const node = box.firstChild;
            const at = node.data.indexOf("𠀀");
            const range = document.createRange();
            range.setStart(node, at);
            range.setEnd(node, at + "𠀀支持".length);  // 4 UTF-16 units, 3 code points
            const selection = window.getSelection();
            selection.removeAllRanges();
            selection.addRange(range);
            box.dispatchEvent(new MouseEvent("mouseup", {bubbles: true}));
        }"""
    )
    assert third.locator(".anew-range").inner_text() == "the selected passage (3 characters)"
    third.get_by_role("button", name="Add to the consensus").click()
    page.locator("article.unit.resolved", has_text="Resolved: coded anew").wait_for()

    consensus = sorted(Reference.objects.filter(consensus=True).values_list("text", "created_by"))
    clause_1 = policy.clauses.get(number=1)
    assert consensus == sorted([(clause_1.text_of(policy), supervisor.pk), ("𠀀支持", supervisor.pk)])
    assert sorted(Adjudication.objects.values_list("decision", flat=True)) == ["accept", "anew"]

    page.reload()
    assert "2 (2 resolved)" in page.locator("table.nodes tbody tr").first.inner_text()
