"""The agreement drill-down, adjudication and copying the agreed coding through the API
(supervisors and admins): the same disagreements as the page's drill-down, decisions written
to the consensus layer through the services, and the audit trail they leave."""

import pytest
from django.urls import reverse

from coding import services
from coding.models import Adjudication, Event, Reference
from tests.coding.test_agreement_data import code, done, make_policy
from tests.conftest import SAMPLE_TEXT
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

DISAGREEMENTS = "/api/projects/study/agreement/disagreements/"
ADJUDICATIONS = "/api/projects/study/agreement/adjudications/"
ADOPT = "/api/projects/study/agreement/adopt/"
SELECTION = "coders=coder_a,coder_b&level=sub&unit=clause"


@pytest.fixture
def codebook(project, admin_user):
    r1 = services.add_node(actor=admin_user, project=project, name="R1")
    return {
        "R1": r1,
        "A": services.add_node(actor=admin_user, project=project, name="A", parent=r1),
        "B": services.add_node(actor=admin_user, project=project, name="B", parent=r1),
    }


@pytest.fixture
def coded(project, admin_user, coder_a, coder_b, policy, codebook):
    """Policy 1 (SAMPLE_TEXT, clauses 1-0 .. 1-3): both coders apply A to 1-2; only coder_a A
    to 1-1; on 1-3 coder_a codes A on [0, 5) of the clause, coder_b B on [5, 10)."""
    code(coder_a, policy, 1, codebook["A"])
    code(coder_a, policy, 2, codebook["A"])
    code(coder_b, policy, 2, codebook["A"])
    code(coder_a, policy, 3, codebook["A"], 0, 5)
    code(coder_b, policy, 3, codebook["B"], 5, 10)
    done(policy, coder_a, coder_b)
    return policy


def state() -> tuple:
    """The consensus layer, the decisions and the audit trail: what a refused request must not change."""
    return (
        sorted(Reference.objects.filter(consensus=True).values_list("clause", "node", "start", "end")),
        sorted(Adjudication.objects.values_list("clause", "node", "scope", "decision")),
        Event.objects.count(),
    )


def units(body: dict) -> list[tuple]:
    return [(u["label"], u["node"]["path"], [(layer["key"], layer["applied"]) for layer in u["layers"]]) for u in body]


# --- drill-down ----------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["supervisor", "admin_user"])
def test_reviewers_list_the_disagreements(api_as, coded, codebook, persona, request):
    response = api_as(request.getfixturevalue(persona)).get(f"{DISAGREEMENTS}?{SELECTION}")

    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["resolved"], body["next"]) == (3, 0, None)
    assert units(body["results"]) == [
        ("1-1", "R1 › A", [("coder_a", True), ("coder_b", False)]),
        ("1-3", "R1 › A", [("coder_a", True), ("coder_b", False)]),
        ("1-3", "R1 › B", [("coder_a", False), ("coder_b", True)]),
    ]
    first = body["results"][0]
    clause = coded.clauses.get(number=1)
    assert (first["start"], first["end"], first["text"]) == (clause.start, clause.end, SAMPLE_TEXT[19:40])
    assert first["decision"] is None and first["consensus"]["key"] == "consensus"
    assert [n["path"] for n in first["code_nodes"]] == ["R1 › A"]


def test_a_layers_segments_show_where_it_coded(api_as, coded, codebook, supervisor):
    body = api_as(supervisor).get(f"{DISAGREEMENTS}?{SELECTION}&node={codebook['B'].pk}").json()

    [unit] = body["results"]
    coder_a, coder_b = unit["layers"]
    start = coded.clauses.get(number=3).start
    assert [(s["start"], s["end"], s["text"], s["nodes"], s["focus"]) for s in coder_b["segments"]] == [
        (start, start + 5, "第三条　市", [], False),
        (start + 5, start + 10, "人民政府应", ["R1 › B"], True),
        (start + 10, start + 26, SAMPLE_TEXT[start + 10 : start + 26], [], False),
    ]
    assert (coder_a["nodes"], coder_b["nodes"]) == (["R1 › A"], ["R1 › B"])


