"""/distribution/ and /agreement/: the same figures as the dashboard and agreement pages, and
nothing a blind coder may not see."""

import math

import pytest

from coding import agreement_data, services, stats
from coding.access import get_project_for_user
from tests.conftest import SAMPLE_TEXT

from .conftest import code

pytestmark = pytest.mark.django_db

DISTRIBUTION = "/api/projects/study/distribution/"
AGREEMENT = "/api/projects/study/agreement/"


@pytest.fixture
def study(project, policy, node, admin_user, coder_a, coder_b, supervisor):
    """Supply-based > Talent, Demand-based > Procurement; coder_a codes three clauses, coder_b
    one, the supervisor one in the consensus layer; both coders mark the policy done."""
    talent = services.add_node(actor=admin_user, project=project, name="Talent", parent=node)
    demand = services.add_node(actor=admin_user, project=project, name="Demand-based")
    procurement = services.add_node(actor=admin_user, project=project, name="Procurement", parent=demand)
    code(policy, talent, coder_a, 1)
    code(policy, talent, coder_a, 2)
    code(policy, demand, coder_a, 3)
    code(policy, talent, coder_b, 1)
    code(policy, talent, supervisor, 1, consensus=True)
    for coder in (coder_a, coder_b):
        services.mark_policy_done(actor=coder, policy=policy, coder=coder)
    return {"supply": node, "talent": talent, "demand": demand, "procurement": procurement}


def rows_by_path(body: dict, layer: str = "sum") -> dict[str, tuple]:
    return {
        row["path"]: (row["references"], row["share"], row["policies"])
        for row in body["distribution"]
        if row["layer"] == layer
    }


# --- distribution ----------------------------------------------------------------------------


def test_coder_reads_the_distribution_of_their_own_layer(api_as, study, coder_a):
    body = api_as(coder_a).get(DISTRIBUTION).json()

    assert [layer["key"] for layer in body["layers"]] == [str(coder_a.pk)]
    assert body["totals"] == [{"layer": "sum", "references": 3, "policies": 1}]
    assert rows_by_path(body) == {
        "Supply-based": (2, pytest.approx(2 / 3), 1),
        "Supply-based > Talent": (2, 1.0, 1),
        "Demand-based": (1, pytest.approx(1 / 3), 1),
        "Demand-based > Procurement": (0, 0.0, 0),
        "Demand-based > (at Demand-based itself)": (1, 1.0, 1),
    }
    assert body["crosstab"] is None


def test_share_of_nothing_is_null(api_as, study, coder_b):
    body = api_as(coder_b).get(DISTRIBUTION).json()

    rows = rows_by_path(body)
    assert rows["Demand-based"] == (0, 0.0, 0)
    assert rows["Demand-based > Procurement"] == (0, None, 0)  # 0 of Demand-based's 0 references


@pytest.mark.parametrize("persona", ["supervisor", "admin_user"])
def test_distribution_equals_the_dashboards_figures(api_as, study, persona, request):
    reviewer = request.getfixturevalue(persona)
    acc = get_project_for_user(reviewer, "study")
    nodes = stats.codebook(acc.project)
    selection = stats.resolve_layers(acc, [])
    expected = stats.distribution(stats.tally_counts(acc.project, selection, nodes=nodes), nodes)

    body = api_as(reviewer).get(DISTRIBUTION).json()

    assert [layer["key"] for layer in body["layers"]] == ["coders"]
    assert len(body["distribution"]) == len(expected)
    for got, want in zip(body["distribution"], expected.to_dict("records"), strict=True):
        assert {k: got[k] for k in ("level", "node_id", "path", "references", "policies")} == {
            k: want[k] for k in ("level", "node_id", "path", "references", "policies")
        }
        assert got["share"] == (None if math.isnan(want["share"]) else pytest.approx(want["share"]))
    assert body["totals"] == [{"layer": "sum", "references": 4, "policies": 1}]


