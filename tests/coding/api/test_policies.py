import pytest

from coding import services
from coding.api.serializers import (
    PolicyCreateSerializer,
    PolicyMetadataSerializer,
    PolicySerializer,
    PolicyUpdateSerializer,
)
from coding.models import DoneMark, Event, Policy, Reference
from coding.segmentation import segment
from tests.conftest import POLICY_TEXTS, SAMPLE_TEXT

from .conftest import code as code_clause

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


# --- change, delete, text, segmentation (admins) -----------------------------------------------


def text_url(number: int) -> str:
    return f"/api/projects/study/policies/{number}/text/"


def resegment_url(number: int) -> str:
    return f"/api/projects/study/policies/{number}/resegment/"


def snapshot(project) -> list[tuple]:
    """Every policy with its text and clauses, to show a refused request changed nothing."""
    return [
        (p.number, p.title, p.jurisdiction, p.release_date, p.text, p.segmentation_rule, clauses)
        for p in Policy.objects.filter(project=project).order_by("number")
        for clauses in [list(p.clauses.order_by("start").values_list("number", "start", "end"))]
    ]


def test_policy_serializers_derive_their_fields_from_the_services():
    metadata = set(services.POLICY_FIELDS)

    assert PolicySerializer.Meta.fields[: len(services.POLICY_FIELDS)] == list(services.POLICY_FIELDS)
    assert set(PolicyMetadataSerializer().fields) == metadata - {"segmentation_rule"}
    assert set(PolicyUpdateSerializer().fields) == metadata - {"segmentation_rule"}
    assert set(PolicyCreateSerializer().fields) == metadata - {"segmentation_rule"} | {"text", "rule"}


def test_admin_changes_a_policys_metadata(api_as, policy, admin_user):
    payload = {
        "jurisdiction": "Jining",
        "release_date": "2017-03",
        "release_departments": ["Standing Committee"],
        "attributes": {"tool": "supply"},
    }

    response = api_as(admin_user).patch(detail(1), payload, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["jurisdiction"], body["release_date"], body["release_departments"]) == (
        "Jining",
        "2017-03",
        ["Standing Committee"],
    )
    assert body["title"] == "济宁市智慧城市促进条例" and len(body["clauses"]) == 4  # the rest is as it was
    policy.refresh_from_db()
    assert (policy.jurisdiction, policy.attributes) == ("Jining", {"tool": "supply"})
    [event] = Event.objects.filter(action="policy.update")
    assert event.actor == admin_user
    assert (event.before["jurisdiction"], event.after["jurisdiction"]) == ("", "Jining")


def test_a_new_number_moves_the_policy(api_as, policy, admin_user, coder_a, node):
    reference = code_clause(policy, node, coder_a)
    client = api_as(admin_user)

    response = client.patch(detail(1), {"number": 23}, format="json")

    assert response.status_code == 200 and response.json()["number"] == 23
    assert client.get(detail(1)).status_code == 404
    assert client.get(detail(23)).json()["title"] == policy.title
    assert client.get(f"/api/projects/study/references/{reference.pk}/").json()["label"] == "23-1"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "non_field_errors"),
        ({"title": ""}, "title"),
        ({"release_date": "2021-13"}, "release_date"),
        ({"number": 2}, "number"),  # taken
        ({"number": 0}, "number"),
        ({"source_url": "not a url"}, "source_url"),
        ({"attributes": [1, 2]}, "attributes"),
        ({"release_departments": "one;two"}, "release_departments"),
        ({"text": "第一条　新。"}, "text"),  # has its own endpoint
        ({"segmentation_rule": "item"}, "segmentation_rule"),
        (["title"], "non_field_errors"),
    ],
)
def test_bad_policy_changes_are_field_level_400s(api_as, catalogue, project, admin_user, payload, field):
    before = snapshot(project)

    response = api_as(admin_user).patch(detail(1), payload, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert snapshot(project) == before
    assert not Event.objects.filter(action="policy.update").exists()


def test_admin_deletes_a_coded_policy_with_its_references(api_as, policy, admin_user, coder_a, coder_b, node):
    code_clause(policy, node, coder_a)
    code_clause(policy, node, coder_b)

    response = api_as(admin_user).delete(detail(1))

    assert response.status_code == 204
    assert not Policy.objects.exists() and not Reference.objects.exists()
    [event] = Event.objects.filter(action="policy.delete")
    assert (event.actor, event.before["references"], event.before["number"]) == (admin_user, 2, 1)


def test_admin_attaches_a_text_to_a_catalogue_entry(api_as, project, admin_user):
    services.create_policy(actor=admin_user, project=project, title="Catalogue entry")
    text = "第一条　总则。\r\n第二条　𠀀数据。\r\n"

    response = api_as(admin_user).post(text_url(1), {"text": text}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["text"] == text.replace("\r\n", "\n")
    assert [(c["label"], c["text"]) for c in body["clauses"]] == [
        ("1-1", "第一条　总则。"),
        ("1-2", "第二条　𠀀数据。"),
    ]
    assert body["segmentation_rule"] == "article"
    [event] = Event.objects.filter(action="policy.set_text")
    assert (event.actor, event.before["clauses"], event.after["clauses"]) == (admin_user, 0, 2)


def test_admin_replaces_an_uncoded_text_under_a_rule(api_as, policy, admin_user):
    response = api_as(admin_user).post(text_url(1), {"text": "一段。\n\n二段。\n", "rule": "paragraph"}, format="json")

    assert response.status_code == 200
    assert [c["text"] for c in response.json()["clauses"]] == ["一段。", "二段。"]


def test_text_of_a_coded_policy_is_refused(api_as, policy, project, admin_user, coder_a, node):
    code_clause(policy, node, coder_a)
    before = snapshot(project)

    response = api_as(admin_user).post(text_url(1), {"text": "新的文本。"}, format="json")

    assert response.status_code == 400
    assert "already has 1 reference(s)" in response.json()["non_field_errors"][0]
    assert snapshot(project) == before
    assert not Event.objects.filter(action="policy.set_text").exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "text"), ({"text": ["a"]}, "text"), ({"text": "x", "rule": "chapter"}, "rule"), ({"text": None}, "text")],
)
def test_bad_text_input_is_a_field_level_400(api_as, policy, project, admin_user, payload, field):
    before = snapshot(project)

    response = api_as(admin_user).post(text_url(1), payload, format="json")

    assert response.status_code == 400 and list(response.json()) == [field]
    assert snapshot(project) == before


