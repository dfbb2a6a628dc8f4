"""The agreement page, its drill-down, adjudication and downloads: who may reach them, what
they show, and a number of queries that does not grow with the number of policies."""

import csv
import io
import re

import openpyxl
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from coding import services
from coding.models import Adjudication, Event, Reference
from tests.coding.test_agreement_data import code, done, make_policy

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
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
    """Policy 1 (SAMPLE_TEXT, clauses 1-0 .. 1-3) coded by both coders, who differ on 1-1 and 1-3."""
    code(coder_a, policy, 1, codebook["A"])
    code(coder_a, policy, 2, codebook["A"])
    code(coder_b, policy, 2, codebook["A"])
    code(coder_a, policy, 3, codebook["A"], 0, 5)
    code(coder_b, policy, 3, codebook["B"], 5, 10)
    done(policy, coder_a, coder_b)
    return policy


def urls() -> dict[str, str]:
    return {
        "page": reverse("coding:agreement", args=["study"]) + "?" + SELECTION,
        "drilldown": reverse("coding:agreement_disagreements", args=["study"]) + "?" + SELECTION + "&at=sub",
        "export": reverse("coding:agreement_export", args=["study", "nodes", "csv"]) + "?" + SELECTION,
        "export-xlsx": reverse("coding:agreement_export", args=["study", "policies", "xlsx"]) + "?" + SELECTION,
        "export-disagreements": reverse("coding:agreement_export", args=["study", "disagreements", "csv"])
        + "?"
        + SELECTION
        + "&at=sub",
    }


def adjudicate_data(codebook, **extra) -> dict[str, str]:
    return {
        "coders": "coder_a,coder_b",
        "level": "sub",
        "unit": "clause",
        "at": "sub",
        "policy": "1",
        "clause": "1",
        "node": str(codebook["A"].pk),
        "decision": "accept:coder_a",
    } | extra


# --- who may reach it ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(urls()))
@pytest.mark.parametrize("htmx", [False, True])
def test_coders_get_403_and_outsiders_404_everywhere(client, coded, coder_a, outsider, name, htmx):
    headers = HTMX if htmx else {}
    client.force_login(coder_a)
    assert client.get(urls()[name], **headers).status_code == 403
    client.force_login(outsider)
    assert client.get(urls()[name], **headers).status_code == 404


def test_anonymous_is_sent_to_login(client, coded, codebook):
    for url in urls().values():
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    for name in ("coding:agreement_adjudicate", "coding:agreement_adopt"):
        response = client.post(reverse(name, args=["study"]), adjudicate_data(codebook))
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not Reference.objects.filter(consensus=True).exists()


@pytest.mark.parametrize("persona", ["coder_a", "outsider"])
def test_only_reviewers_may_adjudicate(client, coded, codebook, persona, request):
    client.force_login(request.getfixturevalue(persona))

    response = client.post(reverse("coding:agreement_adjudicate", args=["study"]), adjudicate_data(codebook), **HTMX)

    assert response.status_code == {"coder_a": 403, "outsider": 404}[persona]
    assert not Reference.objects.filter(consensus=True).exists()
    assert not Adjudication.objects.exists()


@pytest.mark.parametrize("persona", ["supervisor", "admin_user"])
def test_supervisors_and_admins_reach_everything(client, coded, persona, request):
    client.force_login(request.getfixturevalue(persona))
    for name, url in urls().items():
        assert client.get(url).status_code == 200, name


def test_the_agreement_link_is_shown_to_reviewers_only(client, coded, supervisor, coder_a):
    link = f'href="{reverse("coding:agreement", args=["study"])}"'
    client.force_login(supervisor)
    assert link in client.get(reverse("coding:project_home", args=["study"])).content.decode()
    client.force_login(coder_a)
    assert link not in client.get(reverse("coding:project_home", args=["study"])).content.decode()


# --- what the page shows ---------------------------------------------------------------------------


