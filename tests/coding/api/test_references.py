import pytest

from coding import services
from coding.models import Event, Reference
from tests.conftest import SAMPLE_TEXT
from tests.factories import ProjectFactory

from .conftest import clause_of, code

pytestmark = pytest.mark.django_db

LIST = "/api/projects/study/references/"


def detail(reference_id: int) -> str:
    return f"/api/projects/study/references/{reference_id}/"


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


@pytest.fixture
def other_node(project, admin_user):
    return services.add_node(actor=admin_user, project=project, name="Demand-based")


@pytest.fixture
def foreign_node(outsider):
    return services.add_node(actor=outsider, project=ProjectFactory(slug="x"), name="Foreign")


# --- list and blind coding -----------------------------------------------------------------


@pytest.mark.parametrize("persona", ["admin_user", "supervisor"])
def test_reviewers_see_every_layer(api_as, layers, persona, request):
    response = api_as(request.getfixturevalue(persona)).get(LIST)

    assert ids(response) == {r.pk for r in layers.values()}
    rows = {row["label"]: row for row in response.json()["results"]}
    assert (rows["1-1"]["coder"], rows["1-2"]["coder"], rows["1-3"]["coder"]) == ("coder_a", "coder_b", None)
    assert rows["1-3"]["consensus"] is True and rows["1-3"]["created_by"] == "supervisor_p"


def test_reference_fields(api_as, layers, node, coder_a):
    [row] = api_as(coder_a).get(LIST).json()["results"]
    clause = clause_of(layers["coder_a"].policy, 1)

    assert row == {
        "id": layers["coder_a"].pk,
        "policy": 1,
        "clause": 1,
        "label": "1-1",
        "node": node.pk,
        "node_name": "Supply-based",
        "coder": "coder_a",
        "consensus": False,
        "start": clause.start,
        "end": clause.end,
        "text": SAMPLE_TEXT[clause.start : clause.end],
        "memo": "",
        "version": 1,
        "created_by": "coder_a",
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


BLIND_PROBES = [
    "",
    "policy=1",
    "clause=1-1",
    "clause=1-2",
    "clause=1-3",
    "node={node}",
    "coder=coder_a",
    "coder=coder_b",
    "coder=supervisor_p",
    "layer=coder",
    "layer=consensus",
    "layer=consensus&coder=coder_b",
    "policy=1&clause=1-2&node={node}&coder=coder_b&layer=coder",
    "page_size=1000",
]


@pytest.mark.parametrize("query", BLIND_PROBES)
def test_blind_coder_never_receives_another_layer_through_any_filter(api_as, layers, node, coder_a, query):
    response = api_as(coder_a).get(f"{LIST}?{query.format(node=node.pk)}")

    body = response.json()
    assert ids(response) <= {layers["coder_a"].pk}
    assert body["count"] == len(body["results"])  # the count does not betray hidden rows either
    assert all(row["coder"] == "coder_a" for row in body["results"])


def test_blind_coder_cannot_reach_another_layer_by_id(api_as, layers, coder_a):
    client = api_as(coder_a)

    for other in (layers["coder_b"], layers["consensus"]):
        assert client.get(detail(other.pk)).status_code == 404
        assert client.patch(detail(other.pk), {"version": 1, "memo": "x"}, format="json").status_code == 404
        assert client.delete(f"{detail(other.pk)}?version=1").status_code == 404
    assert Reference.objects.filter(memo="x").count() == 0 and Reference.objects.count() == 3


def test_blind_coder_cannot_learn_of_others_through_policy_endpoints(api_as, layers, policy, coder_a, coder_b):
    services.mark_policy_done(actor=coder_b, policy=policy, coder=coder_b)
    client = api_as(coder_a)

    assert client.get("/api/projects/study/policies/").json()["results"][0]["done"] is False
    body = client.get("/api/projects/study/policies/1/").content.decode()
    assert "coder_b" not in body and "supervisor_p" not in body


def test_without_blind_coding_coders_see_all_but_change_only_their_own(api_as, project, layers, coder_a):
    services.update_project(actor=None, project=project, blind_coding=False)
    client = api_as(coder_a)

    assert ids(client.get(LIST)) == {r.pk for r in layers.values()}
    assert client.get(detail(layers["coder_b"].pk)).status_code == 200
    assert client.patch(detail(layers["coder_b"].pk), {"version": 1, "memo": "x"}, format="json").status_code == 403
    assert client.delete(f"{detail(layers['coder_b'].pk)}?version=1").status_code == 403
    assert Reference.objects.count() == 3 and not Reference.objects.filter(memo="x").exists()


def test_outsider_gets_404_and_anonymous_401(api_as, anonymous, layers, outsider):
    ref = layers["coder_a"]
    assert api_as(outsider).get(LIST).status_code == 404
    assert api_as(outsider).get(detail(ref.pk)).status_code == 404
    assert api_as(outsider).delete(f"{detail(ref.pk)}?version=1").status_code == 404
    assert anonymous.get(LIST).status_code == 401
    assert anonymous.get(detail(ref.pk)).status_code == 401
    assert anonymous.patch(detail(ref.pk), {"version": 1}, format="json").status_code == 401
    assert Reference.objects.count() == 3


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("policy=1", {"coder_a", "coder_b", "consensus"}),
        ("policy=2", set()),
        ("clause=1-2", {"coder_b"}),
        ("clause=2-2", set()),
        ("node={node}", {"coder_a", "coder_b", "consensus"}),
        ("node={other_node}", set()),
        ("coder=coder_b", {"coder_b"}),
        ("layer=coder", {"coder_a", "coder_b"}),
        ("layer=consensus", {"consensus"}),
    ],
)
def test_reference_filters_for_a_reviewer(api_as, layers, node, other_node, supervisor, query, expected):
    url = f"{LIST}?{query.format(node=node.pk, other_node=other_node.pk)}"

    assert ids(api_as(supervisor).get(url)) == {layers[name].pk for name in expected}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("clause=1", "clause"),
        ("clause=a-b", "clause"),
        ("node=abc", "node"),
        ("layer=all", "layer"),
        ("policy=0", "policy"),
    ],
)
def test_bad_reference_filters_are_field_level_400s(api_as, layers, supervisor, query, field):
    response = api_as(supervisor).get(f"{LIST}?{query}")

    assert response.status_code == 400 and list(response.json()) == [field]


