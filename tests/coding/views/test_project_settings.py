"""The project settings page (admins): name, description and blind coding, through the audited
service, saying plainly what switching blind coding does."""

import pytest
from django.urls import reverse

from coding import access
from coding.models import Event, Project
from tests.coding.api.conftest import code
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = reverse("coding:project_settings", args=["study"])


def form(**changes) -> dict:
    data = {"name": "Study", "description": "", "blind_coding": "on"}
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_admin_sees_the_settings_with_blind_coding_explained(client, project, admin_user):
    client.force_login(admin_user)

    response = client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<h2>Blind coding is on</h2>" in html
    assert "Turning it off</strong> lets coders see every coder's references and the consensus layer" in html
    assert 'id="id_blind_coding" checked>' in html
    assert 'value="Study"' in html
    assert f'href="{URL}">Settings</a>' in html


def test_turning_blind_coding_off_is_audited_and_said_plainly(
    client, project, policy, node, admin_user, coder_a, coder_b
):
    theirs = code(policy, node, coder_b, 1)
    acc = access.get_project_for_user(coder_a, "study")
    assert list(access.visible_references(acc)) == []
    client.force_login(admin_user)

    response = client.post(URL, form(blind_coding=None), follow=True)

    html = response.content.decode()
    assert response.redirect_chain == [(URL, 302)]
    assert Project.objects.get(slug="study").blind_coding is False
    event = Event.objects.get(action="project.update")
    assert (event.actor, event.before["blind_coding"], event.after["blind_coding"]) == (admin_user, True, False)
    assert "Blind coding is now off: coders see every coder&#x27;s references and the consensus layer" in html
    assert "<h2>Blind coding is off</h2>" in html
    # What the message says is what happens: coder_a now sees coder_b's reference.
    acc = access.get_project_for_user(coder_a, "study")
    assert list(access.visible_references(acc)) == [theirs]


def test_turning_blind_coding_back_on_says_so(client, project, admin_user):
    Project.objects.filter(pk=project.pk).update(blind_coding=False)
    client.force_login(admin_user)

    html = client.post(URL, form(), follow=True).content.decode()

    assert Project.objects.get(slug="study").blind_coding is True
    assert "Blind coding is now on: each coder sees only their own references again" in html
    assert "<h2>Blind coding is on</h2>" in html


def test_renaming_changes_only_name_and_description(client, project, admin_user):
    client.force_login(admin_user)

    response = client.post(URL, form(name="Smart cities", description="Tier-1 cities"), follow=True)

    project.refresh_from_db()
    assert (project.name, project.description, project.blind_coding) == ("Smart cities", "Tier-1 cities", True)
    html = response.content.decode()
    assert "Settings saved." in html and "Blind coding is now" not in html
    event = Event.objects.get(action="project.update")
    assert event.before == {"name": "Study", "description": "", "blind_coding": True}
    assert event.after == {"name": "Smart cities", "description": "Tier-1 cities", "blind_coding": True}


def test_saving_unchanged_settings_writes_nothing(client, project, admin_user):
    client.force_login(admin_user)

    response = client.post(URL, form(), follow=True)

    assert "Nothing changed." in response.content.decode()
    assert not Event.objects.filter(action="project.update").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (form(name=""), "This field is required."),
        (form(name="x" * 201), "Ensure this value has at most 200 characters (it has 201)."),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(client, project, admin_user, data, message):
    client.force_login(admin_user)

    response = client.post(URL, data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert Project.objects.filter(slug="study", name="Study", blind_coding=True).exists()
    assert not Event.objects.filter(action="project.update").exists()


@pytest.mark.parametrize("persona", ["supervisor", "coder_a"])
def test_only_admins_change_settings(client, project, persona, request):
    client.force_login(request.getfixturevalue(persona))

    assert client.get(URL).status_code == 403
    assert client.post(URL, form(blind_coding=None)).status_code == 403
    assert Project.objects.get(slug="study").blind_coding is True
    assert f'href="{URL}"' not in client.get(reverse("coding:project_home", args=["study"])).content.decode()


def test_outsider_gets_404_and_anonymous_is_sent_to_login(client, project, outsider):
    assert client.get(URL)["Location"].startswith("/accounts/login/")
    client.force_login(outsider)

    assert client.get(URL).status_code == 404
    assert client.post(URL, form(blind_coding=None)).status_code == 404
    assert Project.objects.get(slug="study").blind_coding is True


def test_site_superuser_is_an_admin_here(client, project):
    client.force_login(UserFactory(username="root", is_superuser=True))

    client.post(URL, form(name="Renamed"))

    assert Project.objects.get(slug="study").name == "Renamed"


def test_new_project_page_refuses_the_reserved_slug(client, db):
    client.force_login(UserFactory(username="root", is_superuser=True))

    response = client.post(reverse("coding:project_create"), {"slug": "new", "name": "New"})

    assert response.status_code == 200
    assert "is the address of another page (/projects/new/)" in response.content.decode()
    assert not Project.objects.exists()