def test_reviewer_reads_layers_side_by_side(api_as, study, supervisor, coder_a, coder_b):
    url = f"{DISTRIBUTION}?layer={coder_a.pk}&layer=consensus&mode=side"

    body = api_as(supervisor).get(url).json()

    assert body["side_by_side"] is True
    assert rows_by_path(body, str(coder_a.pk))["Supply-based > Talent"] == (2, 1.0, 1)
    assert rows_by_path(body, "consensus")["Supply-based > Talent"] == (1, 1.0, 1)
    assert body["totals"] == [
        {"layer": str(coder_a.pk), "references": 3, "policies": 1},
        {"layer": "consensus", "references": 1, "policies": 1},
    ]


def test_crosstab_by_jurisdiction(api_as, study, project, admin_user, supervisor, policy):
    services.update_policy(actor=admin_user, policy=policy, jurisdiction="Jining")

    body = api_as(supervisor).get(f"{DISTRIBUTION}?by=jurisdiction").json()

    assert body["distribution"] is None
    crosstab = body["crosstab"]
    assert (crosstab["by"], crosstab["measure"], crosstab["percent"], crosstab["values"]) == (
        "jurisdiction",
        "references",
        "count",
        ["Jining"],
    )
    rows = {row["path"]: (row["cells"], row["total"]) for row in crosstab["rows"]}
    assert rows["Supply-based > Talent"] == ({"Jining": 3.0}, 3.0)
    assert rows["Total"] == ({"Jining": 4.0}, 4.0)


def test_filters_narrow_the_policies_counted(api_as, study, supervisor):
    body = api_as(supervisor).get(f"{DISTRIBUTION}?policies=2-5").json()

    assert body["totals"] == [{"layer": "sum", "references": 0, "policies": 0}]


@pytest.mark.parametrize("layer", ["coders", "consensus", "coder_b"])
def test_blind_coder_gets_no_other_layers_figures(api_as, study, coder_a, coder_b, layer):
    key = str(coder_b.pk) if layer == "coder_b" else layer

    for query in (f"layer={key}", f"layer={coder_a.pk}&layer={key}&mode=side", f"layer={key}&by=jurisdiction"):
        response = api_as(coder_a).get(f"{DISTRIBUTION}?{query}")
        assert response.status_code == 403, query
        assert "blind" in response.json()["detail"]


def test_blind_coder_sees_only_their_layer_listed(api_as, study, coder_a):
    body = api_as(coder_a).get(DISTRIBUTION).json()

    assert [layer["key"] for layer in body["available_layers"]] == [str(coder_a.pk)]
    assert "coder_b" not in str(body) and "supervisor_p" not in str(body)


def test_distribution_needs_membership(api_as, anonymous, study, outsider):
    assert api_as(outsider).get(DISTRIBUTION).status_code == 404
    assert anonymous.get(DISTRIBUTION).status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("by=colour", "by"),
        ("by=jurisdiction&percent=half", "percent"),
        ("year_from=abc", "year_from"),
        ("year_from=2020&year_to=2010", "non_field_errors"),
        ("policies=x", "policies"),
        ("policies=99999999999", "policies"),
        ("layer=nobody", "non_field_errors"),
        ("mode=stacked", "mode"),
        ("attr=novalue", "attr"),
    ],
)
def test_bad_distribution_queries_are_field_level_400s(api_as, study, supervisor, query, field):
    response = api_as(supervisor).get(f"{DISTRIBUTION}?{query}")

    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.parametrize("item_count", [1, 3])
def test_distribution_query_count(api_as, study, project, admin_user, coder_a, django_assert_num_queries, item_count):
    for i in range(item_count - 1):
        extra = services.create_policy(actor=admin_user, project=project, title=f"P{i}", text=SAMPLE_TEXT)
        code(extra, study["talent"], coder_a, 1)
    client = api_as(coder_a)

    # token + user, membership, codebook, tally (one aggregate query)
    with django_assert_num_queries(4):
        body = client.get(DISTRIBUTION).json()

    assert body["totals"][0]["policies"] == item_count