def _cells(html: str, node: str) -> list[str]:
    row = re.search(r"<tr class=\"depth-\d\">\s*<td><a [^>]*>" + re.escape(node) + r"</a></td>(.*?)</tr>", html, re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def test_page_shows_figures_per_node_with_reasons_in_words(client, coded, supervisor):
    client.force_login(supervisor)

    html = client.get(urls()["page"]).content.decode()

    # 4 clauses; A: coder_a on 1-1, 1-2, 1-3, coder_b on 1-2 -> 2 disagreements.
    assert _cells(html, "R1 › A") == ["4", "3", "1", "2 (0 resolved)", "50.0 %", "0.200", "0.125"]
    assert _cells(html, "R1 › B")[:5] == ["4", "0", "1", "1 (0 resolved)", "75.0 %"]
    assert "Compared <strong>1</strong> policy (4 clauses)" in html
    assert '<th class="num">Cohen\'s κ</th>' in html


def test_page_says_which_policies_were_left_out_and_why(client, coded, project, admin_user, supervisor, coder_a):
    other = make_policy(project, admin_user, 2)
    done(other, coder_a)
    client.force_login(supervisor)

    html = client.get(urls()["page"]).content.decode()

    assert (
        "1 left out: 1 of the 2 with text are not marked done by every chosen coder "
        "(marked done: coder_a 2, coder_b 1 of 2)."
    ) in html


def test_not_computable_says_why(client, coded, project, admin_user, codebook, supervisor):
    services.add_node(actor=admin_user, project=project, name="C", parent=codebook["R1"])
    client.force_login(supervisor)

    html = client.get(urls()["page"]).content.decode()
    nothing = client.get(urls()["page"] + "&policies=99").content.decode()

    reason = "not computable: no variation: no coder applied this node to any of the 4 clauses"
    assert _cells(html, "R1 › C") == ["4", "0", "0", "0", "100.0 %", reason, reason]
    assert "not computable: no clauses to compare: no policy is marked done by every chosen coder" in nothing


def test_a_project_without_coding_says_why_nothing_is_computable(client, project, supervisor, coder_a, coder_b):
    client.force_login(supervisor)

    response = client.get(
        reverse("coding:agreement", args=["study"]), {"coders": "coder_a,coder_b", "unit": "character"}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "Compared <strong>0</strong> policies (0 clauses)" in html
    assert "not computable: no clauses to compare: no policy is marked done by every chosen coder" in html
    assert "No policy is marked done by every chosen coder yet." in html


def test_bad_selection_is_reported_on_the_page(client, coded, supervisor):
    client.force_login(supervisor)

    response = client.get(reverse("coding:agreement", args=["study"]) + "?coders=coder_a,ghost")

    assert response.status_code == 200
    assert "No member of this project is called &#x27;ghost&#x27;." in response.content.decode()
    assert response.context["report"] is None


def test_default_selection_is_every_coder(client, coded, supervisor):
    client.force_login(supervisor)

    response = client.get(reverse("coding:agreement", args=["study"]))

    assert [layer.key for layer in response.context["selection"].layers] == ["coder_a", "coder_b"]


def test_htmx_gets_the_report_fragment_only(client, coded, supervisor):
    client.force_login(supervisor)

    html = client.get(urls()["page"], **HTMX).content.decode()

    assert html.lstrip().startswith('<div id="agreement-report">')
    assert "<html" not in html


def _queries(client, url: str, **headers) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, **headers).status_code == 200
    return len(ctx)


@pytest.mark.parametrize("name", ["page", "drilldown", "export", "export-xlsx", "export-disagreements"])
@pytest.mark.parametrize("level", ["both"])
@pytest.mark.parametrize("unit", ["clause", "character"])
def test_query_count_does_not_grow_with_policies(
    client, project, admin_user, supervisor, coder_a, coder_b, codebook, name, level, unit
):
    def url() -> str:
        return urls()[name].replace("level=sub&unit=clause", f"level={level}&unit={unit}").replace("at=sub", "at=tree")

    client.force_login(supervisor)
    first = make_policy(project, admin_user, 3)
    code(coder_a, first, 1, codebook["A"])
    done(first, coder_a, coder_b)
    with_one = _queries(client, url())
    for lines in (4, 5):
        policy = make_policy(project, admin_user, lines)
        code(coder_a, policy, 2, codebook["A"])
        code(coder_b, policy, 3, codebook["B"], 0, 2)
        done(policy, coder_a, coder_b)
    services.adjudicate(
        actor=supervisor,
        clause=policy.clauses.get(number=2),
        node=codebook["R1"],
        scope="subtree",
        decision="neither",
        coders=[coder_a, coder_b],
    )

    assert _queries(client, url()) == with_one


# --- drill-down ----------------------------------------------------------------------------------


def test_drilldown_lists_the_clauses_where_coders_differ_side_by_side(client, coded, codebook, supervisor):
    client.force_login(supervisor)

    response = client.get(urls()["drilldown"] + f"&node={codebook['A'].pk}", **HTMX)

    html = response.content.decode()
    assert "<html" not in html and html.lstrip().startswith('<div id="disagreement-list"')
    assert [(u.label, u.node.name) for u in response.context_data["units"]] == [("1-1", "A"), ("1-3", "A")]
    assert [[(layer.key, layer.applied) for layer in u.layers] for u in response.context_data["units"]] == [
        [("coder_a", True), ("coder_b", False)],
        [("coder_a", True), ("coder_b", False)],
    ]
    assert '<mark class="hl focus" title="R1 › A">第三条　市</mark>' in html
    assert '<mark class="hl" title="R1 › B">人民政府应</mark>' in html
    assert 'href="/projects/study/policies/1/#clause-1-3"' in html


def test_drilldown_by_policy_and_by_pair(client, coded, codebook, supervisor):
    client.force_login(supervisor)

    by_policy = client.get(urls()["drilldown"] + "&policy=1", **HTMX).context_data["units"]
    by_pair = client.get(urls()["drilldown"] + "&pair=coder_a,coder_b", **HTMX).context_data["units"]

    expected = [("1-1", "A"), ("1-3", "A"), ("1-3", "B")]
    assert [(u.label, u.node.name) for u in by_policy] == expected
    assert [(u.label, u.node.name) for u in by_pair] == expected


@pytest.mark.parametrize(
    ("extra", "status"),
    [("&node=999999", 404), ("&policy=42", 404), ("&pair=coder_a,ghost", 404), ("&at=tree", 400), ("&node=x", 400)],
)
def test_drilldown_refuses_what_is_not_in_the_comparison(client, coded, supervisor, extra, status):
    client.force_login(supervisor)

    assert client.get(urls()["drilldown"] + extra).status_code == status


# --- adjudication ----------------------------------------------------------------------------------


def test_accepting_a_coder_writes_the_consensus_and_returns_the_decided_unit(client, coded, codebook, supervisor):
    client.force_login(supervisor)

    response = client.post(reverse("coding:agreement_adjudicate", args=["study"]), adjudicate_data(codebook), **HTMX)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<article class="unit resolved" id="unit-sub-1-1-')
    assert "Resolved: accepted coder_a, by supervisor_p" in html
    clause = coded.clauses.get(number=1)
    assert list(
        Reference.objects.filter(consensus=True).values_list("clause", "node", "start", "end", "created_by")
    ) == [(clause.pk, codebook["A"].pk, clause.start, clause.end, supervisor.pk)]
    assert Event.objects.filter(actor=supervisor, action__in=["reference.create", "adjudication.create"]).count() == 2
    page = client.get(urls()["page"]).content.decode()
    assert _cells(page, "R1 › A")[3] == "2 (1 resolved)"


def test_adjudication_without_htmx_redirects_back_to_the_drilldown(client, coded, codebook, supervisor):
    client.force_login(supervisor)

    response = client.post(
        reverse("coding:agreement_adjudicate", args=["study"]), adjudicate_data(codebook, decision="neither")
    )

    assert response.status_code == 302
    assert response["Location"] == (
        reverse("coding:agreement_disagreements", args=["study"])
        + f"?coders=coder_a%2Ccoder_b&level=sub&unit=clause&at=sub&node={codebook['A'].pk}"
    )
    assert Adjudication.objects.get().decision == "neither"


def test_coding_anew_takes_code_point_offsets(client, coded, codebook, supervisor):
    client.force_login(supervisor)
    clause = coded.clauses.get(number=3)
    at = coded.text.index("𠀀")

    response = client.post(
        reverse("coding:agreement_adjudicate", args=["study"]),
        adjudicate_data(
            codebook,
            clause="3",
            decision="anew",
            code_node=str(codebook["A"].pk),
            start=str(at),
            end=str(at + 3),
            memo="read it again",
        ),
        **HTMX,
    )

    assert response.status_code == 200
    reference = Reference.objects.get(consensus=True)
    assert (reference.clause_id, reference.text, reference.memo) == (clause.pk, "𠀀支持", "read it again")
    assert "Resolved: coded anew" in response.content.decode()


@pytest.mark.parametrize(
    ("extra", "status", "message"),
    [
        ({"decision": "accept:ghost"}, 200, "Accept the coding of one of the compared coders."),
        ({"decision": "maybe"}, 200, "&#x27;maybe&#x27; is not a decision here; use one of accept, both, neither."),
        ({"decision": "anew", "code_node": "", "start": "1", "end": "2"}, 200, "code_node must be a whole number"),
        ({"at": "leaf"}, 400, "Say at which level (sub or tree) this disagreement was decided."),
        ({"policy": "x"}, 400, "policy must be a whole number, got 'x'."),
        ({"coders": "coder_a"}, 400, "Choose two or more coders, or the consensus layer and a coder."),
    ],
)
def test_bad_adjudication_input_says_what_is_wrong_and_changes_nothing(
    client, coded, codebook, supervisor, extra, status, message
):
    client.force_login(supervisor)
    before = Event.objects.count()

    response = client.post(
        reverse("coding:agreement_adjudicate", args=["study"]), adjudicate_data(codebook, **extra), **HTMX
    )

    assert response.status_code == status
    assert message in response.content.decode()
    assert Event.objects.count() == before


def test_adjudicating_another_projects_clause_is_404(client, coded, codebook, supervisor):
    client.force_login(supervisor)

    response = client.post(
        reverse("coding:agreement_adjudicate", args=["study"]), adjudicate_data(codebook, clause="99"), **HTMX
    )

    assert response.status_code == 404


# --- downloads -------------------------------------------------------------------------------------


def test_csv_and_xlsx_downloads_hold_the_tables_of_the_page(client, coded, supervisor):
    client.force_login(supervisor)

    response = client.get(urls()["export"])

    assert response["Content-Disposition"] == 'attachment; filename="study-agreement-nodes.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["node"], r["applied_coder_a"], r["applied_coder_b"], r["cohen_kappa"]) for r in rows] == [
        ("R1 › A", "3", "1", "0.2"),
        ("R1 › B", "0", "1", "0.0"),
    ]
    book = openpyxl.load_workbook(io.BytesIO(client.get(urls()["export-xlsx"]).content))
    sheet = book["policies"]
    header = [cell.value for cell in sheet[1]]
    values = dict(zip(header, [cell.value for cell in sheet[2]], strict=True))
    assert (values["policy"], values["clauses"], values["disagreeing_clauses"]) == (1, 4, 2)


