"""Files in and out through the API, as the pages offer them: policy import (with a dry run),
codebook import and export, the reference list as CSV/XLSX, and REFI-QDA export and import.

Every refused upload is checked against a snapshot of every table: nothing may change."""

import csv
import io
import json

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from coding import refi, services
from coding.models import Clause, Event, Node, Policy, Reference
from tests.coding.documents import database_state, make_docx, make_zip, policy_text, zip_bomb
from tests.coding.test_refi import CODE, SOURCE, project_xml, qdpx, selection_xml, unzip

from .conftest import code

pytestmark = pytest.mark.django_db

BASE = "/api/projects/study/"
POLICY_IMPORT = BASE + "policies/import/"
CODEBOOK_IMPORT = BASE + "nodes/import/"
REFI_IMPORT = BASE + "interchange/import/"
QDPX = BASE + "interchange/qdpx/"
QDC = BASE + "interchange/qdc/"
MB = 1024 * 1024


def upload(client, url: str, name: str, content: bytes, **fields):
    return client.post(url, {"file": SimpleUploadedFile(name, content), **fields}, format="multipart")


def body_of(response) -> bytes:
    return response.getvalue()  # HttpResponse and streamed responses alike (a stream reads once)


def csv_rows(response) -> list[list[str]]:
    text = body_of(response).decode("utf-8")
    assert text.startswith("\ufeff")  # the BOM Excel needs for Chinese
    return list(csv.reader(io.StringIO(text[1:])))


# A table with an inline text of three articles and a catalogue entry without text.
TABLE = (
    'number,title,release_date,text\n7,甲条例,2021-04,"第一条　甲。\n第二条　乙。\n第三条　丙。"\n8,乙条例,2020,\n'
).encode()


# --- policy import -----------------------------------------------------------------------------


def test_a_dry_run_answers_the_plan_and_writes_nothing(api_as, project, admin_user):
    entries = {"01.txt": policy_text(1).encode("gb18030"), "02.docx": make_docx(policy_text(2).split("\n"))}
    client = api_as(admin_user)
    before = database_state()

    response = upload(client, POLICY_IMPORT, "policies.zip", make_zip(entries), dry_run="true")

    assert response.status_code == 200, response.content
    plan = response.json()
    # 75 and 19 articles, counted by hand in the two study texts (as the import page test does).
    assert [(row["number"], row["clauses"], row["action"]) for row in plan["rows"]] == [
        (1, 75, "create"),
        (2, 19, "create"),
    ]
    assert (plan["policies"], plan["creates"], plan["with_text"], plan["clauses"]) == (2, 2, 2, 94)
    assert plan["encodings"] == {"GB18030": 1, "docx (UTF-8 XML)": 1}
    assert database_state() == before


def test_an_admin_imports_a_table_with_texts_and_catalogue_entries(api_as, project, admin_user):
    response = upload(api_as(admin_user), POLICY_IMPORT, "policies.csv", TABLE, rule="article")

    assert response.status_code == 201, response.content
    assert response.json() == {"created": [7, 8], "updated": [], "unchanged": [], "clauses": 3, "notices": []}
    seven = Policy.objects.get(project=project, number=7)
    assert (seven.title, seven.release_date, seven.text) == (
        "甲条例",
        "2021-04",
        "第一条　甲。\n第二条　乙。\n第三条　丙。",
    )
    clauses = [seven.text[c.start : c.end] for c in Clause.objects.filter(policy=seven).order_by("start")]
    assert clauses == ["第一条　甲。", "第二条　乙。", "第三条　丙。"]
    assert Policy.objects.get(project=project, number=8).text == ""
    events = Event.objects.filter(project=project, action="policy.create")
    assert sorted(e.after["number"] for e in events) == [7, 8] and {e.actor for e in events} == {admin_user}


def test_an_update_attaches_a_text_to_a_catalogue_entry(api_as, project, admin_user):
    services.create_policy(actor=admin_user, project=project, number=5, title="先到", text="")
    table = '"number","text"\n5,"第一条　甲。\n第二条　乙。"\n'.encode()

    response = upload(api_as(admin_user), POLICY_IMPORT, "texts.csv", table, update="true")

    assert response.status_code == 201, response.content
    assert (response.json()["updated"], response.json()["clauses"]) == ([5], 2)
    policy = Policy.objects.get(project=project, number=5)
    assert (policy.title, policy.text) == ("先到", "第一条　甲。\n第二条　乙。")
    assert Event.objects.filter(project=project, action="policy.update", target_id=policy.pk).count() == 1


