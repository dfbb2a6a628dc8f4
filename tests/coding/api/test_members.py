"""Members through the API (admins): list, add existing users, change roles, remove; a project
keeps at least one admin, and the refusal reaches the client as a 400 with the reason."""

import pytest

from coding import services
from coding.models import Event, Membership, Reference, Role
from tests.factories import UserFactory

from .conftest import code

pytestmark = pytest.mark.django_db

LIST = "/api/projects/study/members/"


def detail(username: str) -> str:
    return f"{LIST}{username}/"


def roles(project) -> dict[str, str]:
    return dict(Membership.objects.filter(project=project).values_list("user__username", "role"))


@pytest.fixture
def team(project, admin_user, supervisor, coder_a, coder_b):
    return roles(project)


# --- list ----------------------------------------------------------------------------------------


def test_admin_lists_members_with_their_reference_counts(api_as, team, policy, node, admin_user, coder_a, coder_b):
    code(policy, node, coder_a, 1)
    code(policy, node, coder_a, 2)
    code(policy, node, coder_b, 1)
    code(policy, node, admin_user, 3, consensus=True)  # the consensus layer is nobody's count

    response = api_as(admin_user).get(LIST)

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["username"], r["role"], r["references"]) for r in rows] == [
        ("admin_p", "admin", 0),
        ("coder_a", "coder", 2),
        ("coder_b", "coder", 1),
        ("supervisor_p", "supervisor", 0),
    ]
    ids = dict(Membership.objects.values_list("user__username", "pk"))
    assert all(r["id"] == ids[r["username"]] for r in rows)
    assert Reference.objects.filter(consensus=False).count() == 3


@pytest.mark.parametrize("item_count", [1, 3])
def test_member_list_query_count(api_as, project, admin_user, django_assert_num_queries, item_count):
    for _ in range(item_count):
        services.set_membership(actor=None, project=project, user=UserFactory(), role=Role.CODER)
    client = api_as(admin_user)

    with django_assert_num_queries(4):  # token + user, membership, count, page (counts are a subquery)
        response = client.get(LIST)

    assert response.json()["count"] == item_count + 1


def test_admin_reads_one_member(api_as, team, admin_user):
    body = api_as(admin_user).get(detail("coder_a")).json()

    assert (body["username"], body["role"], body["references"]) == ("coder_a", "coder", 0)


@pytest.mark.parametrize("username", ["nobody", "outsider", "a%00b", "x" * 151])
def test_a_non_member_is_404(api_as, team, outsider, admin_user, username):
    response = api_as(admin_user).get(detail(username))

    assert response.status_code == 404


# --- add -----------------------------------------------------------------------------------------


def test_admin_adds_an_existing_user(api_as, team, project, admin_user):
    UserFactory(username="newcomer")

    response = api_as(admin_user).post(LIST, {"username": " newcomer ", "role": "supervisor"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["username"], body["role"], body["outcome"], body["references"]) == (
        "newcomer",
        "supervisor",
        "added",
        0,
    )
    assert roles(project)["newcomer"] == "supervisor"
    [event] = Event.objects.filter(action="membership.create", actor=admin_user)
    assert event.after == {"user": "newcomer", "role": "supervisor"}


def test_adding_a_member_again_changes_or_keeps_the_role(api_as, team, project, admin_user):
    client = api_as(admin_user)

    changed = client.post(LIST, {"username": "coder_a", "role": "supervisor"}, format="json")
    unchanged = client.post(LIST, {"username": "coder_a", "role": "supervisor"}, format="json")

    assert changed.status_code == unchanged.status_code == 200
    assert (changed.json()["outcome"], unchanged.json()["outcome"]) == ("changed", "unchanged")
    assert roles(project)["coder_a"] == "supervisor"
    assert Event.objects.filter(action="membership.update", actor=admin_user).count() == 1


def test_role_defaults_to_coder(api_as, team, project, admin_user):
    UserFactory(username="newcomer")

    assert api_as(admin_user).post(LIST, {"username": "newcomer"}, format="json").json()["role"] == "coder"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "ghost"}, "username"),
        ({}, "username"),
        ({"username": "outsider", "role": "owner"}, "role"),
        ({"username": ["outsider"]}, "username"),
    ],
)
def test_bad_member_input_is_a_field_level_400(api_as, team, project, outsider, admin_user, payload, field):
    response = api_as(admin_user).post(LIST, payload, format="json")

    assert response.status_code == 400 and list(response.json()) == [field]
    assert roles(project) == team
    assert not Event.objects.filter(action__startswith="membership.", actor=admin_user).exists()