@pytest.mark.parametrize("item_count", [1, 3])
def test_reference_list_query_count(api_as, policy, node, coder_a, django_assert_num_queries, item_count):
    for number in range(1, item_count + 1):
        code(policy, node, coder_a, number)
    client = api_as(coder_a)

    with django_assert_num_queries(4):  # token + user, membership, count, page with every label
        response = client.get(LIST)

    assert len(response.json()["results"]) == item_count


# --- create --------------------------------------------------------------------------------


def test_code_a_whole_clause(api_as, policy, node, coder_a):
    response = api_as(coder_a).post(LIST, {"policy": 1, "clause": 2, "node": node.pk, "memo": "scope"}, format="json")

    assert response.status_code == 201
    [row] = response.json()
    clause = clause_of(policy, 2)
    assert (row["label"], row["start"], row["end"], row["coder"], row["memo"]) == (
        "1-2",
        clause.start,
        clause.end,
        "coder_a",
        "scope",
    )
    event = Event.objects.get(action="reference.create")
    assert (event.actor.username, event.target_id, event.target_label) == ("coder_a", row["id"], "1-2")


def test_offsets_are_code_points_past_an_astral_character(api_as, policy, node, coder_a):
    start = SAMPLE_TEXT.index("支持")

    [row] = (
        api_as(coder_a)
        .post(LIST, {"policy": 1, "clause": 3, "start": start, "end": start + 2, "node": node.pk}, format="json")
        .json()
    )

    assert row["text"] == "支持"  # UTF-16 offsets would be one short: "𠀀支"'s second half and "支"
    assert Reference.objects.get(pk=row["id"]).text == "支持"


def test_a_selection_across_clauses_becomes_one_reference_per_clause(api_as, policy, node, coder_a):
    one, two = clause_of(policy, 1), clause_of(policy, 2)

    response = api_as(coder_a).post(
        LIST, {"policy": 1, "start": one.end - 3, "end": two.start + 3, "node": node.pk}, format="json"
    )

    assert response.status_code == 201
    assert [(r["label"], r["text"]) for r in response.json()] == [
        ("1-1", SAMPLE_TEXT[one.end - 3 : one.end]),
        ("1-2", SAMPLE_TEXT[two.start : two.start + 3]),
    ]
    assert Event.objects.filter(action="reference.create").count() == 2