def test_admin_resegments_an_uncoded_policy(api_as, policy, admin_user):
    expected = segment(SAMPLE_TEXT, "paragraph").clauses

    response = api_as(admin_user).post(resegment_url(1), {"rule": "paragraph"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["segmentation_rule"] == "paragraph"
    assert [(c["number"], c["start"], c["end"]) for c in body["clauses"]] == [
        (span.number, span.start, span.end) for span in expected
    ]
    assert body["clauses"][1]["text"] == "第一章　总则"  # the heading is a paragraph of its own
    [event] = Event.objects.filter(action="policy.resegment")
    assert (event.actor, event.before, event.after["clauses"]) == (admin_user, {"rule": "article", "clauses": 4}, 5)


@pytest.mark.parametrize(("payload", "field"), [({}, "rule"), ({"rule": "chapter"}, "rule")])
def test_bad_resegment_input_is_a_field_level_400(api_as, policy, project, admin_user, payload, field):
    before = snapshot(project)

    response = api_as(admin_user).post(resegment_url(1), payload, format="json")

    assert response.status_code == 400 and list(response.json()) == [field]
    assert snapshot(project) == before


def test_resegmenting_is_refused_once_coded_or_without_text(api_as, policy, project, admin_user, coder_a, node):
    code_clause(policy, node, coder_a)
    services.create_policy(actor=admin_user, project=project, title="No text yet")
    before = snapshot(project)
    client = api_as(admin_user)

    coded = client.post(resegment_url(1), {"rule": "paragraph"}, format="json")
    empty = client.post(resegment_url(2), {"rule": "paragraph"}, format="json")

    assert coded.status_code == empty.status_code == 400
    assert "already has 1 reference(s)" in coded.json()["non_field_errors"][0]
    assert empty.json() == {"non_field_errors": ["Policy 2 has no text to segment yet."]}
    assert snapshot(project) == before
    assert not Event.objects.filter(action="policy.resegment").exists()


WRITES = [
    ("patch", detail(1), {"title": "New"}),
    ("delete", detail(1), None),
    ("post", text_url(1), {"text": "新。"}),
    ("post", resegment_url(1), {"rule": "paragraph"}),
]


@pytest.mark.parametrize(("method", "url", "payload"), WRITES)
@pytest.mark.parametrize("persona", ["supervisor", "coder_a"])
def test_only_admins_change_policies(api_as, policy, project, method, url, payload, persona, request):
    before = snapshot(project)

    response = getattr(api_as(request.getfixturevalue(persona)), method)(url, payload, format="json")

    assert response.status_code == 403
    assert snapshot(project) == before
    assert not Event.objects.filter(action__startswith="policy.").exclude(action="policy.create").exists()


@pytest.mark.parametrize(("method", "url", "payload"), WRITES)
def test_outsiders_and_anonymous_cannot_change_policies(
    api_as, anonymous, policy, project, outsider, method, url, payload
):
    before = snapshot(project)

    assert getattr(api_as(outsider), method)(url, payload, format="json").status_code == 404
    assert getattr(anonymous, method)(url, payload, format="json").status_code == 401
    assert snapshot(project) == before


@pytest.mark.parametrize(("method", "url", "payload"), WRITES)
def test_changing_a_missing_policy_is_404(api_as, policy, admin_user, method, url, payload):
    url = url.replace("/policies/1/", "/policies/9/")

    response = getattr(api_as(admin_user), method)(url, payload, format="json")

    assert response.status_code == 404
    assert response.json() == {"detail": "Policy 9 does not exist in this project."}
