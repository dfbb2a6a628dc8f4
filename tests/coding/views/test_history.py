"""The project history page (supervisors and admins): the audit trail newest first, paged,
filtered in the query string, redrawn by htmx, each row linked to what it changed."""

import re

import pytest
from django.urls import reverse

from coding import services
from coding.models import Event
from coding.views.projects import EVENTS_PER_PAGE
from tests.coding.api.conftest import code

pytestmark = pytest.mark.django_db

URL = reverse("coding:project_history", args=["study"])
HTMX = {"HX-Request": "true"}


def row_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="event-([0-9]+)">', response.content.decode())]


def newest_first(**filters) -> list[int]:
    events = Event.objects.filter(project__slug="study", **filters).order_by("-created_at", "-id")
    return list(events.values_list("pk", flat=True))


def row_html(response, event: Event) -> str:
    html = response.content.decode()
    start = html.index(f'<tr id="event-{event.pk}">')
    return html[start : html.index("</tr>", start)]


# --- who may read it ---------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["admin_user", "supervisor"])
def test_reviewers_see_every_event_newest_first(client, trail, persona, request):
    client.force_login(request.getfixturevalue(persona))

    response = client.get(URL)

    assert response.status_code == 200
    assert row_ids(response) == newest_first()
    assert f"{len(newest_first())} events." in response.content.decode()
    assert f'href="{URL}">History</a>' in response.content.decode()


def test_coders_are_refused_and_do_not_get_the_link(client, trail, coder_a):
    client.force_login(coder_a)

    assert client.get(URL).status_code == 403
    assert client.get(URL, headers=HTMX).status_code == 403
    assert URL not in client.get(reverse("coding:project_home", args=["study"])).content.decode()


def test_outsiders_get_404_and_anonymous_users_the_login(client, trail, outsider):
    assert client.get(URL)["Location"].startswith("/accounts/login/")
    client.force_login(outsider)

    assert client.get(URL).status_code == 404


def test_other_projects_events_are_not_shown(client, trail, outsider, supervisor):
    services.update_project(actor=outsider, project=outsider.memberships.get().project, name="Secret rename")
    client.force_login(supervisor)

    response = client.get(URL)

    assert "Secret rename" not in response.content.decode()
    assert row_ids(response) == newest_first()


# --- what a row shows ----------------------------------------------------------------------------


def test_a_moved_reference_shows_the_node_names_and_links_to_its_clause(client, trail, supervisor):
    client.force_login(supervisor)
    event = Event.objects.get(action="reference.update")

    row = row_html(client.get(URL), event)

    assert "<td>coder_a</td>" in row and "<code>reference.update</code>" in row
    # Written with a technical label; shown as the clause's, linked to it on the policy page.
    assert '<a href="/projects/study/policies/1/#clause-1-1">1-1</a>' in row
    assert '<span class="muted">node:</span> <del>Supply-based</del> → <ins>Talent</ins>' in row
    assert '<span class="muted">version:</span> <del>1</del> → <ins>2</ins>' in row
    assert "memo" not in row  # unchanged fields are left out


def test_a_creation_lists_what_it_set_and_a_deletion_what_it_removed(client, trail, supervisor):
    client.force_login(supervisor)
    response = client.get(URL)
    created = row_html(response, Event.objects.get(action="node.create", target_label="Talent"))
    deleted = row_html(response, Event.objects.get(action="reference.delete"))

    assert f'<a href="/projects/study/nodes/{trail["talent"].pk}/">Talent</a>' in created
    assert '<span class="muted">parent:</span> Supply-based</span>' in created
    assert "<del>" not in created and "→" not in created
    assert '<a href="/projects/study/policies/1/#clause-1-2">1-2</a>' in deleted
    assert '<span class="muted">coder:</span> <del>coder_b</del>' in deleted


def test_project_settings_changes_show_before_and_after(client, project, admin_user):
    services.update_project(actor=admin_user, project=project, blind_coding=False)
    client.force_login(admin_user)

    row = row_html(client.get(URL), Event.objects.get(action="project.update"))

    assert '<span class="muted">blind_coding:</span> <del>yes</del> → <ins>no</ins>' in row
    assert "Study" in row and "name" not in row.split('<td class="changes">')[1]


def test_rows_of_a_deleted_policy_keep_their_label_without_a_link(client, trail, admin_user):
    services.delete_policy(actor=admin_user, policy=trail["second"])
    client.force_login(admin_user)
    response = client.get(URL, {"target": "2"})

    rows = [row_html(response, event) for event in Event.objects.filter(pk__in=row_ids(response))]

    assert len(rows) == 3  # created, its reference, deleted
    assert all("/policies/2/" not in row for row in rows)
    assert any("2. 第二个政策" in row for row in rows)