def test_coding_the_same_span_again_returns_the_existing_reference(api_as, policy, node, coder_a):
    client = api_as(coder_a)
    payload = {"policy": 1, "clause": 1, "node": node.pk}

    first = client.post(LIST, payload, format="json").json()
    second = client.post(LIST, payload, format="json").json()

    assert first == second and Reference.objects.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"clause": 2, "start": 0, "end": 5}, "end"),  # outside clause 1-2
        ({"clause": 2, "start": "c2+4", "end": "c2+2"}, "start"),  # start after end
        ({"clause": 2, "start": "c2+2", "end": "c2+2"}, "start"),  # empty
        ({"start": 3}, "end"),
        ({"end": 3}, "start"),
        ({}, "clause"),
        ({"clause": 9}, "clause"),
        ({"clause": -1}, "clause"),
        ({"start": 0, "end": 10_000}, "end"),  # past the end of the text
        ({"clause": 1, "node": 999999}, "node"),
        ({"clause": 1, "node": "foreign"}, "node"),
        ({"clause": 1, "node": None}, "node"),
        ({"clause": 1, "policy": 2}, "policy"),
        ({"clause": 1, "policy": "one"}, "policy"),
        ({"clause": 1, "start": 2**40, "end": 3}, "start"),
        # The heading line "第一章　总则" belongs to no clause.
        ({"start": "heading", "end": "heading+4"}, "non_field_errors"),
    ],
)
def test_bad_reference_input_is_a_field_level_400(api_as, policy, node, foreign_node, coder_a, payload, field):
    c2, heading = clause_of(policy, 2).start, SAMPLE_TEXT.index("第一章")
    resolve = {"c2+2": c2 + 2, "c2+4": c2 + 4, "heading": heading, "heading+4": heading + 4, "foreign": foreign_node.pk}
    data = {"policy": 1, "node": node.pk} | payload
    data = {k: resolve.get(v, v) if isinstance(v, str) else v for k, v in data.items()}

    response = api_as(coder_a).post(LIST, data, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()) == [field]
    assert not Reference.objects.exists()


def test_unknown_and_foreign_nodes_get_the_same_message(api_as, policy, foreign_node, coder_a):
    client = api_as(coder_a)

    unknown = client.post(LIST, {"policy": 1, "clause": 1, "node": 999999}, format="json").json()
    foreign = client.post(LIST, {"policy": 1, "clause": 1, "node": foreign_node.pk}, format="json").json()

    assert unknown == {"node": ["Node 999999 is not in this project's codebook."]}
    assert foreign == {"node": [f"Node {foreign_node.pk} is not in this project's codebook."]}


def test_offsets_outside_the_clause_name_the_clause(api_as, policy, node, coder_a):
    response = api_as(coder_a).post(
        LIST, {"policy": 1, "clause": 2, "start": 0, "end": 5, "node": node.pk}, format="json"
    )

    clause = clause_of(policy, 2)
    assert response.json() == {"end": [f"Offsets [0, 5) lie outside clause 1-2 [{clause.start}, {clause.end})."]}


def test_coders_cannot_code_the_consensus_layer(api_as, policy, node, coder_a):
    response = api_as(coder_a).post(LIST, {"policy": 1, "clause": 1, "node": node.pk, "consensus": True}, format="json")

    assert response.status_code == 403
    assert not Reference.objects.exists()


def test_supervisor_codes_the_consensus_layer(api_as, policy, node, supervisor):
    response = api_as(supervisor).post(
        LIST, {"policy": 1, "clause": 1, "node": node.pk, "consensus": True}, format="json"
    )

    [row] = response.json()
    assert response.status_code == 201 and (row["coder"], row["consensus"], row["created_by"]) == (
        None,
        True,
        "supervisor_p",
    )


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a"])
def test_every_member_codes_in_their_own_layer(api_as, policy, node, persona, request):
    user = request.getfixturevalue(persona)

    response = api_as(user).post(LIST, {"policy": 1, "clause": 1, "node": node.pk}, format="json")

    assert response.status_code == 201
    assert Reference.objects.get().coder == user


def test_outsider_and_anonymous_cannot_code(api_as, anonymous, policy, node, outsider):
    payload = {"policy": 1, "clause": 1, "node": node.pk}

    assert api_as(outsider).post(LIST, payload, format="json").status_code == 404
    assert anonymous.post(LIST, payload, format="json").status_code == 401
    assert not Reference.objects.exists()


# --- change and delete ---------------------------------------------------------------------