def test_drilldown_shows_what_the_page_shows(api_as, client, coded, codebook, supervisor):
    client.force_login(supervisor)
    for extra in ("", "&policy=1", "&pair=coder_a,coder_b", f"&node={codebook['A'].pk}", "&unit=character"):
        page = client.get(reverse("coding:agreement_disagreements", args=["study"]) + f"?{SELECTION}&at=sub{extra}")
        expected = [
            (u.label, u.node.path, [(layer.key, layer.applied) for layer in u.layers])
            for u in page.context_data["units"]
        ]

        body = api_as(supervisor).get(f"{DISAGREEMENTS}?{SELECTION}{extra}").json()

        assert units(body["results"]) == expected, extra
        assert (body["count"], body["resolved"]) == (page.context_data["total"], page.context_data["resolved"])


def test_tree_level_rolls_sub_nodes_up(api_as, coded, codebook, supervisor):
    body = api_as(supervisor).get(f"{DISAGREEMENTS}?{SELECTION.replace('level=sub', 'level=tree')}").json()

    # At tree level both coders applied R1 to 1-2 and 1-3; only 1-1 differs.
    assert units(body["results"]) == [("1-1", "R1", [("coder_a", True), ("coder_b", False)])]
    assert [n["path"] for n in body["results"][0]["code_nodes"]] == ["R1", "R1 › A", "R1 › B"]


def test_disagreements_are_paged_and_count_the_resolved(api_as, coded, codebook, supervisor):
    client = api_as(supervisor)
    decided = client.post(
        ADJUDICATIONS, adjudication(codebook, clause=3, node=codebook["B"].pk, decision="neither"), format="json"
    )
    assert decided.status_code == 200

    first = client.get(f"{DISAGREEMENTS}?{SELECTION}&page_size=2").json()
    second = client.get(first["next"]).json()

    assert (first["count"], first["resolved"], len(first["results"])) == (3, 1, 2)
    assert [u["label"] for u in second["results"]] == ["1-3"]
    assert second["results"][0]["decision"]["decision"] == "neither"
    assert second["results"][0]["decision"]["decided_by"] == "supervisor_p"
    assert client.get(f"{DISAGREEMENTS}?{SELECTION}&page=9").status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("&node=999999", "node"),
        ("&node=x", "node"),
        ("&policy=42", "policy"),
        ("&pair=coder_a,ghost", "pair"),
        ("&pair=coder_a", "pair"),
        ("&level=both", "level"),
        ("&unit=word", "unit"),
        ("&policies=3-1", "policies"),
    ],
)
def test_bad_drilldown_queries_are_field_level_400s(api_as, coded, supervisor, query, field):
    response = api_as(supervisor).get(f"{DISAGREEMENTS}?coders=coder_a,coder_b{query}")

    assert response.status_code == 400 and list(response.json()) == [field]


@pytest.mark.parametrize("pair", ["coder_a,,coder_b", "coder_a,coder_a", "coder_a,coder_b,"])
def test_drilldown_pair_is_refused_like_the_page(api_as, client, coded, supervisor, pair):
    client.force_login(supervisor)
    page = client.get(reverse("coding:agreement_disagreements", args=["study"]) + f"?{SELECTION}&pair={pair}")

    response = api_as(supervisor).get(f"{DISAGREEMENTS}?{SELECTION}&pair={pair}")

    assert page.status_code == 404
    assert response.status_code == 400
    assert response.json() == {"pair": ["The pair must name two of the compared coders."]}


@pytest.mark.parametrize("coders", ["coder_a", "coder_a,ghost", "coder_a,outsider"])
def test_drilldown_compares_members_only(api_as, coded, supervisor, outsider, coders):
    response = api_as(supervisor).get(f"{DISAGREEMENTS}?coders={coders}")

    assert response.status_code == 400 and list(response.json()) == ["coders"]


