import pytest

from coding import services
from coding.models import Event, Membership, Project, Role
from tests.factories import ProjectFactory, UserFactory

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


# --- one project: read it, change its settings (admins), create one (site superusers) ----------

DETAIL = "/api/projects/study/"


@pytest.mark.parametrize(
    ("persona", "role"), [("admin_user", "admin"), ("supervisor", "supervisor"), ("coder_a", "coder")]
)
def test_members_read_the_project_with_their_role(api_as, project, persona, role, request):
    response = api_as(request.getfixturevalue(persona)).get(DETAIL)

    assert response.status_code == 200
    assert response.json() == {"slug": "study", "name": "Study", "description": "", "blind_coding": True, "role": role}


def test_outsider_gets_404_for_the_project_and_its_settings(api_as, project, outsider):
    client = api_as(outsider)

    assert client.get(DETAIL).status_code == 404
    assert client.patch(DETAIL, {"blind_coding": False}, format="json").status_code == 404
    assert Project.objects.get(slug="study").blind_coding is True


def test_admin_turns_blind_coding_off_through_the_audited_service(api_as, project, admin_user):
    response = api_as(admin_user).patch(DETAIL, {"blind_coding": False}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "slug": "study",
        "name": "Study",
        "description": "",
        "blind_coding": False,
        "role": "admin",
    }
    assert Project.objects.get(slug="study").blind_coding is False
    event = Event.objects.get(action="project.update")
    assert (event.actor, event.project, event.target_id) == (admin_user, project, project.pk)
    assert event.before == {"name": "Study", "description": "", "blind_coding": True}
    assert event.after == {"name": "Study", "description": "", "blind_coding": False}


def test_admin_renames_and_describes_leaving_blind_coding_as_it_was(api_as, project, admin_user):
    body = {"name": "Smart cities", "description": "First-tier cities, 2011–2021."}

    response = api_as(admin_user).patch(DETAIL, body, format="json")

    assert response.status_code == 200
    project.refresh_from_db()
    assert (project.name, project.description, project.blind_coding) == (*body.values(), True)


@pytest.mark.parametrize("persona", ["supervisor", "coder_a"])
def test_only_admins_change_the_project(api_as, project, persona, request):
    response = api_as(request.getfixturevalue(persona)).patch(DETAIL, {"blind_coding": False}, format="json")

    assert response.status_code == 403
    assert Project.objects.get(slug="study").blind_coding is True
    assert not Event.objects.filter(action="project.update").exists()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "non_field_errors", "Give at least one of name, description and blind_coding."),
        ({"name": "  "}, "name", "This field may not be blank."),
        ({"name": "x" * 201}, "name", "Ensure this field has no more than 200 characters."),
        ({"blind_coding": "maybe"}, "blind_coding", "Must be a valid boolean."),
        ({"slug": "renamed"}, "slug", "The slug cannot change: addresses and API calls use it."),
    ],
)
def test_bad_settings_are_refused_naming_the_field_and_change_nothing(
    api_as, project, admin_user, body, field, message
):
    response = api_as(admin_user).patch(DETAIL, body, format="json")

    assert response.status_code == 400
    assert response.json()[field] == [message]
    assert Project.objects.filter(slug="study", name="Study", blind_coding=True).exists()
    assert not Event.objects.filter(action="project.update").exists()


def test_patch_that_changes_nothing_is_not_audited(api_as, project, admin_user):
    response = api_as(admin_user).patch(DETAIL, {"name": "Study", "blind_coding": True}, format="json")

    assert response.status_code == 200
    assert not Event.objects.filter(action="project.update").exists()


def test_project_detail_query_count(api_as, project, coder_a, django_assert_num_queries):
    client = api_as(coder_a)

    with django_assert_num_queries(2):  # token + user, membership + project
        client.get(DETAIL)


def test_superuser_creates_a_project_and_becomes_its_admin_as_on_the_page(api_as, db):
    root = UserFactory(username="root", is_superuser=True)

    response = api_as(root).post(URL, {"slug": "housing", "name": "Housing policy"}, format="json")

    assert response.status_code == 201
    assert response["Location"] == "/api/projects/housing/"
    assert response.json() == {
        "slug": "housing",
        "name": "Housing policy",
        "description": "",
        "blind_coding": True,
        "role": "admin",
    }
    project = Project.objects.get(slug="housing")
    assert list(Membership.objects.filter(project=project).values_list("user__username", "role")) == [("root", "admin")]
    assert sorted(Event.objects.filter(project=project).values_list("action", flat=True)) == [
        "membership.create",
        "project.create",
    ]
    assert api_as(root).get("/api/projects/housing/").json()["role"] == "admin"


def test_a_project_may_start_with_blind_coding_off(api_as, db):
    root = UserFactory(username="root", is_superuser=True)

    response = api_as(root).post(URL, {"slug": "open", "name": "Open", "blind_coding": False}, format="json")

    assert response.status_code == 201
    assert Project.objects.get(slug="open").blind_coding is False


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a", "outsider"])
def test_only_site_superusers_create_projects(api_as, project, persona, request):
    response = api_as(request.getfixturevalue(persona)).post(URL, {"slug": "x", "name": "X"}, format="json")

    assert response.status_code == 403
    assert response.json() == {"detail": "Only site administrators create projects."}
    assert not Project.objects.filter(slug="x").exists()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"slug": "study", "name": "Again"}, "slug", "A project with slug 'study' already exists."),
        (
            {"slug": "new", "name": "New"},
            "slug",
            "'new' is the address of another page (/projects/new/); choose another.",
        ),
        ({"slug": "no spaces", "name": "X"}, "slug", None),
        ({"slug": "ok"}, "name", "This field is required."),
    ],
)
def test_bad_new_projects_are_refused_and_nothing_is_written(api_as, project, body, field, message):
    root = UserFactory(username="root", is_superuser=True)
    before = (Project.objects.count(), Membership.objects.count(), Event.objects.count())

    response = api_as(root).post(URL, body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    if message:
        assert response.json()[field] == [message]
    assert (Project.objects.count(), Membership.objects.count(), Event.objects.count()) == before