@pytest.mark.parametrize("dry_run", ["true", "false"])
def test_problems_are_a_400_naming_each_and_change_nothing(api_as, project, admin_user, policy, dry_run):
    table = "number,title,release_date\n1,甲,2021\n2,乙,2021.13.45\n3,,2020\n".encode()
    client = api_as(admin_user)
    before = database_state()

    response = upload(client, POLICY_IMPORT, "meta.csv", table, dry_run=dry_run)

    assert response.status_code == 400
    assert response.json() == {
        "file": [
            "meta.csv, row 3, release_date: '2021.13.45' is not a date (month 13 does not exist)",
            "meta.csv, row 4, title: a title is required",
            "meta.csv, row 2, number: 1 already exists in this project (use --update to change it)",
        ]
    }
    assert database_state() == before


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bomb.zip", zip_bomb(20), "looks like a zip bomb"),
        ("evil.zip", make_zip({"../evil.txt": "x"}), "leads outside the archive (path traversal)"),
        ("evil.docx", make_docx(["x"], doctype='<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'), "XXE"),
        ("noise.txt", bytes(range(256)) * 8, "not text"),
        ("photo.png", b"\x89PNG\r\n", "not a file type that can be imported"),
        ("empty.csv", b"number,title\n", "nothing to import"),
    ],
)
def test_bad_files_are_refused_with_the_reason_and_change_nothing(api_as, project, admin_user, name, content, message):
    client = api_as(admin_user)
    before = database_state()

    response = upload(client, POLICY_IMPORT, name, content)

    assert response.status_code == 400
    assert list(response.json()) == ["file"]
    assert any(message in problem for problem in response.json()["file"]), response.json()
    assert database_state() == before


def test_a_file_over_the_upload_limit_is_413(api_as, project, admin_user, settings):
    settings.MAX_UPLOAD_MB = 1
    client = api_as(admin_user)
    before = database_state()

    response = upload(client, POLICY_IMPORT, "big.txt", b"a" * (MB + 1))

    assert response.status_code == 413
    assert response.json() == {"detail": "big.txt is 1.0 MB; uploads here may be at most 1 MB."}
    assert database_state() == before


def test_a_body_far_over_the_limit_is_413_before_it_is_read(api_as, project, admin_user, settings):
    settings.MAX_UPLOAD_MB = 1
    client = api_as(admin_user)

    response = client.post(
        POLICY_IMPORT, {"file": SimpleUploadedFile("a.txt", b"x")}, format="multipart", CONTENT_LENGTH=str(3 * MB)
    )

    assert response.status_code == 413
    assert response.json()["detail"] == f"The request body has {3 * MB} bytes; the limit is {2 * MB} bytes."


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "file"),
        ({"file": "not a file"}, "file"),
        ({"file": SimpleUploadedFile("a.txt", b"")}, "file"),  # empty
        ({"file": SimpleUploadedFile("a.txt", "第一条".encode()), "rule": "chapter"}, "rule"),
        ({"file": SimpleUploadedFile("a.txt", "第一条".encode()), "dry_run": "perhaps"}, "dry_run"),
    ],
)
def test_bad_form_fields_are_field_level_400s(api_as, project, admin_user, data, field):
    response = api_as(admin_user).post(POLICY_IMPORT, data, format="multipart")

    assert response.status_code == 400 and list(response.json()) == [field]
    assert not Policy.objects.exists()


def test_a_json_body_is_415(api_as, project, admin_user):
    response = api_as(admin_user).post(POLICY_IMPORT, {"file": "x"}, format="json")

    assert response.status_code == 415


@pytest.mark.parametrize(("persona", "status"), [("supervisor", 403), ("coder_a", 403), ("outsider", 404)])
def test_only_admins_import_policies(api_as, project, persona, status, request):
    client = api_as(request.getfixturevalue(persona))
    before = database_state()

    response = upload(client, POLICY_IMPORT, "policies.csv", TABLE)

    assert response.status_code == status
    assert database_state() == before


def test_anonymous_callers_get_401_for_every_upload(anonymous, project):
    before = database_state()

    for url, name in [(POLICY_IMPORT, "p.csv"), (CODEBOOK_IMPORT, "c.csv"), (REFI_IMPORT, "p.qdpx")]:
        assert upload(anonymous, url, name, b"x").status_code == 401, url
    assert database_state() == before