def test_disagreements_download_lists_each_disagreement(client, coded, supervisor):
    client.force_login(supervisor)

    body = client.get(urls()["export-disagreements"]).content.decode("utf-8-sig")

    assert list(csv.reader(io.StringIO(body))) == [
        ["level", "clause", "policy_title", "node", "applied_coder_a", "applied_coder_b", "decision"],
        ["sub", "1-1", "济宁市智慧城市促进条例", "R1 › A", "True", "False", ""],
        ["sub", "1-3", "济宁市智慧城市促进条例", "R1 › A", "True", "False", ""],
        ["sub", "1-3", "济宁市智慧城市促进条例", "R1 › B", "False", "True", ""],
    ]


def test_unknown_table_or_format_is_404(client, coded, supervisor):
    client.force_login(supervisor)
    for table, fmt in [("nodes", "pdf"), ("secrets", "csv")]:
        url = reverse("coding:agreement_export", args=["study", table, fmt]) + "?" + SELECTION
        assert client.get(url).status_code == 404


# --- the demo ------------------------------------------------------------------------------------


def test_demo_study_shows_real_figures_from_labelled_demo_coding(client):
    call_command("load_demo", stdout=io.StringIO())
    references = Reference.objects.filter(policy__project__slug="smart-city")
    count = references.count()
    call_command("load_demo", stdout=io.StringIO())  # idempotent: no second demo coding
    client.login(username="supervisor", password="supervisor-demo")

    response = client.get(reverse("coding:agreement", args=["smart-city"]))

    assert references.count() == count > 100
    assert set(references.values_list("memo", flat=True)) == {"demo coding"}
    report = response.context["report"]
    assert [layer.key for layer in report.layers] == ["coder1", "coder2"]
    assert (report.coverage.compared, report.coverage.clauses) == (4, 108)
    assert report.coverage.reasons == [
        "13 of the 17 with text are not marked done by every chosen coder (marked done: coder1 5, coder2 4 of 17)"
    ]
    kappas = [row.kappa.value for row in report.levels[0].nodes]
    assert sum(k is not None for k in kappas) >= 10
    assert 0 < report.levels[0].disagreements < report.coverage.clauses
    assert "Compared <strong>4</strong> policies (108 clauses)" in response.content.decode()