# --- agreement -------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["supervisor", "admin_user"])
def test_reviewers_read_the_agreement_pages_figures(api_as, study, project, persona, request):
    selection = agreement_data.parse_selection(project, coders=["coder_a", "coder_b"], level="both")
    expected = agreement_data.build_report(project, selection).as_dict()

    response = api_as(request.getfixturevalue(persona)).get(f"{AGREEMENT}?coders=coder_a,coder_b&level=both")

    assert response.status_code == 200
    body = response.json()
    assert body["selection"] == expected["selection"]
    assert body["coverage"] == expected["coverage"] == {**expected["coverage"], "compared": 1}
    assert set(body["levels"]) == {"sub", "tree"}
    for level, tables in expected["levels"].items():
        for table, records in tables.items():
            assert len(body["levels"][level][table]) == len(records)
            for got, want in zip(body["levels"][level][table], records, strict=True):
                assert got == {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in want.items()}


def test_agreement_defaults_to_the_projects_coders(api_as, study, supervisor):
    body = api_as(supervisor).get(AGREEMENT).json()

    assert body["selection"]["coders"] == ["coder_a", "coder_b"]
    talent = next(r for r in body["levels"]["sub"]["nodes"] if r["node"].endswith("Talent"))
    # Clause 1 by both, clause 2 by coder_a only, over the policy's 4 clauses.
    assert (talent["clauses"], talent["applied_coder_a"], talent["applied_coder_b"], talent["disagreements"]) == (
        4,
        2,
        1,
        1,
    )
    assert talent["percent_agreement"] == pytest.approx(3 / 4)


def test_consensus_layer_can_be_compared(api_as, study, supervisor):
    body = api_as(supervisor).get(f"{AGREEMENT}?coders=coder_a&coders=consensus").json()

    assert body["selection"]["coders"] == ["coder_a", "consensus"]


def test_coders_get_no_agreement_figures(api_as, anonymous, study, coder_a, outsider):
    assert api_as(coder_a).get(f"{AGREEMENT}?coders=coder_a,coder_b").status_code == 403
    assert api_as(outsider).get(AGREEMENT).status_code == 404
    assert anonymous.get(AGREEMENT).status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("coders=coder_a", "coders"),
        ("coders=coder_a,nobody", "coders"),
        ("coders=coder_a,outsider", "coders"),
        ("coders=coder_a,coder_b&level=leaf", "level"),
        ("coders=coder_a,coder_b&unit=word", "unit"),
        ("coders=coder_a,coder_b&policies=abc", "policies"),
        ("coders=coder_a,coder_b&policies=5-2", "policies"),
        ("coders=coder_a,coder_b&policies=99999999999", "policies"),
    ],
)
def test_bad_agreement_queries_are_400s(api_as, study, supervisor, outsider, query, field):
    response = api_as(supervisor).get(f"{AGREEMENT}?{query}")

    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.parametrize("item_count", [1, 3])
def test_agreement_query_count(
    api_as, study, project, admin_user, coder_a, coder_b, supervisor, django_assert_num_queries, item_count
):
    for i in range(item_count - 1):
        extra = services.create_policy(actor=admin_user, project=project, title=f"P{i}", text=SAMPLE_TEXT)
        code(extra, study["talent"], coder_a, 1)
        for coder in (coder_a, coder_b):
            services.mark_policy_done(actor=coder, policy=extra, coder=coder)
    client = api_as(supervisor)

    with django_assert_num_queries(AGREEMENT_QUERIES):
        body = client.get(f"{AGREEMENT}?coders=coder_a,coder_b").json()

    assert body["coverage"]["compared"] == item_count


# token + user and membership, then agreement_data's fixed set (coders, codebook, policies,
# clauses, references, ...): none per policy.
AGREEMENT_QUERIES = 9
