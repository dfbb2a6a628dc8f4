"""Bad input of every shape is a JSON 4xx naming what is wrong, never a 500, and changes nothing."""

import json

import pytest

from coding.models import Policy, Reference

pytestmark = pytest.mark.django_db

POLICIES = "/api/projects/study/policies/"
REFERENCES = "/api/projects/study/references/"


def post_raw(client, url: str, body: bytes | str):
    return client.generic("POST", url, body, content_type="application/json")


def test_oversized_body_is_413(api_as, project, admin_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    body = json.dumps({"title": "T", "text": "字" * 1000}).encode()

    response = post_raw(api_as(admin_user), POLICIES, body)

    assert response.status_code == 413
    assert response.json() == {"detail": f"The request body has {len(body)} bytes; the limit is 1000 bytes."}
    assert not Policy.objects.exists()


def test_oversized_form_body_is_413_too(anonymous, db, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100

    response = anonymous.post(
        "/api/auth/token/", "username=" + "u" * 200 + "&password=x", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        '{"title": "T", "attributes": {"note": "a\\u0000b"}}',  # NUL: PostgreSQL cannot store it
        '{"title": "T", "release_departments": ["\\ud800"]}',  # a lone surrogate: not UTF-8
        '{"title": "T", "attributes": {"\\udfff": 1}}',
        '{"title": "T", "attributes": ' + "[" * 100_000 + "]" * 100_000 + "}",  # nested too deep
        '{"title": "T",',
        '{"title": NaN}',
        "[1, 2]",
        '"T"',
    ],
)
def test_unstorable_or_malformed_json_is_400(api_as, project, admin_user, body):
    response = post_raw(api_as(admin_user), POLICIES, body)

    assert response.status_code == 400
    assert isinstance(response.json(), dict)
    assert not Policy.objects.exists()


@pytest.mark.parametrize("title", ["a\x00b", "\ud800"])
def test_unstorable_text_fields_are_400(api_as, project, admin_user, title):
    body = json.dumps({"title": title})  # ensure_ascii: the escapes travel as \u0000 / \ud800

    response = post_raw(api_as(admin_user), POLICIES, body)

    assert response.status_code == 400
    assert not Policy.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/api/projects/study/policies/99999999999999999999/",
        "/api/projects/study/policies/99999999999999999999/done/",
        "/api/projects/study/nodes/99999999999999999999/",
        "/api/projects/study/references/99999999999999999999/",
    ],
)
def test_out_of_range_ids_in_the_path_are_404(api_as, policy, coder_a, url):
    assert api_as(coder_a).get(url).status_code in {404, 405}
    assert api_as(coder_a).post(url).status_code in {404, 405}


@pytest.mark.parametrize(
    "query",
    [
        "jurisdiction=%00",
        "potency_level=a%00",
        "year=9999999999999999999999",
        "page=99999999999999999999",
        "page_size=-1",
        "page=abc",
    ],
)
def test_odd_policy_queries_are_4xx(api_as, policy, coder_a, query):
    response = api_as(coder_a).get(f"{POLICIES}?{query}")

    assert response.status_code in {200, 400, 404}
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "query", ["coder=%00", "node=99999999999999999999", "policy=2147483648", "clause=99999999999-1", "coder=%ED%A0%80"]
)
def test_odd_reference_queries_are_4xx_or_empty(api_as, policy, coder_a, query):
    response = api_as(coder_a).get(f"{REFERENCES}?{query}")

    assert response.status_code in {200, 400}
    if response.status_code == 200:
        assert response.json()["results"] == []


def test_unsupported_media_type_is_415(api_as, policy, node, coder_a):
    response = api_as(coder_a).post(REFERENCES, "policy=1&clause=1", content_type="text/plain")

    assert response.status_code == 415
    assert not Reference.objects.exists()


def test_wrong_method_is_a_json_405(api_as, policy, coder_a):
    response = api_as(coder_a).put(f"{POLICIES}1/", {"title": "x"}, format="json")

    assert response.status_code == 405 and "detail" in response.json()


@pytest.mark.parametrize(
    "path",
    [
        "/api/projects/study/policies/abc/",
        "/api/projects/study/policies/1%0A/done/",  # a newline: "." in a URL pattern stops there
        "/api/projects/study/nodes/-1/",
        "/api/projects/no%20such/policies/",
        "/api/projects",
        "/api/nothing/here/",
    ],
)
def test_unknown_api_paths_are_json_404s(api_as, policy, coder_a, path):
    for method in ("get", "post", "delete"):
        response = getattr(api_as(coder_a), method)(path)

        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert "No API endpoint" in response.json()["detail"]


def test_html_is_not_offered(api_as, policy, coder_a):
    response = api_as(coder_a).get("/api/projects/study/policies/", HTTP_ACCEPT="text/html")

    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