# --- codebook import and export ------------------------------------------------------------------


@pytest.fixture
def codebook(project, admin_user):
    supply = services.add_node(
        actor=admin_user, project=project, name="Supply-based", description="供给型", colour="#112233", shortcut="s"
    )
    talent = services.add_node(actor=admin_user, project=project, name="Talent", parent=supply)
    demand = services.add_node(actor=admin_user, project=project, name="Demand-based")
    return {"supply": supply, "talent": talent, "demand": demand}


CODEBOOK_JSON = [
    {
        "name": "Supply-based",
        "description": "供给型",
        "colour": "#112233",
        "shortcut": "s",
        "children": [{"name": "Talent", "description": "", "colour": "#ffe08a", "shortcut": "", "children": []}],
    },
    {"name": "Demand-based", "description": "", "colour": "#ffe08a", "shortcut": "", "children": []},
]
CODEBOOK_CSV = [
    ["path", "description", "colour", "shortcut"],
    ["Supply-based", "供给型", "#112233", "s"],
    ["Supply-based > Talent", "", "#ffe08a", ""],
    ["Demand-based", "", "#ffe08a", ""],
]


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a"])
def test_every_member_exports_the_codebook(api_as, codebook, persona, request):
    client = api_as(request.getfixturevalue(persona))

    as_json = client.get(BASE + "nodes/export/json/")
    as_csv = client.get(BASE + "nodes/export/csv/")

    assert as_json.status_code == as_csv.status_code == 200
    assert as_json["Content-Type"] == "application/json; charset=utf-8"
    assert as_json["Content-Disposition"] == 'attachment; filename="study-codebook.json"'
    assert json.loads(body_of(as_json)) == CODEBOOK_JSON
    assert as_csv["Content-Type"] == "text/csv; charset=utf-8"
    assert csv_rows(as_csv) == CODEBOOK_CSV


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_codebook_export_is_the_pages_file(api_as, client, codebook, coder_a, fmt):
    client.force_login(coder_a)
    page = client.get(reverse("coding:codebook_export", args=["study", fmt]))

    api = api_as(coder_a).get(BASE + f"nodes/export/{fmt}/")

    assert page.status_code == api.status_code == 200
    assert body_of(api) == page.content and len(page.content) > len("path,description")
    assert (api["Content-Type"], api["Content-Disposition"]) == (page["Content-Type"], page["Content-Disposition"])


def test_codebook_export_refusals(api_as, anonymous, codebook, coder_a, outsider):
    assert api_as(coder_a).get(BASE + "nodes/export/xml/").status_code == 404
    assert api_as(outsider).get(BASE + "nodes/export/json/").status_code == 404
    assert anonymous.get(BASE + "nodes/export/json/").status_code == 401


@pytest.mark.parametrize("item_count", [1, 3])
def test_codebook_export_query_count(api_as, project, admin_user, coder_a, django_assert_num_queries, item_count):
    for i in range(item_count):
        services.add_node(actor=admin_user, project=project, name=f"Node {i}")
    client = api_as(coder_a)

    with django_assert_num_queries(3):  # token + user, membership, nodes
        response = client.get(BASE + "nodes/export/csv/")

    assert len(csv_rows(response)) == item_count + 1


def test_an_admin_imports_a_codebook_csv(api_as, codebook, project, admin_user):
    table = (
        "path,description,colour,shortcut\n"
        "Supply-based,新定义,,\n"
        "Supply-based > Funding,资金,#445566,f\n"
        "New > Deep,,,\n"
    )
    events = Event.objects.count()

    response = upload(api_as(admin_user), CODEBOOK_IMPORT, "book.csv", table.encode("gb18030"))

    assert response.status_code == 200, response.content
    assert response.json() == {"created": 3, "updated": 1, "unchanged": 0}  # Funding, New, New > Deep; Supply-based
    nodes = {n.name: n for n in Node.objects.filter(project=project)}
    assert set(nodes) == {"Supply-based", "Talent", "Demand-based", "Funding", "New", "Deep"}
    assert (nodes["Supply-based"].description, nodes["Supply-based"].colour) == ("新定义", "#112233")
    assert (nodes["Funding"].parent_id, nodes["Funding"].colour, nodes["Funding"].shortcut) == (
        codebook["supply"].pk,
        "#445566",
        "f",
    )
    assert nodes["Deep"].parent_id == nodes["New"].pk
    actions = list(Event.objects.order_by("pk")[events:].values_list("action", "actor"))
    assert actions == [("node.update", admin_user.pk)] + [("node.create", admin_user.pk)] * 3