@pytest.mark.parametrize("item_count", [1, 3])
def test_drilldown_query_count(
    api_as, project, admin_user, codebook, coder_a, coder_b, supervisor, django_assert_num_queries, item_count
):
    for lines in range(3, 3 + item_count):
        policy = make_policy(project, admin_user, lines)
        code(coder_a, policy, 1, codebook["A"])
        code(coder_b, policy, 2, codebook["B"])
        done(policy, coder_a, coder_b)
    client = api_as(supervisor)

    # token + user, membership, the selection's coders, agreement_data's dataset and the
    # three queries of describe_units: none per policy or disagreement.
    with django_assert_num_queries(DRILLDOWN_QUERIES):
        body = client.get(f"{DISAGREEMENTS}?{SELECTION}").json()

    assert body["count"] == 2 * item_count


DRILLDOWN_QUERIES = 12


# --- adjudication ----------------------------------------------------------------------------


def adjudication(codebook, **extra) -> dict:
    return (
        {"coders": ["coder_a", "coder_b"], "level": "sub", "policy": 1, "clause": 1, "node": codebook["A"].pk}
        | {
            "decision": "accept",
            "accepted": "coder_a",
        }
        | extra
    )


@pytest.mark.parametrize("persona", ["supervisor", "admin_user"])
def test_accepting_a_coder_writes_the_consensus(api_as, coded, codebook, persona, request):
    reviewer = request.getfixturevalue(persona)
    last = Event.objects.latest("pk").pk

    response = api_as(reviewer).post(ADJUDICATIONS, adjudication(codebook), format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["label"], body["node"]["path"]) == ("1-1", "R1 › A")
    assert (body["decision"]["decision"], body["decision"]["accepted"]) == ("accept", "coder_a")
    assert body["decision"]["decided_by"] == reviewer.username
    assert body["consensus"]["applied"] is True
    clause = coded.clauses.get(number=1)
    assert list(Reference.objects.filter(consensus=True).values_list("clause", "node", "start", "end")) == [
        (clause.pk, codebook["A"].pk, clause.start, clause.end)
    ]
    assert sorted(Event.objects.filter(pk__gt=last).values_list("actor", "action")) == [
        (reviewer.pk, "adjudication.create"),
        (reviewer.pk, "reference.create"),
    ]


def test_deciding_neither_then_both(api_as, coded, codebook, supervisor):
    client = api_as(supervisor)
    payload = adjudication(codebook, clause=3, decision="neither")
    del payload["accepted"]

    neither = client.post(ADJUDICATIONS, payload, format="json")

    assert neither.status_code == 200 and neither.json()["decision"]["decision"] == "neither"
    assert not Reference.objects.filter(consensus=True).exists()

    both = client.post(
        ADJUDICATIONS, payload | {"decision": "both", "level": "tree", "node": codebook["R1"].pk}, format="json"
    )

    assert both.status_code == 200 and both.json()["level"] == "tree"
    start = coded.clauses.get(number=3).start
    assert sorted(Reference.objects.filter(consensus=True).values_list("node", "start", "end")) == sorted(
        [(codebook["A"].pk, start, start + 5), (codebook["B"].pk, start + 5, start + 10)]
    )
    assert sorted(Adjudication.objects.values_list("scope", "decision")) == [("node", "neither"), ("subtree", "both")]


