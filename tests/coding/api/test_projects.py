import pytest

from coding import services
from coding.models import Role
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

URL = "/api/projects/"


@pytest.mark.parametrize(
    ("persona", "role"), [("admin_user", "admin"), ("supervisor", "supervisor"), ("coder_a", "coder")]
)
def test_members_see_the_project_with_their_role(api_as, project, persona, role, request):
    response = api_as(request.getfixturevalue(persona)).get(URL)

    assert response.status_code == 200
    assert response.json()["results"] == [
        {"slug": "study", "name": "Study", "description": "", "blind_coding": True, "role": role}
    ]


def test_outsider_sees_only_their_own_project(api_as, project, outsider):
    rows = api_as(outsider).get(URL).json()["results"]

    assert [(p["slug"], p["role"]) for p in rows] == [("elsewhere", "admin")]


def test_anonymous_gets_401(anonymous, project):
    response = anonymous.get(URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_role_is_per_project(api_as, project, coder_a):
    other = ProjectFactory(slug="other", name="Other")
    services.set_membership(actor=None, project=other, user=coder_a, role=Role.SUPERVISOR)

    rows = api_as(coder_a).get(URL).json()["results"]

    assert [(p["slug"], p["role"]) for p in rows] == [("other", "supervisor"), ("study", "coder")]


@pytest.mark.parametrize("item_count", [1, 3])
def test_project_list_query_count(api_as, coder_a, django_assert_num_queries, item_count):
    for i in range(item_count):
        project = ProjectFactory(slug=f"p{i}")
        services.set_membership(actor=None, project=project, user=coder_a, role=Role.CODER)
    client = api_as(coder_a)

    # token + user, count, page (roles come in the same query as the projects)
    with django_assert_num_queries(3):
        response = client.get(URL)

    assert len(response.json()["results"]) == item_count + 1  # and "study"