def test_an_exported_codebook_imports_into_another_project_unchanged(api_as, codebook, admin_user):
    exported = body_of(api_as(admin_user).get(BASE + "nodes/export/json/"))
    other = services.create_project(actor=None, slug="other", name="Other")
    services.set_membership(actor=None, project=other, user=admin_user, role="admin")
    client = api_as(admin_user)

    response = upload(client, "/api/projects/other/nodes/import/", "book.json", exported)

    assert response.json() == {"created": 3, "updated": 0, "unchanged": 0}
    assert json.loads(body_of(client.get("/api/projects/other/nodes/export/json/"))) == CODEBOOK_JSON


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("book.txt", b"path\nA\n", "book.txt is not a codebook file; use .json or .csv"),
        ("book.json", b"{not json", "book.json"),
        ("book.csv", b"path,colour\nA,red\n", "row 2"),
        ("book.csv", b"path,shortcut\nA,s\nB,s\n", "row 3"),  # a shortcut taken twice
    ],
)
def test_a_bad_codebook_is_refused_and_changes_nothing(api_as, codebook, admin_user, name, content, message):
    client = api_as(admin_user)
    before = database_state()

    response = upload(client, CODEBOOK_IMPORT, name, content)

    assert response.status_code == 400 and list(response.json()) == ["file"]
    assert any(message in problem for problem in response.json()["file"]), response.json()
    assert database_state() == before


def test_a_codebook_over_its_limit_is_413(api_as, project, admin_user):
    client = api_as(admin_user)
    before = database_state()

    response = upload(client, CODEBOOK_IMPORT, "book.csv", b"path\n" + b"A\n" * MB)

    assert response.status_code == 413 and "book.csv is 2.0 MB" in response.json()["detail"]
    assert database_state() == before


@pytest.mark.parametrize(("persona", "status"), [("supervisor", 403), ("coder_a", 403), ("outsider", 404)])
def test_only_admins_import_a_codebook(api_as, codebook, persona, status, request):
    client = api_as(request.getfixturevalue(persona))
    before = database_state()

    response = upload(client, CODEBOOK_IMPORT, "book.csv", b"path\nNew\n")

    assert response.status_code == status
    assert database_state() == before


# --- the reference list as a file ------------------------------------------------------------------


def expected_rows(references, path="Supply-based") -> list[list[str]]:
    """The rows export_references writes, spelled out from the references themselves."""
    rows = []
    for ref in sorted(references, key=lambda r: (r.start, r.end, r.pk)):
        clause = ref.clause.number
        layer = "consensus" if ref.consensus else ref.coder.username
        label, number, title = f"1-{clause}", "1", ref.policy.title
        offsets = [str(ref.start), str(ref.end)]
        rows.append(
            [label, number, title, str(clause), path, layer, *offsets, ref.text, ref.memo, ref.created_at.isoformat()]
        )
    return rows


HEADER = ["label", "policy", "policy_title", "clause", "node", "layer", "start", "end", "text", "memo", "created"]


@pytest.mark.parametrize("persona", ["admin_user", "supervisor"])
def test_reviewers_export_every_layer(api_as, layers, persona, request):
    response = api_as(request.getfixturevalue(persona)).get(BASE + "references/export/csv/")

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="study-references.csv"'
    assert csv_rows(response) == [HEADER, *expected_rows(layers.values())]


def test_the_csv_export_is_the_commands_file(api_as, layers, supervisor, tmp_path):
    path = tmp_path / "references.csv"
    call_command("export_references", "--project", "study", "-o", str(path), stdout=io.StringIO())

    content = body_of(api_as(supervisor).get(BASE + "references/export/csv/"))

    assert content == path.read_bytes() and content.startswith(b"\xef\xbb\xbflabel,")
    assert content.count(b"\n") == 1 + len(layers) + sum(ref.text.count("\n") for ref in layers.values())


def test_a_blind_coder_exports_their_own_layer_whatever_the_filter(api_as, layers, coder_a):
    client = api_as(coder_a)
    own = expected_rows([layers["coder_a"]])

    assert csv_rows(client.get(BASE + "references/export/csv/")) == [HEADER, *own]
    for query in ["layer=consensus", "coder=coder_b", "clause=1-2", "policy=1&layer=coder"]:
        rows = csv_rows(client.get(f"{BASE}references/export/csv/?{query}"))
        assert rows == [HEADER, *(own if query.endswith("layer=coder") else [])], query