def test_coding_anew_takes_code_point_offsets(api_as, coded, codebook, supervisor):
    at = coded.text.index("𠀀")
    payload = adjudication(
        codebook, clause=3, decision="anew", code_node=codebook["A"].pk, start=at, end=at + 3, memo="read again"
    )

    response = api_as(supervisor).post(ADJUDICATIONS, payload, format="json")

    assert response.status_code == 200 and response.json()["decision"]["decision"] == "anew"
    reference = Reference.objects.get(consensus=True)
    assert (reference.text, reference.memo, reference.created_by) == ("𠀀支持", "read again", supervisor)
    assert sorted(Event.objects.filter(actor=supervisor).values_list("action", "after__decision")) == [
        ("adjudication.create", "anew"),
        ("reference.create", None),
    ]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"accepted": None}, "accepted"),
        ({"accepted": "ghost"}, "accepted"),
        ({"accepted": "supervisor_p"}, "accepted"),  # a member, but not compared
        ({"decision": "anew"}, ["code_node", "end", "start"]),
        ({"decision": "anew", "code_node": "B", "start": 19, "end": 25}, "code_node"),  # B is not A at sub level
        ({"decision": "anew", "code_node": "A", "start": 10, "end": 25}, "end"),  # outside the clause
        ({"decision": "anew", "code_node": "A", "start": 25, "end": 19}, "start"),
        ({"policy": 42}, "policy"),
        ({"clause": 99}, "clause"),
        ({"node": "foreign"}, "node"),
        ({"node": None}, "node"),
        ({"coders": ["coder_a"]}, "coders"),
        ({"coders": "coder_a,outsider"}, "coders"),
        ({"level": "leaf"}, "level"),
    ],
)
def test_bad_adjudications_are_field_level_400s_and_change_nothing(
    api_as, coded, codebook, supervisor, outsider, extra, field
):
    nodes = codebook | {"foreign": services.add_node(actor=None, project=ProjectFactory(slug="x"), name="F")}
    extra = {k: nodes[v].pk if k in ("code_node", "node") and v in nodes else v for k, v in extra.items()}
    payload = {k: v for k, v in (adjudication(codebook) | extra).items() if v is not None}
    before = state()

    response = api_as(supervisor).post(ADJUDICATIONS, payload, format="json")

    assert response.status_code == 400
    assert sorted(response.json()) == (field if isinstance(field, list) else [field])
    assert state() == before


# --- copying the agreed coding ---------------------------------------------------------------


def test_reviewer_copies_the_agreed_coding_once(api_as, coded, codebook, supervisor):
    client = api_as(supervisor)

    first = client.post(ADOPT, {"coders": ["coder_a", "coder_b"]}, format="json")
    again = client.post(ADOPT, {"coders": ["coder_a", "coder_b"]}, format="json")

    assert first.status_code == again.status_code == 200
    assert first.json() == {"agreed": 1, "added": 1}  # both applied A to 1-2
    assert again.json() == {"agreed": 1, "added": 0}
    clause = coded.clauses.get(number=2)
    assert list(Reference.objects.filter(consensus=True).values_list("clause", "node")) == [
        (clause.pk, codebook["A"].pk)
    ]
    assert list(Event.objects.filter(actor=supervisor).values_list("action", flat=True)) == ["reference.create"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"coders": ["coder_a", "consensus"]}, "coders"),
        ({"coders": ["coder_a"]}, "coders"),
        ({"level": "both"}, "level"),
        ({"policies": "x"}, "policies"),
    ],
)
def test_bad_adopt_input_is_a_field_level_400(api_as, coded, supervisor, payload, field):
    before = state()

    response = api_as(supervisor).post(ADOPT, payload, format="json")

    assert response.status_code == 400 and list(response.json()) == [field]
    assert state() == before


# --- who may ----------------------------------------------------------------------------------


def requests(codebook) -> list[tuple]:
    return [
        ("get", f"{DISAGREEMENTS}?{SELECTION}", None),
        ("post", ADJUDICATIONS, adjudication(codebook)),
        ("post", ADOPT, {"coders": ["coder_a", "coder_b"]}),
    ]


def test_coders_may_not_adjudicate_or_see_the_drilldown(api_as, coded, codebook, coder_a):
    before = state()

    for method, path, payload in requests(codebook):
        response = getattr(api_as(coder_a), method)(path, payload, format="json")
        assert response.status_code == 403, path
        assert "coder_b" not in response.content.decode()
    assert state() == before


def test_outsiders_and_anonymous_cannot_adjudicate(api_as, anonymous, coded, codebook, outsider):
    before = state()

    for method, path, payload in requests(codebook):
        assert getattr(api_as(outsider), method)(path, payload, format="json").status_code == 404, path
        assert getattr(anonymous, method)(path, payload, format="json").status_code == 401, path
    assert state() == before