def test_long_values_are_cut(client, project, policy, node, admin_user, coder_a):
    clause = policy.clauses.get(number=1)
    services.add_reference(
        actor=coder_a, clause=clause, node=node, coder=coder_a, start=clause.start, end=clause.end, memo="长" * 200
    )
    client.force_login(admin_user)

    row = row_html(client.get(URL), Event.objects.get(action="reference.create"))

    assert "长" * 79 + "…" in row and "长" * 80 not in row


# --- filters -------------------------------------------------------------------------------------


def test_filter_by_actor(client, trail, supervisor):
    client.force_login(supervisor)

    response = client.get(URL, {"actor": "coder_b"})

    assert row_ids(response) == newest_first(actor__username="coder_b")
    assert len(row_ids(response)) == 3
    assert 'value="coder_b"' in response.content.decode()  # the form keeps the filter


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("reference.create", ["reference.create"]),
        ("reference.", ["reference.create", "reference.update", "reference.delete"]),
        ("reference", ["reference.create", "reference.update", "reference.delete"]),
        ("policy.", ["policy.create", "policy.done"]),
    ],
)
def test_filter_by_action_exact_or_area(client, trail, supervisor, action, expected):
    client.force_login(supervisor)

    response = client.get(URL, {"action": action})

    assert row_ids(response) == newest_first(action__in=expected)
    assert {Event.objects.get(pk=pk).action for pk in row_ids(response)} == set(expected)


def test_filter_by_policy_number_finds_everything_about_it(client, trail, supervisor):
    client.force_login(supervisor)

    response = client.get(URL, {"target": "1"})

    actions = sorted(Event.objects.get(pk=pk).action for pk in row_ids(response))
    assert actions == [
        "policy.create",
        "policy.done",
        "reference.create",
        "reference.create",
        "reference.delete",
        "reference.update",
    ]


def test_filter_by_clause_label_or_text(client, trail, supervisor):
    client.force_login(supervisor)

    clause = client.get(URL, {"target": "1-1"})
    text = client.get(URL, {"target": "talent"})

    assert sorted(Event.objects.get(pk=pk).action for pk in row_ids(clause)) == ["reference.create", "reference.update"]
    assert row_ids(text) == newest_first(action="node.create", target_label="Talent")


def test_bad_filter_is_a_400_naming_it_and_lists_nothing(client, trail, supervisor):
    client.force_login(supervisor)

    response = client.get(URL, {"action": "DROP TABLE"})

    html = response.content.decode()
    assert response.status_code == 400
    assert "Action: Give an action such as reference.create, or an area such as reference." in html
    assert row_ids(response) == []


# --- htmx and pages ------------------------------------------------------------------------------


def test_htmx_redraws_only_the_list(client, trail, supervisor):
    client.force_login(supervisor)

    response = client.get(URL, {"actor": "coder_a"}, headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="history-list">')
    assert "<html" not in html and "project-nav" not in html and "<form" not in html
    assert row_ids(response) == newest_first(actor__username="coder_a")


def test_htmx_bad_filter_replaces_the_list_with_the_message(client, trail, supervisor):
    client.force_login(supervisor)

    response = client.get(URL, {"target": "x" * 301}, headers=HTMX)

    assert response.status_code == 200  # htmx swaps only a 2xx answer
    assert "Target: Ensure this value has at most 300 characters (it has 301)." in response.content.decode()


def test_pages_of_fifty_keep_the_filter_in_their_links(client, project, policy, admin_user):
    for i in range(EVENTS_PER_PAGE + 5):
        services.update_policy(actor=admin_user, policy=policy, title=f"Title {i}")
    client.force_login(admin_user)
    expected = newest_first(action="policy.update")

    first = client.get(URL, {"action": "policy.update"})
    second = client.get(URL, {"action": "policy.update", "page": 2})

    assert row_ids(first) == expected[:EVENTS_PER_PAGE]
    assert row_ids(second) == expected[EVENTS_PER_PAGE:]
    assert 'href="?action=policy.update&amp;page=2"' in first.content.decode()
    assert 'href="?action=policy.update&amp;page=1"' in second.content.decode()


@pytest.mark.parametrize("item_count", [1, 3])
def test_history_in_constant_queries(
    client, project, policy, node, coder_a, supervisor, item_count, django_assert_num_queries
):
    for number in range(1, item_count + 1):
        code(policy, node, coder_a, number)
    client.force_login(supervisor)

    # session, user, membership+project, count, a page of events with actors, then what the
    # page names: clauses, policies, nodes, coders; and the members the actor filter suggests
    with django_assert_num_queries(10):
        response = client.get(URL)

    assert len(row_ids(response)) == Event.objects.filter(project=project).count()
    assert response.content.decode().count('<a href="/projects/study/policies/1/#clause-1-') == item_count