def test_filters_narrow_the_export_as_they_narrow_the_list(api_as, layers, supervisor):
    client = api_as(supervisor)

    consensus = csv_rows(client.get(BASE + "references/export/csv/?layer=consensus"))
    clause = csv_rows(client.get(BASE + "references/export/csv/?clause=1-2"))

    assert consensus == [HEADER, *expected_rows([layers["consensus"]])]
    assert clause == [HEADER, *expected_rows([layers["coder_b"]])]


def test_the_xlsx_export_holds_the_same_rows(api_as, layers, supervisor):
    response = api_as(supervisor).get(BASE + "references/export/xlsx/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = openpyxl.load_workbook(io.BytesIO(body_of(response))).active
    rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    assert rows == [HEADER, *expected_rows(layers.values())]


def test_reference_export_refusals(api_as, anonymous, layers, coder_a, outsider):
    client = api_as(coder_a)

    bad = client.get(BASE + "references/export/csv/?clause=one")
    assert bad.status_code == 400 and list(bad.json()) == ["clause"]
    assert client.get(BASE + "references/export/pdf/").status_code == 404
    assert api_as(outsider).get(BASE + "references/export/csv/").status_code == 404
    assert anonymous.get(BASE + "references/export/csv/").status_code == 401


@pytest.mark.parametrize("item_count", [1, 3])
def test_reference_export_query_count(api_as, policy, node, supervisor, django_assert_num_queries, item_count):
    for number in range(1, item_count + 1):
        code(policy, node, supervisor, number, consensus=True)
    client = api_as(supervisor)

    with django_assert_num_queries(4):  # token + user, membership, codebook, references
        rows = csv_rows(client.get(BASE + "references/export/csv/"))

    assert len(rows) == item_count + 1


# --- REFI-QDA ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["admin_user", "supervisor"])
def test_reviewers_download_the_project_as_qdpx(api_as, layers, persona, request):
    response = api_as(request.getfixturevalue(persona)).get(QDPX)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="study.qdpx"'
    parsed = refi.read_file(body_of(response), "study.qdpx")
    [source] = parsed.sources
    assert source.name == layers["coder_a"].policy.title
    # One selection per reference, in every layer (the consensus as a user of its own).
    spans = sorted((s.start, s.end) for s in source.selections)
    assert spans == sorted((r.start, r.end) for r in layers.values())


def test_the_nvivo_download_counts_positions_in_utf16(api_as, layers, supervisor):
    client = api_as(supervisor)
    # Clause 3 of the sample text holds its one character past U+FFFF (𠀀), before the clause's end.
    end = layers["consensus"].end

    plain = body_of(client.get(QDPX))
    nvivo = body_of(client.get(QDPX + "?nvivo=true"))

    assert refi.check_qdpx(nvivo) == []  # a valid REFI-QDA archive
    qde = unzip(nvivo)["project.qde"]
    assert b'endPosition="%d"' % (end + 1) in qde and b'endPosition="%d"' % end not in qde
    assert b'endPosition="%d"' % end in unzip(plain)["project.qde"]


@pytest.mark.parametrize(("query", "fmt"), [("", "qdpx"), ("?nvivo=true", "nvivo.qdpx"), (None, "qdc")])
def test_refi_downloads_are_the_pages_files(api_as, client, layers, supervisor, query, fmt):
    client.force_login(supervisor)
    page = client.get(reverse("coding:interchange_export", args=["study", fmt]))

    api = api_as(supervisor).get(QDC if query is None else QDPX + query)

    assert page.status_code == api.status_code == 200
    assert api["Content-Disposition"] == page["Content-Disposition"] == f'attachment; filename="study.{fmt}"'
    assert api["Content-Type"] == page["Content-Type"]
    content = body_of(page)  # a streamed body reads once
    assert body_of(api) == content and len(content) > 100


def test_reviewers_download_the_codebook_as_qdc(api_as, codebook, supervisor):
    response = api_as(supervisor).get(QDC)

    assert response.status_code == 200 and response["Content-Type"] == "application/xml"
    parsed = refi.read_file(body_of(response), "study.qdc")
    assert [(c.name, [child.name for child in c.children]) for c in parsed.codes] == [
        ("Supply-based", ["Talent"]),
        ("Demand-based", []),
    ]


def test_a_codebook_without_nodes_has_no_qdc(api_as, project, supervisor):
    response = api_as(supervisor).get(QDC)

    assert response.status_code == 404
    assert response.json() == {"detail": "The project has no nodes, so there is no codebook to export."}


def test_refi_downloads_refusals(api_as, anonymous, layers, coder_a, outsider):
    for url in (QDPX, QDC):
        assert api_as(coder_a).get(url).status_code == 403, url  # as on the page: coders do not download
        assert api_as(outsider).get(url).status_code == 404, url
        assert anonymous.get(url).status_code == 401, url
    bad = api_as(layers["consensus"].created_by).get(QDPX + "?nvivo=perhaps")
    assert bad.status_code == 400 and list(bad.json()) == ["nvivo"]


def test_an_admin_imports_a_qdpx_and_gets_the_report(api_as, project, admin_user):
    raw = "第一条　甲乙。\n第二条　丙丁。\n"
    data = qdpx(project_xml(selection_xml(raw.index("乙"), raw.index("丙") + 1)), raw.encode())

    response = upload(api_as(admin_user), REFI_IMPORT, "p.qdpx", data, rule="article")

    assert response.status_code == 201, response.content
    report = response.json()
    event = Event.objects.get(project=project, action="project.import")
    assert report["id"] == event.pk and event.actor == admin_user
    assert (report["file_name"], report["kind"], report["project"], report["rule"]) == (
        "p.qdpx",
        "qdpx",
        "study",
        "article",
    )
    # One selection across two articles: one reference per clause it touches.
    assert (report["policies_created"], report["clauses_created"], report["selections"]) == (1, 2, 1)
    assert (report["references_created"], report["split_total"], report["unplaced_total"]) == (2, 1, 0)
    assert report["split"][0]["clauses"] == ["1-1", "1-2"]
    policy = Policy.objects.get(project=project, refi_guid=SOURCE)
    assert Node.objects.get(project=project, refi_guid=CODE).name == "Talent"
    assert [r.text for r in Reference.objects.filter(policy=policy).order_by("start")] == ["乙。", "第二条　丙"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("p.qdpx", b"not a zip", "is not a zip archive"),
        ("p.qde", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "document type"),
        ("p.qdpx", qdpx(project_xml(selection_xml(0, 900))), "outside its text"),
        ("p.docx", b"PK\x03\x04", "not .docx"),
    ],
)
def test_a_bad_refi_file_is_refused_and_changes_nothing(api_as, project, admin_user, name, data, message):
    client = api_as(admin_user)
    before = database_state()

    response = upload(client, REFI_IMPORT, name, data)

    assert response.status_code == 400 and list(response.json()) == ["file"]
    [problem] = response.json()["file"]
    assert message in problem and problem.endswith("Nothing was imported.")
    assert database_state() == before


