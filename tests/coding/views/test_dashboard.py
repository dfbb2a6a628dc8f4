import io
import json
from html.parser import HTMLParser
from urllib.parse import urlencode

import openpyxl
import pandas as pd
import pytest
from django.core.management import call_command
from django.urls import reverse

from coding import access, services, stats
from coding.models import DoneMark, Event, Policy, Reference
from coding.views.dashboard import ALPHA
from tests.coding import table3

pytestmark = pytest.mark.django_db

PAGES = ["dashboard", "dashboard_crosstab", "dashboard_trend", "dashboard_words", "dashboard_search"]


class TableParser(HTMLParser):
    """The text of every table on a page: {data-table or class: [[cell, ...], ...]} with the
    header row first."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("data-table") or attrs.get("class", ""), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def screen_table(response, name: str) -> list[list[str]]:
    parser = TableParser()
    parser.feed(response.content.decode())
    return parser.tables[name]


def as_screen(frame: pd.DataFrame, shares: set[str], decimals: dict[str, int] | None = None) -> list[list[str]]:
    """A file's table as the screen writes it: counts with thousands commas, shares to one
    decimal, coefficients (``decimals``) to that many."""
    decimals = decimals or {}
    rows = [list(frame.columns)]
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            if column in shares:
                cells.append("—" if pd.isna(value) else f"{value * 100:.1f}%")
            elif column in decimals:
                cells.append("—" if pd.isna(value) else f"{value:.{decimals[column]}f}")
            elif isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind == "i"):
                cells.append(f"{int(value):,}")
            else:
                cells.append("" if pd.isna(value) else str(value))
        rows.append(cells)
    return rows


def url(name, project, **query):
    base = reverse(f"coding:{name}", args=[project.slug])
    if not query:
        return base
    return base + "?" + urlencode(query, doseq=True)


@pytest.fixture
def study(project, admin_user, supervisor, coder_a, coder_b):
    nodes = table3.build_codebook(project, admin_user)
    table3.build_policies(project, admin_user)
    table3.code_table3(project, admin_user, coder_a, nodes)
    table3.code_table3(project, admin_user, coder_b, nodes, only=100)
    return nodes


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_outsider_gets_404_and_anonymous_goes_to_login(client, project, outsider, name):
    response = client.get(url(name, project))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    client.force_login(outsider)

    assert client.get(url(name, project)).status_code == 404


def test_outsider_cannot_code_hits_or_change_stop_words(client, project, outsider, study):
    client.force_login(outsider)

    assert client.post(url("dashboard_search_code", project), {"node": 1, "all": "1"}).status_code == 404
    assert client.post(url("dashboard_stopwords", project), {"words": "x"}).status_code == 404
    assert Reference.objects.filter(coder=outsider).count() == 0


@pytest.mark.parametrize("name", ["dashboard", "dashboard_crosstab", "dashboard_trend"])
def test_blind_coder_asking_for_another_layer_gets_403(client, project, coder_a, coder_b, study, name):
    client.force_login(coder_b)

    for layer in (str(coder_a.pk), "coders", "consensus"):
        assert client.get(url(name, project, layer=layer)).status_code == 403


def test_blind_coder_sees_only_their_own_figures(client, project, coder_b, study):
    client.force_login(coder_b)

    response = client.get(url("dashboard", project))

    rows = screen_table(response, "distribution")
    assert rows[0] == ["Node", "References", "Share", "Policies coded"]
    assert rows[1][:2] == ["Supply-based", "53"]  # the first 100 references are 53 supply + 47 environmental
    assert sum(int(r[1]) for r in rows[1:] if " > " not in r[0]) == 100
    assert "All coders" not in response.content.decode()
    assert "coder_a" not in response.content.decode()


def test_stop_words_are_edited_by_reviewers_only(client, project, coder_a, supervisor):
    client.force_login(coder_a)
    assert client.post(url("dashboard_stopwords", project), {"words": "智慧\n城市"}).status_code == 403

    client.force_login(supervisor)
    response = client.post(url("dashboard_stopwords", project), {"words": "智慧\n城市 城市\nthe"})

    assert response.status_code == 302
    project.refresh_from_db()
    assert project.stopwords == ["智慧", "城市", "the"]
    assert Event.objects.filter(action="project.stopwords").count() == 1
    client.post(url("dashboard_stopwords", project), {"reset": "1"})
    project.refresh_from_db()
    assert project.stopwords is None


# --- distribution ----------------------------------------------------------------------------


def test_distribution_shows_counts_beside_shares(client, project, supervisor, coder_a, study):
    client.force_login(supervisor)

    response = client.get(url("dashboard", project, layer=str(coder_a.pk)))

    rows = screen_table(response, "distribution")
    by_node = {r[0]: r[1:] for r in rows[1:]}
    assert by_node["Supply-based"] == ["53", "32.1%", "53"]
    assert by_node["Supply-based > Financial investment"] == ["14", "26.4%", "14"]
    assert by_node["Environmental-based > Regulations"] == ["19", "36.5%", "19"]
    assert by_node["Demand-based > Smart Applications"] == ["42", "70.0%", "42"]
    assert "165 references in 66 policies" in " ".join(response.content.decode().split())
    assert 'id="chart-distribution"' in response.content.decode()


def test_side_by_side_has_a_column_group_per_layer(client, project, supervisor, coder_a, coder_b, study):
    client.force_login(supervisor)

    response = client.get(url("dashboard", project, layer=[str(coder_a.pk), str(coder_b.pk)], mode="side"))

    rows = screen_table(response, "distribution")
    assert rows[0] == [
        "Node",
        "coder_a · References",
        "coder_a · Share",
        "coder_a · Policies coded",
        "coder_b · References",
        "coder_b · Share",
        "coder_b · Policies coded",
    ]
    assert rows[1][0] == "Supply-based" and rows[1][1] == "53" and rows[1][4] == "53"
    demand = next(r for r in rows if r[0] == "Demand-based")
    assert (demand[1], demand[4]) == ("60", "0")


def finish(project, *coders):
    """Every policy marked done by ``coders``: what agreement compares."""
    DoneMark.objects.bulk_create(
        DoneMark(policy=policy, coder=coder) for policy in Policy.objects.filter(project=project) for coder in coders
    )


def command_alphas(coders: str) -> dict[tuple[str, int], float | None]:
    out = io.StringIO()
    args = ["--project", "study", "--coders", coders, "--level", "both", "--format", "json", "--table", "nodes"]
    call_command("agreement", *args, stdout=out)
    levels = json.loads(out.getvalue())["levels"]
    return {(level, r["node_id"]): r["krippendorff_alpha"] for level, tables in levels.items() for r in tables["nodes"]}


def test_side_by_side_shows_each_nodes_alpha_on_request(client, project, supervisor, coder_a, coder_b, study):
    finish(project, coder_a, coder_b)
    client.force_login(supervisor)
    query = {"layer": [str(coder_a.pk), str(coder_b.pk)], "mode": "side"}

    without = client.get(url("dashboard", project, **query))
    response = client.get(url("dashboard", project, **query, alpha="1"))

    assert ALPHA not in screen_table(without, "distribution")[0]
    rows = screen_table(response, "distribution")
    assert rows[0][-1] == ALPHA
    alphas = {r[0]: r[-1] for r in rows[1:]}
    # The agreement command's figures, to three decimals: tree nodes at the tree level,
    # sub-nodes (no deeper nodes here) at the sub-node level.
    page = command_alphas("coder_a,coder_b")
    for path, node in study.items():
        level = "tree" if " > " not in path else "sub"
        expected = page[(level, node.pk)]
        assert alphas[path] == ("—" if expected is None else f"{expected:.3f}"), path
    # coder_b coded the first 100 references exactly as coder_a (all of Supply-based), none of Demand-based.
    assert alphas["Supply-based"] == "1.000"
    assert alphas["Demand-based > Smart Applications"] not in ("1.000", "—")
    text = " ".join(response.content.decode().split())
    assert (
        "It uses only the 66 of 66 policies in the filter that every compared coder marked done (660 clauses)" in text
    )


def test_alpha_is_for_reviewers_only(client, project, admin_user, coder_a, coder_b, study):
    finish(project, coder_a, coder_b)
    services.update_project(actor=admin_user, project=project, blind_coding=False)
    client.force_login(coder_b)
    query = {"layer": [str(coder_a.pk), str(coder_b.pk)], "mode": "side", "alpha": "1"}

    response = client.get(url("dashboard", project, **query))
    download = client.get(url("dashboard", project, **query, export="csv"))

    assert response.status_code == 200
    assert ALPHA not in screen_table(response, "distribution")[0]
    assert "Agreement per node is for supervisors and admins" in response.content.decode()
    assert ALPHA not in pd.read_csv(io.BytesIO(download.content), encoding="utf-8-sig").columns
    assert 'name="alpha"' not in response.content.decode()


def test_blind_coder_asking_for_alpha_gets_their_own_figures_only(client, project, coder_b, study):
    client.force_login(coder_b)

    response = client.get(url("dashboard", project, mode="side", alpha="1"))

    assert response.status_code == 200
    rows = screen_table(response, "distribution")
    assert rows[0] == ["Node", "References", "Share", "Policies coded"]
    assert "coder_a" not in response.content.decode()


@pytest.mark.parametrize(
    "query, message",
    [
        ({"layer": ["A", "B"]}, "Agreement per node compares layers side by side"),
        ({"layer": ["coders", "A"], "mode": "side"}, "Agreement compares two or more layers"),
    ],
)
def test_alpha_says_why_it_cannot_be_shown(client, project, supervisor, coder_a, coder_b, study, query, message):
    ids = {"A": str(coder_a.pk), "B": str(coder_b.pk)}
    client.force_login(supervisor)

    response = client.get(
        url("dashboard", project, **query | {"layer": [ids.get(k, k) for k in query["layer"]]}, alpha="1")
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert ALPHA not in screen_table(response, "distribution")[0]


def test_alpha_export_carries_the_exact_figures(client, project, supervisor, coder_a, coder_b, study):
    finish(project, coder_a, coder_b)
    client.force_login(supervisor)
    query = {"layer": [str(coder_a.pk), str(coder_b.pk)], "mode": "side", "alpha": "1"}
    acc = access.get_project_for_user(supervisor, project.slug)
    expected = stats.node_agreement(project, stats.resolve_layers(acc, query["layer"], side_by_side=True))

    sheet = pd.read_excel(io.BytesIO(client.get(url("dashboard", project, **query, export="xlsx")).content))

    by_node = {path: node.pk for path, node in study.items()}
    for path, value in zip(sheet["Node"], sheet[ALPHA], strict=True):
        figure = expected.figure(1 if " > " not in path else 2, by_node[path])
        # Exact figures, as doubles (Excel keeps 15 significant digits); none where not computable.
        if figure.value is None:
            assert pd.isna(value), path
        else:
            assert value == pytest.approx(figure.value, rel=1e-14), path


def test_table3_layout_and_its_xlsx(client, project, supervisor, coder_a, study):
    client.force_login(supervisor)

    response = client.get(url("dashboard", project, layer=str(coder_a.pk), view="table3"))
    download = client.get(url("dashboard", project, layer=str(coder_a.pk), view="table3", export="table3"))

    heads = screen_table(response, "grid table3")[0]
    assert heads == [
        "Supply-based (32.1%) 53 references",
        "Environmental-based (31.5%) 52 references",
        "Demand-based (36.4%) 60 references",
    ]
    sheet = openpyxl.load_workbook(io.BytesIO(download.content))["Table 3"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    # Exact counts; shares as doubles (Excel keeps 15 significant digits).
    assert values[1][:3] == ["Supply-based", 53, pytest.approx(53 / 165, rel=1e-15)]
    assert values[1][6:9] == ["Demand-based", 60, pytest.approx(60 / 165, rel=1e-15)]
    assert values[3][6:9] == ["Smart Applications", 42, pytest.approx(42 / 60, rel=1e-15)]
    assert sheet.cell(row=2, column=3).number_format == "0.0%"
    assert download["Content-Disposition"] == 'attachment; filename="study-table3.xlsx"'


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize(
    "name, query",
    [
        ("dashboard", {}),
        ("dashboard", {"mode": "side", "layer": ["A", "B", "coders"]}),
        ("dashboard", {"mode": "side", "layer": ["A", "B", "coders"], "alpha": "1"}),
        ("dashboard", {"jurisdiction": ["Beijing", "Shanghai"], "year_from": "2012"}),
        ("dashboard_crosstab", {"by": "department", "percent": "row"}),
        ("dashboard_crosstab", {"by": "year", "measure": "policies"}),
        ("dashboard_trend", {"potency": "Normative Document"}),
    ],
)
def test_export_read_back_equals_the_table_on_screen(
    client, project, supervisor, coder_a, coder_b, study, fmt, name, query
):
    ids = {"A": str(coder_a.pk), "B": str(coder_b.pk)}
    if "layer" in query:
        query = query | {"layer": [ids.get(k, k) for k in query["layer"]]}
    if "alpha" in query:
        finish(project, coder_a, coder_b)
    client.force_login(supervisor)

    page = client.get(url(name, project, **query))
    download = client.get(url(name, project, **query, export=fmt))

    assert download.status_code == 200
    if fmt == "csv":
        assert download.content.startswith("\ufeff".encode())
        frame = pd.read_csv(
            io.BytesIO(download.content),
            encoding="utf-8-sig",
            dtype={"Node": str},
            keep_default_na=False,
            na_values=[""],
        )
    else:
        frame = pd.read_excel(io.BytesIO(download.content))
    rows = screen_table(page, next(iter(TableParser_names(page))))
    shares = {c for c in frame.columns if "Share" in c or query.get("percent") in ("row", "column", "total")}
    shares -= {"Node"}
    assert as_screen(frame, shares, {ALPHA: 3}) == rows
    if "alpha" in query:
        assert frame.columns[-1] == ALPHA and frame[ALPHA].notna().sum() >= 3


def TableParser_names(response):
    parser = TableParser()
    parser.feed(response.content.decode())
    return [name for name in parser.tables if not name.startswith("grid")]


def test_bad_filters_are_refused_with_a_message(client, project, supervisor, study):
    client.force_login(supervisor)

    response = client.get(url("dashboard", project, policies="3-x", year_from="2015", year_to="2012"))
    htmx = client.get(url("dashboard", project, policies="3-x"), headers={"HX-Request": "true"})

    assert response.status_code == 400
    text = response.content.decode()
    assert "&#x27;3-x&#x27; is not a policy number or a range like 3-7." in text
    assert "The release years run from 2015 to 2012" in text
    assert htmx.status_code == 400
    assert "is not a policy number" in htmx.content.decode()
    assert "<html" not in htmx.content.decode()


def test_unknown_layer_is_a_message_not_an_error_page(client, project, supervisor, study):
    client.force_login(supervisor)

    response = client.get(url("dashboard", project, layer="999999"))

    assert response.status_code == 400
    assert "&#x27;999999&#x27; is not a layer of this project" in response.content.decode()


def test_htmx_redraw_returns_only_the_result(client, project, supervisor, study):
    client.force_login(supervisor)

    response = client.get(url("dashboard", project, jurisdiction="Beijing"), headers={"HX-Request": "true"})

    body = response.content.decode()
    assert body.lstrip().startswith('<div id="dashboard-body">')
    assert "<form" not in body and "<html" not in body
    rows = screen_table(response, "distribution")
    assert rows[1][0] == "Supply-based"


# --- crosstab and trend ------------------------------------------------------------------------


def test_crosstab_by_jurisdiction_with_column_percentages(client, project, supervisor, coder_a, study):
    client.force_login(supervisor)

    response = client.get(
        url("dashboard_crosstab", project, layer=str(coder_a.pk), by="jurisdiction", percent="column")
    )

    rows = screen_table(response, next(iter(TableParser_names(response))))
    assert rows[0] == ["Node", "Beijing", "Central", "Guangzhou", "Shanghai", "Shenzhen", "Total"]
    assert rows[-1] == ["Total", "100.0%", "100.0%", "100.0%", "100.0%", "100.0%", "100.0%"]
    assert 'id="chart-crosstab"' in response.content.decode()


def test_crosstab_refuses_an_unknown_attribute(client, project, supervisor, study):
    client.force_login(supervisor)

    response = client.get(url("dashboard_crosstab", project, by="colour"))

    assert response.status_code == 400
    assert "is not a policy attribute" in response.content.decode()


def test_trend_draws_lines_over_every_year(client, project, supervisor, study):
    client.force_login(supervisor)

    response = client.get(url("dashboard_trend", project, level="sub"))

    rows = screen_table(response, next(iter(TableParser_names(response))))
    assert rows[0][1:13] == [str(y) for y in range(2010, 2022)]
    assert rows[0][-2:] == ["(none)", "Total"]
    assert 'id="chart-trend"' in response.content.decode()


# --- word frequency and search ---------------------------------------------------------------


def test_word_frequency_counts_and_exports(client, project, supervisor, study):
    client.force_login(supervisor)
    query = {"run": "1", "policies": "1-3", "top": "5"}

    page = client.get(url("dashboard_words", project, **query))
    download = client.get(url("dashboard_words", project, **query, export="csv"))

    rows = screen_table(page, "word frequency")
    assert rows[0] == ["Rank", "Word", "Count", "Share", "Policies"]
    words = {r[1]: r[2] for r in rows[1:]}
    assert words["智慧"] == "30" and words["内容"] == "30"
    frame = pd.read_csv(io.BytesIO(download.content), encoding="utf-8-sig")
    assert as_screen(frame, {"Share"}) == rows


def test_word_frequency_refuses_bad_numbers(client, project, supervisor, study):
    client.force_login(supervisor)

    response = client.get(url("dashboard_words", project, run="1", top="0", threshold="120"))

    assert response.status_code == 400
    text = response.content.decode()
    assert "Ensure this value is greater than or equal to 1." in text
    assert "Ensure this value is less than or equal to 100." in text


def test_search_shows_hits_in_context_with_labels(client, project, coder_a, study):
    client.force_login(coder_a)

    response = client.get(url("dashboard_search", project, q="第三条", mode="phrase", policies="2, 5"))

    rows = screen_table(response, "grid kwic")
    assert [r[1] for r in rows[1:]] == ["2-3", "2-3", "5-3", "5-3"]
    assert rows[1][3] == "第三条"
    assert "4 hits" in response.content.decode()


def test_coder_codes_ticked_hits_in_their_own_layer(client, project, coder_a, study):
    client.force_login(coder_a)
    node = study["Supply-based > Talent input"]
    search = "q=%E7%AC%AC%E4%B8%89%E6%9D%A1&mode=phrase&policies=2%2C+5"
    page = client.get(url("dashboard_search", project) + "?" + search)
    keys = [
        line.split('value="')[1].split('"')[0] for line in page.content.decode().splitlines() if 'name="hit"' in line
    ]
    before = Event.objects.filter(action="reference.create").count()

    response = client.post(url("dashboard_search_code", project), {"search": search, "node": node.pk, "hit": keys[:2]})

    assert response.status_code == 302
    created = Reference.objects.filter(coder=coder_a, node=node, policy__number=2)
    assert {(r.start, r.end) for r in created} >= {tuple(map(int, k.split(":")[1:])) for k in keys[:2]}
    assert Event.objects.filter(action="reference.create").count() - before == 2
    assert all(r.text == "第三条" for r in created if r.end - r.start == 3)


def test_code_all_hits_and_again_creates_no_duplicates(client, project, coder_b, study):
    client.force_login(coder_b)
    node = study["Demand-based > Others"]
    data = {"search": "q=%E6%95%B0%E6%8D%AE%E5%85%B1%E4%BA%AB&policies=1-4", "node": node.pk, "all": "1"}

    client.post(url("dashboard_search_code", project), data)
    response = client.post(url("dashboard_search_code", project), data, follow=True)

    assert Reference.objects.filter(coder=coder_b, node=node).count() == 40
    assert "0 new reference(s), 40 passage(s) were already coded there" in response.content.decode()


def test_code_hits_refuses_a_hit_the_search_does_not_give(client, project, coder_a, study):
    client.force_login(coder_a)
    node = study["Supply-based > Talent input"]
    data = {"search": "q=%E7%AC%AC%E4%B8%89%E6%9D%A1&policies=2", "node": node.pk, "hit": ["2:0:5"]}
    count = Reference.objects.count()

    response = client.post(url("dashboard_search_code", project), data, follow=True)

    assert "2:0:5 is not a hit of this search any more" in response.content.decode()
    assert Reference.objects.count() == count


def test_search_refuses_a_bad_regular_expression(client, project, coder_a, study):
    client.force_login(coder_a)

    response = client.get(url("dashboard_search", project, q="(第", mode="regex"))

    assert response.status_code == 400
    assert "is not a valid regular expression" in response.content.decode()


def test_search_stops_a_pathological_regex_with_a_message(client, project, admin_user, coder_a, study, monkeypatch):
    monkeypatch.setattr(stats, "REGEX_SECONDS", 0.3)
    services.create_policy(actor=admin_user, project=project, title="Trap", text="第一条　" + "a" * 32 + "!\n")
    client.force_login(coder_a)
    search = {"q": "(a+)+$", "mode": "regex"}
    count = Reference.objects.count()

    response = client.get(url("dashboard_search", project, **search))
    coded = client.post(
        url("dashboard_search_code", project),
        {"search": urlencode(search), "node": study["Supply-based > Talent input"].pk, "all": "1"},
        follow=True,
    )

    assert response.status_code == 400
    message = "was stopped after 0.3 seconds of searching: on these texts it takes too long"
    assert message in response.content.decode()
    assert message in coded.content.decode()
    assert Reference.objects.count() == count


def test_search_refuses_a_regex_too_large_to_compile(client, project, coder_a, study):
    client.force_login(coder_a)

    response = client.get(url("dashboard_search", project, q="a{99999999999}", mode="regex"))

    assert response.status_code == 400
    assert "too large to compile as a regular expression" in response.content.decode()


def test_search_export_equals_the_hits(client, project, coder_a, study):
    client.force_login(coder_a)

    download = client.get(url("dashboard_search", project, q="第十条", policies="7", export="xlsx"))

    frame = pd.read_excel(io.BytesIO(download.content))
    assert frame.columns.tolist() == ["Label", "Before", "Match", "After", "Policy title"]
    assert frame["Label"].tolist() == ["7-10", "7-10"]


# --- query counts ----------------------------------------------------------------------------


def _scaled_study(project, admin_user, coder, items: int):
    """``items`` policies, ``items`` sub-nodes per tree node and references in each."""
    nodes = {}
    for tree in ("Supply-based", "Demand-based"):
        parent = services.add_node(actor=admin_user, project=project, name=tree)
        for i in range(items):
            nodes[f"{tree} > {i}"] = services.add_node(
                actor=admin_user, project=project, name=f"Sub {i}", parent=parent
            )
    policies = table3.build_policies(project, admin_user, count=items)
    clauses = list(policies[0].clauses.all()[:1])
    references = []
    for policy in policies:
        clause = policy.clauses.order_by("start").first()
        for node in nodes.values():
            references.append(
                Reference(
                    policy=policy,
                    clause=clause,
                    node=node,
                    coder=coder,
                    created_by=coder,
                    start=clause.start,
                    end=clause.end,
                    text="x",
                )
            )
    Reference.objects.bulk_create(references)
    return clauses


@pytest.mark.parametrize(
    "name, query, expected",
    [
        # session, user, membership, members (layers), filter choices (2), codebook, the count
        ("dashboard", {}, 8),
        ("dashboard", {"mode": "side", "layer": ["coders", "consensus"], "department": "Dept B"}, 8),
        ("dashboard_crosstab", {"by": "department"}, 8),
        ("dashboard_trend", {}, 8),
        # session, user, membership, filter choices (2), texts
        ("dashboard_words", {"run": "1"}, 6),
        # session, user, membership, filter choices (2), texts, their clauses, codebook
        ("dashboard_search", {"q": "第一条"}, 8),
    ],
)
@pytest.mark.parametrize("items", [1, 3])
def test_query_count_does_not_grow_with_items(
    client, project, admin_user, supervisor, coder_a, django_assert_num_queries, items, name, query, expected
):
    _scaled_study(project, admin_user, coder_a, items)
    client.force_login(supervisor)

    with django_assert_num_queries(expected):
        response = client.get(url(name, project, **query))

    assert response.status_code == 200


@pytest.mark.parametrize("items", [1, 3])
def test_alpha_query_count_does_not_grow_with_items(
    client, project, admin_user, supervisor, coder_a, django_assert_num_queries, items
):
    _scaled_study(project, admin_user, coder_a, items)
    finish(project, coder_a)
    client.force_login(supervisor)
    query = {"layer": [str(coder_a.pk), "consensus"], "mode": "side", "alpha": "1"}

    # The page's 8, then agreement's: codebook, compared policies, their clauses, the layers'
    # references, adjudications, the coverage counts.
    with django_assert_num_queries(14):
        response = client.get(url("dashboard", project, **query))

    assert response.status_code == 200
    assert ALPHA in screen_table(response, "distribution")[0]


@pytest.mark.parametrize("items", [1, 3])
def test_htmx_redraw_query_count(client, project, admin_user, supervisor, coder_a, django_assert_num_queries, items):
    _scaled_study(project, admin_user, coder_a, items)
    client.force_login(supervisor)

    # session, user, membership, members (layers), codebook, the count: no filter choices
    with django_assert_num_queries(6):
        client.get(url("dashboard", project, jurisdiction="Beijing"), headers={"HX-Request": "true"})


def test_page_links_keep_the_filters(client, project, supervisor, study):
    client.force_login(supervisor)

    response = client.get(url("dashboard", project, jurisdiction="Beijing"))

    text = response.content.decode()
    assert f'href="{url("dashboard_crosstab", project)}?jurisdiction=Beijing"' in text
    assert '?jurisdiction=Beijing&amp;export=csv"' in text
    assert stats.NONE_VALUE  # the constant the trend test relies on