# --- change and remove -----------------------------------------------------------------------


def test_admin_changes_a_role(api_as, team, project, admin_user):
    response = api_as(admin_user).patch(detail("coder_b"), {"role": "supervisor"}, format="json")

    assert response.status_code == 200 and response.json()["role"] == "supervisor"
    assert roles(project)["coder_b"] == "supervisor"
    [event] = Event.objects.filter(action="membership.update", actor=admin_user)
    assert (event.before["role"], event.after["role"]) == ("coder", "supervisor")


@pytest.mark.parametrize("payload", [{}, {"role": "owner"}, {"role": None}])
def test_bad_role_change_is_a_field_level_400(api_as, team, project, admin_user, payload):
    response = api_as(admin_user).patch(detail("coder_b"), payload, format="json")

    assert response.status_code == 400 and list(response.json()) == ["role"]
    assert roles(project) == team


def test_admin_removes_a_member_whose_references_stay(api_as, team, project, policy, node, admin_user, coder_a):
    reference = code(policy, node, coder_a, 1)

    response = api_as(admin_user).delete(detail("coder_a"))

    assert response.status_code == 204
    assert "coder_a" not in roles(project)
    assert Reference.objects.get().pk == reference.pk and reference.coder == coder_a
    [event] = Event.objects.filter(action="membership.delete", actor=admin_user)
    assert event.before == {"user": "coder_a", "role": "coder"}
    assert api_as(coder_a).get("/api/projects/study/policies/").status_code == 404  # no longer a member


@pytest.mark.parametrize(
    ("method", "payload"),
    [("patch", {"role": "coder"}), ("delete", None), ("post", {"username": "admin_p", "role": "supervisor"})],
)
def test_the_only_admin_cannot_leave_or_be_demoted(api_as, team, project, admin_user, method, payload):
    path = LIST if method == "post" else detail("admin_p")

    response = getattr(api_as(admin_user), method)(path, payload, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": ["admin_p is the project's only admin; make someone else admin first."]
    }
    assert roles(project) == team
    assert not Event.objects.filter(action__startswith="membership.", actor=admin_user).exists()


def test_an_admin_may_step_down_when_another_admin_remains(api_as, team, project, admin_user, supervisor):
    client = api_as(admin_user)
    client.patch(detail("supervisor_p"), {"role": "admin"}, format="json")

    response = client.patch(detail("admin_p"), {"role": "coder"}, format="json")

    assert response.status_code == 200
    assert roles(project)["admin_p"] == "coder"
    assert client.get(LIST).status_code == 403  # a coder now


# --- who may ----------------------------------------------------------------------------------

REQUESTS = [
    ("get", LIST, None),
    ("post", LIST, {"username": "outsider", "role": "coder"}),
    ("get", detail("coder_b"), None),
    ("patch", detail("coder_b"), {"role": "supervisor"}),
    ("delete", detail("coder_b"), None),
]


@pytest.mark.parametrize(("method", "path", "payload"), REQUESTS)
@pytest.mark.parametrize("persona", ["supervisor", "coder_a"])
def test_only_admins_manage_members(api_as, team, project, outsider, method, path, payload, persona, request):
    response = getattr(api_as(request.getfixturevalue(persona)), method)(path, payload, format="json")

    assert response.status_code == 403
    assert roles(project) == team


@pytest.mark.parametrize(("method", "path", "payload"), REQUESTS)
def test_outsiders_and_anonymous_cannot_manage_members(
    api_as, anonymous, team, project, outsider, method, path, payload
):
    assert getattr(api_as(outsider), method)(path, payload, format="json").status_code == 404
    assert getattr(anonymous, method)(path, payload, format="json").status_code == 401
    assert roles(project) == team