def test_importing_the_projects_own_export_again_is_refused(api_as, layers, admin_user):
    client = api_as(admin_user)
    exported = body_of(client.get(QDPX))
    before = database_state()

    response = upload(client, REFI_IMPORT, "study.qdpx", exported)

    assert response.status_code == 400 and "already in this project" in response.json()["file"][0]
    assert database_state() == before


def test_a_refi_file_over_the_upload_limit_is_413(api_as, project, admin_user, settings):
    settings.MAX_UPLOAD_MB = 0
    client = api_as(admin_user)
    before = database_state()

    response = upload(client, REFI_IMPORT, "p.qdpx", qdpx(project_xml()))

    assert response.status_code == 413
    assert database_state() == before


@pytest.mark.parametrize(("persona", "status"), [("supervisor", 403), ("coder_a", 403), ("outsider", 404)])
def test_only_admins_import_refi_files(api_as, project, persona, status, request):
    client = api_as(request.getfixturevalue(persona))
    before = database_state()

    response = upload(client, REFI_IMPORT, "p.qdpx", qdpx(project_xml()))

    assert response.status_code == status
    assert database_state() == before


def test_file_names_that_a_database_cannot_hold_are_cleaned(api_as, project, admin_user):
    response = upload(api_as(admin_user), REFI_IMPORT, "p\x00\x1f.qdpx", qdpx(project_xml()))

    assert response.status_code == 201, response.content
    assert response.json()["file_name"] == "p.qdpx"
    assert Event.objects.get(action="project.import").after["file_name"] == "p.qdpx"
