import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from coding.models import Event, Membership, Project, Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_superuser_creates_a_project_and_becomes_its_admin(client):
    root = UserFactory(username="root", is_superuser=True)
    client.force_login(root)
    response = client.post(
        reverse("coding:project_create"), {"slug": "housing", "name": "Housing policy", "blind_coding": "on"}
    )
    assert response.status_code == 302 and response["Location"] == "/projects/housing/"
    project = Project.objects.get(slug="housing")
    assert project.blind_coding
    assert Membership.objects.get(project=project).role == Role.ADMIN
    assert sorted(Event.objects.values_list("action", flat=True)) == ["membership.create", "project.create"]


def test_taken_slug_is_refused_with_a_message_and_nothing_changes(client, project):
    root = UserFactory(username="root", is_superuser=True)
    client.force_login(root)
    before = (Project.objects.count(), Event.objects.count())
    response = client.post(reverse("coding:project_create"), {"slug": "study", "name": "Again"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert (Project.objects.count(), Event.objects.count()) == before


@pytest.mark.parametrize("persona", ["admin_user", "coder_a", "outsider"])
def test_only_site_superusers_create_projects(client, persona, request):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("coding:project_create")).status_code == 403
    assert client.post(reverse("coding:project_create"), {"slug": "x", "name": "X"}).status_code == 403
    assert not Project.objects.filter(slug="x").exists()


def test_create_project_command(capsys, db):
    UserFactory(username="lead")
    call_command("create_project", "transport", "Transport", "--admin", "lead")
    assert Membership.objects.get(project__slug="transport").user.username == "lead"
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_project", "transport", "Again")
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_project", "other", "Other", "--admin", "ghost")
    assert Project.objects.count() == 1