def test_change_own_reference_with_its_version(api_as, layers, other_node, coder_a):
    ref = layers["coder_a"]

    response = api_as(coder_a).patch(
        detail(ref.pk), {"version": 1, "node": other_node.pk, "memo": "demand, not supply"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["node"], body["node_name"], body["memo"], body["version"]) == (
        other_node.pk,
        "Demand-based",
        "demand, not supply",
        2,
    )
    event = Event.objects.get(action="reference.update")
    assert (event.before["node_id"], event.after["node_id"]) == (ref.node_id, other_node.pk)


def test_stale_version_is_409_with_the_current_state(api_as, layers, coder_a):
    ref = layers["coder_a"]
    client = api_as(coder_a)
    client.patch(detail(ref.pk), {"version": 1, "memo": "first"}, format="json")

    response = client.patch(detail(ref.pk), {"version": 1, "memo": "second"}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert "changed elsewhere" in body["detail"]
    assert (body["current"]["id"], body["current"]["version"], body["current"]["memo"]) == (ref.pk, 2, "first")
    assert Reference.objects.get(pk=ref.pk).memo == "first"


def test_stale_delete_is_409_and_keeps_the_reference(api_as, layers, coder_a):
    ref = layers["coder_a"]
    client = api_as(coder_a)
    client.patch(detail(ref.pk), {"version": 1, "memo": "changed"}, format="json")

    response = client.delete(f"{detail(ref.pk)}?version=1")

    assert response.status_code == 409 and response.json()["current"]["version"] == 2
    assert Reference.objects.filter(pk=ref.pk).exists()


def test_delete_own_reference_with_its_version(api_as, layers, coder_a):
    ref = layers["coder_a"]

    response = api_as(coder_a).delete(f"{detail(ref.pk)}?version=1")

    event = Event.objects.get(action="reference.delete")
    assert response.status_code == 200
    assert response.json() == {"deletion": event.pk}  # what references/restore/ takes to undo it
    assert not Reference.objects.filter(pk=ref.pk).exists()
    assert (event.target_id, event.before["coder_id"], event.actor) == (ref.pk, coder_a.pk, coder_a)


@pytest.mark.parametrize("query", ["", "?version=", "?version=abc", "?version=0"])
def test_delete_needs_a_version(api_as, layers, coder_a, query):
    response = api_as(coder_a).delete(f"{detail(layers['coder_a'].pk)}{query}")

    assert response.status_code == 400 and list(response.json()) == ["version"]
    assert Reference.objects.count() == 3


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"memo": "x"}, "version"),
        ({"version": 1, "node": "foreign"}, "node"),
        ({"version": "one", "memo": "x"}, "version"),
        ({"version": 1}, "non_field_errors"),  # nothing to change
    ],
)
def test_bad_change_is_a_field_level_400(api_as, layers, foreign_node, coder_a, payload, field):
    payload = {k: foreign_node.pk if v == "foreign" else v for k, v in payload.items()}

    response = api_as(coder_a).patch(detail(layers["coder_a"].pk), payload, format="json")

    assert response.status_code == 400 and list(response.json()) == [field]
    assert Reference.objects.get(pk=layers["coder_a"].pk).version == 1


def test_moving_onto_a_span_already_coded_at_that_node_is_400(api_as, policy, node, other_node, coder_a):
    code(policy, node, coder_a, 1)
    twin = code(policy, other_node, coder_a, 1)

    response = api_as(coder_a).patch(detail(twin.pk), {"version": 1, "node": node.pk}, format="json")

    assert response.status_code == 400 and list(response.json()) == ["node"]
    assert Reference.objects.get(pk=twin.pk).node_id == other_node.pk


@pytest.mark.parametrize("persona", ["admin_user", "supervisor"])
def test_reviewers_change_the_consensus_but_not_a_coders_layer(api_as, layers, persona, request):
    client = api_as(request.getfixturevalue(persona))

    assert (
        client.patch(detail(layers["consensus"].pk), {"version": 1, "memo": "agreed"}, format="json").status_code == 200
    )
    assert client.patch(detail(layers["coder_a"].pk), {"version": 1, "memo": "x"}, format="json").status_code == 403
    assert client.delete(f"{detail(layers['coder_a'].pk)}?version=1").status_code == 403
    assert Reference.objects.get(pk=layers["coder_a"].pk).memo == ""
    assert client.delete(f"{detail(layers['consensus'].pk)}?version=2").status_code == 200
