"""The audit trail through the API (supervisors and admins): newest first, paged like every list,
filtered by actor, action and target; each event names the policy it concerns while that exists."""

import pytest

from coding import services
from coding.models import Event
from tests.factories import ProjectFactory

from .conftest import code

pytestmark = pytest.mark.django_db

URL = "/api/projects/study/events/"


def listed(response) -> list[tuple[str, str]]:
    return [(row["action"], row["target_label"]) for row in response.json()["results"]]


def newest_first(**filters) -> list[int]:
    return list(
        Event.objects.filter(project__slug="study", **filters)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
    )


@pytest.mark.parametrize("persona", ["admin_user", "supervisor"])
def test_reviewers_read_the_whole_trail_newest_first(api_as, trail, persona, request):
    response = api_as(request.getfixturevalue(persona)).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert [row["id"] for row in body["results"]] == newest_first()
    assert body["count"] == Event.objects.filter(project__slug="study").count()


def test_coders_are_refused_and_outsiders_see_no_project(api_as, trail, coder_a, outsider, anonymous):
    assert api_as(coder_a).get(URL).status_code == 403
    assert api_as(outsider).get(URL).status_code == 404
    assert anonymous.get(URL).status_code == 401


def test_an_event_carries_its_snapshots_actor_and_policy(api_as, trail, supervisor, coder_a):
    event = Event.objects.get(action="reference.update")

    [row] = [r for r in api_as(supervisor).get(URL).json()["results"] if r["id"] == event.pk]

    assert row == {
        "id": event.pk,
        "created_at": row["created_at"],
        "actor": "coder_a",
        "action": "reference.update",
        "target_type": "reference",
        "target_id": event.target_id,
        "target_label": event.target_label,
        "policy": 1,
        "before": event.before,
        "after": event.after,
    }
    assert row["before"]["node_id"] != row["after"]["node_id"] == trail["talent"].pk


def test_other_projects_events_are_not_listed(api_as, trail, supervisor):
    other = ProjectFactory(slug="other")
    services.update_project(actor=supervisor, project=other, name="Renamed elsewhere")

    labels = [row["target_label"] for row in api_as(supervisor).get(URL, {"page_size": 1000}).json()["results"]]

    assert "Renamed elsewhere" not in labels
    assert len(labels) == Event.objects.filter(project__slug="study").count()


def test_filter_by_actor(api_as, trail, supervisor):
    response = api_as(supervisor).get(URL, {"actor": "coder_b"})

    assert [row["id"] for row in response.json()["results"]] == newest_first(actor__username="coder_b")
    # Labels as written: a reference's deletion was written with a technical one.
    deleted = Event.objects.get(action="reference.delete").target_label
    assert listed(response) == [("reference.create", "2-1"), ("reference.delete", deleted), ("reference.create", "1-2")]


def test_filter_by_exact_action_and_by_area(api_as, trail, supervisor):
    client = api_as(supervisor)

    exact = client.get(URL, {"action": "reference.create"}).json()["results"]
    area = client.get(URL, {"action": "reference."}).json()["results"]
    bare = client.get(URL, {"action": "reference"}).json()["results"]

    assert [row["id"] for row in exact] == newest_first(action="reference.create")
    assert [row["id"] for row in area] == newest_first(
        action__in=["reference.create", "reference.update", "reference.delete"]
    )
    assert bare == area
    assert {row["action"] for row in area} == {"reference.create", "reference.update", "reference.delete"}


def test_filter_by_policy_number_finds_its_policy_clauses_references_and_done_marks(api_as, trail, supervisor):
    response = api_as(supervisor).get(URL, {"target": "1"})

    # Every event about policy 1, however its label reads; none about policy 2, nodes or members.
    assert sorted(row["action"] for row in response.json()["results"]) == [
        "policy.create",
        "policy.done",
        "reference.create",
        "reference.create",
        "reference.delete",
        "reference.update",
    ]
    assert {row["policy"] for row in response.json()["results"]} == {1}


def test_filter_by_clause_label_and_by_text(api_as, trail, supervisor):
    client = api_as(supervisor)

    clause = client.get(URL, {"target": "1-2"}).json()["results"]
    text = client.get(URL, {"target": "TALENT"}).json()["results"]

    assert [(row["action"], row["actor"]) for row in clause] == [
        ("reference.delete", "coder_b"),
        ("reference.create", "coder_b"),
    ]
    assert [(row["action"], row["target_label"]) for row in text] == [("node.create", "Talent")]


def test_filters_combine(api_as, trail, supervisor):
    response = api_as(supervisor).get(URL, {"actor": "coder_b", "action": "reference.create", "target": "2"})

    assert listed(response) == [("reference.create", "2-1")]


def test_policy_is_null_once_the_policy_is_deleted(api_as, trail, admin_user):
    services.delete_policy(actor=admin_user, policy=trail["second"])

    rows = api_as(admin_user).get(URL, {"target": "2"}).json()["results"]

    assert [row["action"] for row in rows] == ["policy.delete", "reference.create", "policy.create"]
    assert [row["policy"] for row in rows] == [None, None, None]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"action": "Reference.Create"}, "action"),
        ({"action": "reference.create; drop"}, "action"),
        ({"actor": "x" * 151}, "actor"),
        ({"target": "x" * 301}, "target"),
        ({"target": "a\x00b"}, "target"),
    ],
)
def test_bad_filters_are_400_naming_the_field(api_as, trail, supervisor, params, field):
    response = api_as(supervisor).get(URL, params)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_an_unknown_page_is_404(api_as, trail, supervisor):
    assert api_as(supervisor).get(URL, {"page": 99}).status_code == 404


@pytest.mark.parametrize("item_count", [1, 3])
def test_event_list_query_count(
    api_as, project, policy, node, coder_a, supervisor, django_assert_num_queries, item_count
):
    for number in range(1, item_count + 1):
        code(policy, node, coder_a, number)
    client = api_as(supervisor)

    # token + user, membership, count, page (with actors), the page's clauses, its policies
    with django_assert_num_queries(6):
        response = client.get(URL)

    assert response.json()["count"] == Event.objects.filter(project=project).count()


def test_empty_filters_filter_nothing(api_as, trail, supervisor):
    response = api_as(supervisor).get(URL, {"actor": "", "action": "", "target": " "})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == newest_first()
