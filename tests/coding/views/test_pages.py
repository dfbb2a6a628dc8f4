import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from coding import services
from tests.conftest import SAMPLE_TEXT

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


def project_pages(policy) -> list[str]:
    return [
        reverse("coding:project_home", args=["study"]),
        reverse("coding:policy_detail", args=["study", policy.number]),
    ]


def test_anonymous_is_sent_to_login(client, policy):
    for url in [reverse("coding:project_list"), *project_pages(policy)]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_outsider_gets_404_on_every_project_page(client, policy, outsider):
    client.force_login(outsider)
    for url in project_pages(policy):
        assert client.get(url).status_code == 404, url
    # The project list does not mention the project either.
    assert "Study" not in client.get(reverse("coding:project_list")).content.decode()


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a"])
def test_members_see_project_pages(client, policy, persona, request):
    client.force_login(request.getfixturevalue(persona))
    for url in project_pages(policy):
        assert client.get(url).status_code == 200, url


def test_unknown_policy_number_is_404(client, policy, coder_a):
    client.force_login(coder_a)
    assert client.get(reverse("coding:policy_detail", args=["study", 999])).status_code == 404


def test_policy_page_shows_clause_labels_and_text(client, policy, coder_a):
    client.force_login(coder_a)
    html = client.get(reverse("coding:policy_detail", args=["study", 1])).content.decode()
    for label in ["1-0", "1-1", "1-2", "1-3"]:
        assert f'<span class="label">{label}</span>' in html
    assert "𠀀支持数据共享" in html
    assert "第一章" not in html.split('<ol class="clauses">')[1]  # headings belong to no clause


def test_project_home_lists_policies_with_clause_counts_and_done(client, project, policy, admin_user, coder_a, coder_b):
    services.mark_policy_done(actor=coder_a, policy=policy, coder=coder_a)
    client.force_login(admin_user)
    response = client.get(reverse("coding:project_home", args=["study"]))
    rows = response.context["rows"]
    assert [(p.number, p.clause_count, marks) for p, marks in rows] == [(1, 4, [True, False])]
    assert [(u.username, n) for u, n in response.context["progress"]] == [("coder_a", 1), ("coder_b", 0)]


def test_coders_see_only_their_own_progress_when_blind(client, policy, coder_a, coder_b):
    services.mark_policy_done(actor=coder_b, policy=policy, coder=coder_b)
    client.force_login(coder_a)
    response = client.get(reverse("coding:project_home", args=["study"]))
    assert [(u.username, n) for u, n in response.context["progress"]] == [("coder_a", 0)]
    assert "coder_b" not in response.content.decode()


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx)


@pytest.mark.parametrize("page", ["project_home", "policy_detail", "project_list"])
def test_query_count_does_not_grow_with_policies(client, project, admin_user, coder_a, coder_b, page):
    def url():
        return {
            "project_home": reverse("coding:project_home", args=["study"]),
            "policy_detail": reverse("coding:policy_detail", args=["study", 1]),
            "project_list": reverse("coding:project_list"),
        }[page]

    client.force_login(admin_user)
    services.create_policy(actor=admin_user, project=project, title="one", text=SAMPLE_TEXT)
    services.mark_policy_done(actor=coder_a, policy=project.policies.get(), coder=coder_a)
    with_one = _queries(client, url())
    for n in (2, 3):
        p = services.create_policy(actor=admin_user, project=project, title=str(n), text=SAMPLE_TEXT * n)
        services.mark_policy_done(actor=coder_b, policy=p, coder=coder_b)
    assert _queries(client, url()) == with_one


def test_healthz_reports_a_real_database_round_trip(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_with_the_reason_when_the_database_is_down():
    # A separate process whose DATABASE_URL points at a port where nothing listens.
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/healthz');"
        "print(json.dumps({'status_code': r.status_code, 'body': r.json()}))"
    )
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "policycoder.settings",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:9/nowhere?connect_timeout=2",
        "SECRET_KEY": "x",
        "ALLOWED_HOSTS": "testserver",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status_code"] == 503
    assert result["body"]["status"] == "error"
    assert "OperationalError" in result["body"]["database"]


def test_login_page_and_login_flow(client, coder_a):
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "coder_a", "password": "pw"})
    assert response.status_code == 302
    assert client.get(reverse("coding:project_list")).status_code == 200
    bad = client.post("/accounts/login/", {"username": "coder_a", "password": "wrong"})
    assert "didn't match" in bad.content.decode()