# --- copying the agreed coding ------------------------------------------------------------------


@pytest.mark.parametrize(("persona", "status"), [("coder_a", 403), ("outsider", 404)])
def test_only_reviewers_may_copy_the_agreed_coding(client, coded, persona, status, request):
    client.force_login(request.getfixturevalue(persona))

    response = client.post(
        reverse("coding:agreement_adopt", args=["study"]), {"coders": "coder_a,coder_b", "level": "sub", "at": "sub"}
    )

    assert response.status_code == status
    assert not Reference.objects.filter(consensus=True).exists()


def test_copying_the_agreed_coding_lets_the_consensus_be_compared(client, coded, codebook, supervisor):
    client.force_login(supervisor)

    response = client.post(
        reverse("coding:agreement_adopt", args=["study"]),
        {"coders": "coder_a,coder_b", "level": "sub", "unit": "clause", "at": "sub"},
        follow=True,
    )

    clause = coded.clauses.get(number=2)
    assert list(Reference.objects.filter(consensus=True).values_list("clause", "node")) == [
        (clause.pk, codebook["A"].pk)
    ]
    assert (
        "1 clause × node decisions where every coder agrees: 1 reference(s) of coder_a copied into the consensus layer"
    ) in response.content.decode()
    report = client.get(reverse("coding:agreement", args=["study"]), {"coders": "coder_a,consensus"}).context["report"]
    assert report.coverage.compared == 1
    assert [row.applied for row in report.levels[0].nodes] == [[3, 1], [0, 0]]  # A, B


def test_copying_needs_coders_only(client, coded, supervisor):
    client.force_login(supervisor)

    response = client.post(
        reverse("coding:agreement_adopt", args=["study"]), {"coders": "coder_a,consensus", "at": "sub"}
    )

    assert response.status_code == 400
    assert response.content.decode() == "Compare coders only: it is their agreed coding that goes into the consensus."
