import pytest

from coding import services
from coding.models import DoneMark, Event, Policy
from tests.conftest import POLICY_TEXTS, SAMPLE_TEXT

pytestmark = pytest.mark.django_db

LIST = "/api/projects/study/policies/"


def detail(number: int) -> str:
    return f"/api/projects/study/policies/{number}/"


def done_url(number: int) -> str:
    return f"/api/projects/study/policies/{number}/done/"


@pytest.fixture
def catalogue(project, admin_user):
    """Three policies with the metadata the filters use."""
    rows = [
        ("Beijing plan", "Beijing", "2011", "Normative document"),
        ("Shanghai rules", "Shanghai", "2021-04-28", "Local regulation"),
        ("Beijing rules", "Beijing", "2021-05", "Local regulation"),
    ]
    return [
        services.create_policy(
            actor=admin_user,
            project=project,
            title=title,
            text="第一条　总则。\n第二条　附则。\n",
            jurisdiction=jurisdiction,
            release_date=date,
            potency_level=level,
        )
        for title, jurisdiction, date, level in rows
    ]


# --- list ------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a"])
def test_members_list_policies_with_counts(api_as, policy, persona, request):
    response = api_as(request.getfixturevalue(persona)).get(LIST)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1 and body["next"] is None
    [row] = body["results"]
    assert row["number"] == 1 and row["title"] == "济宁市智慧城市促进条例"
    assert (row["clause_count"], row["text_length"], row["done"]) == (4, len(SAMPLE_TEXT), False)
    assert "text" not in row  # the list stays light; the detail has the text


def test_outsider_gets_404_and_anonymous_401(api_as, anonymous, policy, outsider):
    assert api_as(outsider).get(LIST).status_code == 404
    assert api_as(outsider).get(detail(1)).status_code == 404
    assert anonymous.get(LIST).status_code == 401
    assert anonymous.get(detail(1)).status_code == 401


def test_unknown_project_is_404_like_a_foreign_one(api_as, coder_a):
    response = api_as(coder_a).get("/api/projects/no-such-project/policies/")

    assert response.status_code == 404 and response.json() == {"detail": "No such project."}


@pytest.mark.parametrize(
    ("query", "titles"),
    [
        ("jurisdiction=Beijing", ["Beijing plan", "Beijing rules"]),
        ("year=2021", ["Shanghai rules", "Beijing rules"]),
        ("year=2011&jurisdiction=Beijing", ["Beijing plan"]),
        ("potency_level=Local+regulation", ["Shanghai rules", "Beijing rules"]),
        ("jurisdiction=Guangzhou", []),
        ("done=true", ["Shanghai rules"]),
        ("done=false", ["Beijing plan", "Beijing rules"]),
    ],
)
def test_policy_filters(api_as, catalogue, coder_a, coder_b, query, titles):
    services.mark_policy_done(actor=coder_a, policy=catalogue[1], coder=coder_a)
    services.mark_policy_done(actor=coder_b, policy=catalogue[2], coder=coder_b)  # not "done by me"

    rows = api_as(coder_a).get(f"{LIST}?{query}").json()["results"]

    assert [r["title"] for r in rows] == titles


@pytest.mark.parametrize(
    ("query", "field"), [("year=abc", "year"), ("year=0", "year"), ("done=maybe", "done"), ("year=99999", "year")]
)
def test_bad_filters_are_field_level_400s(api_as, catalogue, coder_a, query, field):
    response = api_as(coder_a).get(f"{LIST}?{query}")

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_policies_are_paginated(api_as, catalogue, coder_a):
    client = api_as(coder_a)

    first = client.get(f"{LIST}?page_size=2").json()
    second = client.get(first["next"]).json()

    assert first["count"] == 3
    assert [r["number"] for r in first["results"]] == [1, 2]
    assert [r["number"] for r in second["results"]] == [3]
    assert client.get(f"{LIST}?page=9").status_code == 404


@pytest.mark.parametrize("item_count", [1, 3])
def test_policy_list_query_count(api_as, project, admin_user, coder_a, django_assert_num_queries, item_count):
    for i in range(item_count):
        services.create_policy(actor=admin_user, project=project, title=f"P{i}", text=SAMPLE_TEXT)
    client = api_as(coder_a)

    # token + user, membership, count, page (clause counts and done marks are annotations)
    with django_assert_num_queries(4):
        response = client.get(LIST)

    assert len(response.json()["results"]) == item_count


# --- detail --------------------------------------------------------------------------------


def test_detail_has_text_and_clauses_in_code_points(api_as, policy, coder_a):
    body = api_as(coder_a).get(detail(1)).json()

    assert body["text"] == SAMPLE_TEXT
    assert [c["label"] for c in body["clauses"]] == ["1-0", "1-1", "1-2", "1-3"]
    for clause in body["clauses"]:
        assert clause["text"] == SAMPLE_TEXT[clause["start"] : clause["end"]]
    last = body["clauses"][-1]
    assert last["text"] == "第三条　市人民政府应当加强人才培养，𠀀支持数据共享。"
    # Code points: 𠀀 counts one, so the clause ends one before its UTF-16 end would.
    assert last["end"] == len(SAMPLE_TEXT) - 1
    assert len(SAMPLE_TEXT[: last["end"]].encode("utf-16-le")) // 2 == last["end"] + 1


