"""The node view (NVivo's "open node"): every visible reference at a node across policies,
with context, filterable by coder, policy and sub-nodes, in a fixed number of queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from coding import services
from coding.models import Clause
from tests.conftest import SAMPLE_TEXT

pytestmark = pytest.mark.django_db


def url(node, **query) -> str:
    address = reverse("coding:node_detail", args=["study", node.pk])
    return address + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def code(policy, number, coder, node, passage=None, memo=""):
    clause = Clause.objects.get(policy=policy, number=number)
    text = policy.text[clause.start : clause.end]
    start = clause.start + (text.index(passage) if passage else 0)
    end = start + len(passage) if passage else clause.end
    return services.add_reference(actor=coder, clause=clause, node=node, coder=coder, start=start, end=end, memo=memo)


@pytest.fixture
def talent(project, admin_user, node):
    return services.add_node(actor=admin_user, project=project, name="Talent", parent=node)


@pytest.fixture
def second(project, admin_user):
    return services.create_policy(actor=admin_user, project=project, title="第二个政策", text=SAMPLE_TEXT)


def test_lists_references_with_label_title_context_memo_and_a_link_to_the_passage(client, policy, coder_a, node):
    ref = code(policy, 3, coder_a, node, "人才培养", memo="why")
    client.force_login(coder_a)

    response = client.get(url(node))

    assert [r.pk for r, _, _ in response.context["rows"]] == [ref.pk]
    row = response.context["rows"][0][0]
    assert row.context_before == SAMPLE_TEXT[: SAMPLE_TEXT.index("人才培养")][-60:]
    assert row.context_after == "，𠀀支持数据共享。\n"
    html = response.content.decode()
    assert f'href="/projects/study/policies/1/#ref-{ref.pk}">1-3</a>' in html
    assert "济宁市智慧城市促进条例" in html and "<strong>Memo:</strong> why" in html
    assert 'class="coder"' not in html  # a blind coder's view names no coder


def test_context_at_the_start_of_a_text_is_empty_not_wrapped(client, policy, coder_a, node):
    code(policy, 0, coder_a, node, "济宁")
    client.force_login(coder_a)

    row = client.get(url(node)).context["rows"][0][0]

    assert (row.context_before, row.text) == ("", "济宁")


def test_sub_nodes_are_included_on_request(client, policy, coder_a, node, talent):
    parent_ref = code(policy, 1, coder_a, node)
    child_ref = code(policy, 2, coder_a, talent)
    client.force_login(coder_a)

    alone = client.get(url(node))
    with_children = client.get(url(node, descendants="on"))

    assert [r.pk for r, _, _ in alone.context["rows"]] == [parent_ref.pk]
    assert [r.pk for r, _, _ in with_children.context["rows"]] == [parent_ref.pk, child_ref.pk]
    assert "Supply-based › Talent" in with_children.content.decode()
    assert [c.node for c in alone.context["children"]] == [talent]


def test_supervisor_sees_all_coders_and_filters_by_coder_and_policy(
    client, policy, second, supervisor, coder_a, coder_b, node
):
    a1 = code(policy, 1, coder_a, node)
    b1 = code(policy, 1, coder_b, node)
    a2 = code(second, 2, coder_a, node)
    client.force_login(supervisor)

    def ids(**query):
        return [r.pk for r, _, _ in client.get(url(node, **query)).context["rows"]]

    assert ids() == [a1.pk, b1.pk, a2.pk]
    assert ids(coder="coder_a") == [a1.pk, a2.pk]
    assert ids(coder="coder_b", policy=1) == [b1.pk]
    assert ids(policy=2) == [a2.pk]
    html = client.get(url(node)).content.decode()
    assert "coder_a" in html and "coder_b" in html


def test_blind_coder_sees_only_their_own_references(client, policy, coder_a, coder_b, node):
    mine = code(policy, 1, coder_b, node)
    code(policy, 2, coder_a, node)
    client.force_login(coder_b)

    response = client.get(url(node, coder="coder_a"))

    assert [r.pk for r, _, _ in response.context["rows"]] == [mine.pk]
    assert "coder_a" not in response.content.decode()


def test_bad_filter_says_what_is_wrong_and_lists_nothing(client, policy, supervisor, coder_a, node):
    code(policy, 1, coder_a, node)
    client.force_login(supervisor)

    response = client.get(url(node, policy="x", coder="ghost"))

    html = response.content.decode()
    assert "Policy number: Enter a whole number." in html
    assert "Coder: ghost is not a coder in this project." in html
    assert response.context["rows"] == []


def test_outsider_and_unknown_node_get_404_and_anonymous_goes_to_login(client, project, node, outsider, coder_a):
    assert client.get(url(node)).status_code == 302
    client.force_login(outsider)
    assert client.get(url(node)).status_code == 404
    client.force_login(coder_a)
    assert client.get(reverse("coding:node_detail", args=["study", 10**9])).status_code == 404


def test_node_of_another_project_is_not_found_through_this_one(client, project, coder_a, outsider):
    other = services.add_node(actor=None, project=outsider.memberships.get().project, name="Elsewhere")
    client.force_login(coder_a)

    assert client.get(reverse("coding:node_detail", args=["study", other.pk])).status_code == 404


@pytest.mark.parametrize("persona", ["coder_a", "supervisor"])
def test_query_count_does_not_grow_with_references(
    client, request, policy, second, coder_a, coder_b, supervisor, node, talent, persona
):
    client.force_login(request.getfixturevalue(persona))
    code(policy, 1, coder_a, node)
    code(policy, 1, coder_b, node)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url(node, descendants="on"))
            assert response.status_code == 200
        return len(ctx)

    one = queries()
    for coder in (coder_a, coder_b):
        code(policy, 2, coder, talent)
        code(second, 3, coder, node, "人才培养", memo="m")

    assert queries() == one
