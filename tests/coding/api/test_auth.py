import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/auth/token/"


def test_token_for_username_and_password(anonymous, coder_a):
    response = anonymous.post(TOKEN_URL, {"username": "coder_a", "password": "pw"}, format="json")

    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=coder_a).key}


def test_token_from_a_form_post_too(anonymous, coder_a):
    # What `curl -d username=… -d password=…` sends.
    response = anonymous.post(
        TOKEN_URL, "username=coder_a&password=pw", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 200 and response.json()["token"]


def test_token_authenticates_api_calls(anonymous, coder_a):
    key = anonymous.post(TOKEN_URL, {"username": "coder_a", "password": "pw"}, format="json").json()["token"]

    response = anonymous.get("/api/projects/", HTTP_AUTHORIZATION=f"Token {key}")

    assert response.status_code == 200
    assert [p["slug"] for p in response.json()["results"]] == ["study"]


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "coder_a", "password": "wrong"},
        {"username": "nobody", "password": "pw"},
        {"username": "coder_a"},
        {},
    ],
)
def test_bad_credentials_are_a_400_without_token(anonymous, coder_a, payload):
    response = anonymous.post(TOKEN_URL, payload, format="json")

    assert response.status_code == 400
    assert "token" not in response.json()
    assert not Token.objects.exists()


def test_inactive_user_gets_no_token(anonymous, coder_a):
    coder_a.is_active = False
    coder_a.save()

    response = anonymous.post(TOKEN_URL, {"username": "coder_a", "password": "pw"}, format="json")

    assert response.status_code == 400


def test_token_of_a_deactivated_user_stops_working(api_as, coder_a):
    client = api_as(coder_a)
    coder_a.is_active = False
    coder_a.save()

    assert client.get("/api/projects/").status_code == 401


def test_unknown_token_is_401(anonymous, coder_a):
    response = anonymous.get("/api/projects/", HTTP_AUTHORIZATION="Token not-a-token")

    assert response.status_code == 401


def test_token_endpoint_is_rate_limited_per_username(anonymous, coder_a):
    statuses = [
        anonymous.post(
            TOKEN_URL, {"username": "coder_a", "password": f"guess{i}"}, format="json", REMOTE_ADDR=f"10.0.0.{i}"
        ).status_code
        for i in range(11)
    ]

    assert statuses == [400] * 10 + [429]
    # Even the right password waits now: the limit counts attempts, not failures.
    right = anonymous.post(TOKEN_URL, {"username": "coder_a", "password": "pw"}, format="json")
    assert right.status_code == 429
    assert "throttled" in right.json()["detail"]


def test_token_endpoint_is_rate_limited_per_address(anonymous, db):
    statuses = [
        anonymous.post(TOKEN_URL, {"username": f"user{i}", "password": "x"}, format="json").status_code
        for i in range(21)
    ]

    assert statuses == [400] * 20 + [429]


def test_session_auth_works_for_the_browser_and_needs_csrf(coder_a, policy, node):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(coder_a)

    assert client.get(reverse("api:policy-list", args=["study"])).status_code == 200
    refused = client.post(
        reverse("api:reference-list", args=["study"]), {"policy": 1, "clause": 1, "node": node.pk}, format="json"
    )
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]


def test_superuser_token_sees_every_project_as_admin(api_as, project):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)

    rows = api_as(root).get("/api/projects/").json()["results"]

    assert [(p["slug"], p["role"]) for p in rows] == [("study", "admin")]