def test_unknown_policy_number_is_404(api_as, policy, coder_a):
    response = api_as(coder_a).get(detail(2))

    assert response.status_code == 404
    assert response.json() == {"detail": "Policy 2 does not exist in this project."}


def test_policy_detail_of_a_real_text(api_as, project, admin_user, coder_a):
    text = (POLICY_TEXTS / "01_jining_smart_city_promotion_regulation_2017.txt").read_text(encoding="utf-8")
    services.create_policy(actor=admin_user, project=project, title="Jining", text=text)

    body = api_as(coder_a).get(detail(1)).json()

    assert body["clause_count"] == len(body["clauses"]) > 50
    assert all(c["text"] == body["text"][c["start"] : c["end"]] for c in body["clauses"])


# --- create --------------------------------------------------------------------------------


def test_admin_creates_a_segmented_policy(api_as, project, admin_user):
    payload = {
        "title": "Shenzhen smart city plan",
        "text": "第一条　总则。\r\n第二条　𠀀数据。\r\n",
        "jurisdiction": "Shenzhen",
        "release_date": "2021-04",
        "release_departments": ["General Office", "Development and Reform Commission"],
        "potency_level": "Normative document",
        "attributes": {"tool": "supply"},
    }

    response = api_as(admin_user).post(LIST, payload, format="json")

    assert response.status_code == 201
    body = response.json()
    assert response["Location"] == detail(1)
    assert body["number"] == 1 and body["release_date"] == "2021-04"
    assert body["text"] == "第一条　总则。\n第二条　𠀀数据。\n"  # stored with LF line ends
    assert [(c["label"], c["text"]) for c in body["clauses"]] == [
        ("1-1", "第一条　总则。"),
        ("1-2", "第二条　𠀀数据。"),
    ]
    policy = Policy.objects.get(project=project, number=1)
    assert policy.release_departments == ["General Office", "Development and Reform Commission"]
    assert policy.attributes == {"tool": "supply"}
    assert list(Event.objects.filter(action="policy.create").values_list("actor__username", flat=True)) == ["admin_p"]


def test_policy_without_text_is_a_catalogue_entry(api_as, project, admin_user):
    body = api_as(admin_user).post(LIST, {"title": "Only metadata", "number": 7}, format="json").json()

    assert (body["number"], body["text"], body["clauses"], body["clause_count"]) == (7, "", [], 0)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": "x"}, "title"),
        ({"title": "T", "release_date": "2021-13"}, "release_date"),
        ({"title": "T", "rule": "chapter"}, "rule"),
        ({"title": "T", "number": 1}, "number"),  # taken by the existing policy
        ({"title": "T", "number": 0}, "number"),
        ({"title": "T", "source_url": "not a url"}, "source_url"),
        ({"title": "T", "release_departments": "one;two"}, "release_departments"),
        ({"title": "T", "attributes": [1, 2]}, "attributes"),
        ({"title": "x" * 501}, "title"),
    ],
)
def test_bad_policy_input_is_a_field_level_400(api_as, policy, admin_user, payload, field):
    response = api_as(admin_user).post(LIST, payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert Policy.objects.count() == 1


@pytest.mark.parametrize("persona", ["supervisor", "coder_a"])
def test_only_admins_create_policies(api_as, project, persona, request):
    response = api_as(request.getfixturevalue(persona)).post(LIST, {"title": "T"}, format="json")

    assert response.status_code == 403
    assert not Policy.objects.exists()


def test_outsider_and_anonymous_cannot_create(api_as, anonymous, project, outsider):
    assert api_as(outsider).post(LIST, {"title": "T"}, format="json").status_code == 404
    assert anonymous.post(LIST, {"title": "T"}, format="json").status_code == 401
    assert not Policy.objects.filter(project=project).exists()


# --- done marks ----------------------------------------------------------------------------


def test_coder_marks_a_policy_done_and_undoes_it(api_as, policy, coder_a):
    client = api_as(coder_a)

    marked = client.post(done_url(1))
    again = client.post(done_url(1))

    assert marked.status_code == again.status_code == 200
    assert marked.json()["policy"] == 1 and marked.json()["done"] is True
    assert client.get(detail(1)).json()["done"] is True
    assert Event.objects.filter(action="policy.done").count() == 1  # marking twice is one change

    undone = client.delete(done_url(1))

    assert undone.status_code == 204
    assert not DoneMark.objects.exists()
    assert client.get(detail(1)).json()["done"] is False
    assert Event.objects.filter(action="policy.undone").count() == 1


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a"])
def test_every_member_has_their_own_done_mark(api_as, policy, persona, request):
    user = request.getfixturevalue(persona)

    response = api_as(user).post(done_url(1))

    assert response.status_code == 200
    assert list(DoneMark.objects.values_list("coder__username", flat=True)) == [user.username]


def test_done_marks_are_per_user(api_as, policy, coder_a, coder_b):
    api_as(coder_b).post(done_url(1))

    assert api_as(coder_a).get(detail(1)).json()["done"] is False


def test_done_needs_membership_and_a_policy(api_as, anonymous, policy, outsider, coder_a):
    assert api_as(outsider).post(done_url(1)).status_code == 404
    assert anonymous.post(done_url(1)).status_code == 401
    assert api_as(coder_a).post(done_url(5)).status_code == 404
    assert not DoneMark.objects.exists()
