"""The REFI-QDA page: reviewers download the project (.qdpx) or codebook (.qdc); admins
upload a file and read the import report. Outsiders get 404, coders 403."""

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from coding import refi, services
from coding.models import Event, Node, Policy, Reference
from tests.coding.test_refi import CODE, SOURCE, project_xml, qdpx, selection_xml, table_counts, unzip

pytestmark = pytest.mark.django_db


def page():
    return reverse("coding:interchange", args=["study"])


def export(fmt: str) -> str:
    return reverse("coding:interchange_export", args=["study", fmt])


def upload(client, data: bytes, name: str = "p.qdpx", rule: str = ""):
    return client.post(
        reverse("coding:interchange_import", args=["study"]),
        {"file": SimpleUploadedFile(name, data), "rule": rule},
    )


@pytest.fixture
def coded(project, admin_user, coder_a, node, policy):
    clause = policy.clauses.get(number=1)
    services.add_reference(
        actor=coder_a, clause=clause, node=node, start=clause.start, end=clause.end, coder=coder_a, memo="m"
    )
    return project


def test_anonymous_users_are_sent_to_login(client, coded):
    for url in [page(), export("qdpx"), export("qdc")]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_outsiders_get_404_everywhere(client, coded, outsider):
    client.force_login(outsider)
    before = table_counts()

    for url in [page(), export("qdpx"), export("qdc")]:
        assert client.get(url).status_code == 404, url
    assert upload(client, qdpx(project_xml(selection_xml(0, 6)))).status_code == 404
    assert table_counts() == before


def test_coders_may_neither_download_nor_import(client, coded, coder_a):
    client.force_login(coder_a)
    before = table_counts()

    for url in [page(), export("qdpx"), export("qdc")]:
        assert client.get(url).status_code == 403, url
    assert upload(client, qdpx(project_xml(selection_xml(0, 6)))).status_code == 403
    assert table_counts() == before


@pytest.mark.parametrize("persona", ["admin_user", "supervisor"])
def test_reviewers_download_the_project_and_the_codebook(client, coded, persona, request):
    client.force_login(request.getfixturevalue(persona))

    qdpx_response = client.get(export("qdpx"))
    qdc_response = client.get(export("qdc"))

    assert qdpx_response.status_code == 200
    assert qdpx_response["Content-Type"] == "application/zip"
    assert 'attachment; filename="study.qdpx"' in qdpx_response["Content-Disposition"]
    data = b"".join(qdpx_response.streaming_content)
    assert refi.check_qdpx(data) == []
    out = io.BytesIO()
    refi.export_project(coded, out)
    assert data == out.getvalue()
    assert qdc_response.status_code == 200
    assert 'filename="study.qdc"' in qdc_response["Content-Disposition"]
    assert b"<CodeBook" in b"".join(qdc_response.streaming_content)


def test_the_nvivo_download_counts_positions_in_utf16(client, coded, admin_user):
    client.force_login(admin_user)

    response = client.get(export("nvivo.qdpx"))

    qde = unzip(b"".join(response.streaming_content))["project.qde"]
    assert refi.ORIGIN_UTF16.encode() in qde
    assert client.get(export("docx")).status_code == 404


def test_only_admins_see_the_upload_form_and_reviewers_see_the_nav_link(client, coded, admin_user, supervisor, coder_a):
    client.force_login(supervisor)
    html = client.get(page()).content.decode()
    assert 'href="/projects/study/interchange/export.qdpx"' in html
    assert 'enctype="multipart/form-data"' not in html

    client.force_login(admin_user)
    assert 'enctype="multipart/form-data"' in client.get(page()).content.decode()

    home = reverse("coding:project_home", args=["study"])
    assert 'href="/projects/study/interchange/"' in client.get(home).content.decode()
    client.force_login(coder_a)
    assert 'href="/projects/study/interchange/"' not in client.get(home).content.decode()


def test_an_admin_imports_a_file_and_reads_the_report(client, project, admin_user):
    client.force_login(admin_user)
    raw = "第一条　甲乙。\n第二条　丙丁。\n"
    data = qdpx(project_xml(selection_xml(raw.index("乙"), raw.index("丙") + 1)), raw.encode())

    response = upload(client, data, rule="article")

    event = Event.objects.get(project=project, action="project.import")
    assert response.status_code == 302
    assert response["Location"] == reverse("coding:interchange_report", args=["study", event.pk])
    assert Policy.objects.get(project=project, refi_guid=SOURCE).title == "Doc"
    assert Node.objects.get(project=project, refi_guid=CODE).name == "Talent"
    assert Reference.objects.filter(policy__project=project).count() == 2
    report = client.get(response["Location"])
    html = report.content.decode()
    assert report.status_code == 200
    assert "Selections split across clauses (1)" in html
    assert "1-1, 1-2" in html
    listing = client.get(page()).content.decode()
    assert "p.qdpx" in listing and reverse("coding:interchange_report", args=["study", event.pk]) in listing


def test_an_admin_imports_a_codebook_into_the_project(client, coded, admin_user, supervisor):
    client.force_login(supervisor)
    book = b"".join(client.get(export("qdc")).streaming_content)
    book = book.replace(b'name="Supply-based"', b'name="Renamed elsewhere"')
    book = book.replace(b"</Codes>", f'<Code guid="{CODE}" name="New code" isCodable="true"/></Codes>'.encode())
    client.force_login(admin_user)

    response = upload(client, book, name="book.qdc")

    assert response.status_code == 302
    assert sorted(Node.objects.filter(project=coded).values_list("name", flat=True)) == ["New code", "Supply-based"]
    html = client.get(response["Location"]).content.decode()
    assert "1 node created, 1 matched to existing nodes" in html


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("p.qdpx", b"not a zip", "is not a zip archive"),
        ("p.qde", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "document type"),
        ("p.qdpx", qdpx(project_xml(selection_xml(0, 900))), "outside its text"),
    ],
)
def test_a_bad_upload_is_refused_with_its_message_and_writes_nothing(client, project, admin_user, name, data, message):
    client.force_login(admin_user)
    before = table_counts()

    response = upload(client, data, name=name)

    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and "Nothing was imported." in html
    assert table_counts() == before


def test_an_upload_over_the_size_limit_is_refused(client, project, admin_user, settings):
    settings.MAX_UPLOAD_MB = 0
    client.force_login(admin_user)

    response = upload(client, qdpx(project_xml()))

    assert response.status_code == 400
    assert "uploads may be at most 0 MB" in response.content.decode()


def test_importing_the_projects_own_export_again_is_refused(client, coded, admin_user):
    client.force_login(admin_user)
    data = b"".join(client.get(export("qdpx")).streaming_content)
    before = table_counts()

    response = upload(client, data, name="study.qdpx")

    assert response.status_code == 400
    assert "already in this project" in response.content.decode()
    assert table_counts() == before


def test_reports_are_scoped_to_their_project(client, project, admin_user, outsider):
    other = services.create_project(actor=None, slug="other", name="Other")
    _, report = services.import_refi(actor=None, parsed=refi.read_file(qdpx(project_xml()), "p.qdpx"), project=other)
    client.force_login(admin_user)

    assert client.get(reverse("coding:interchange_report", args=["study", report.event_id])).status_code == 404
    policy_event = Event.objects.filter(project=other, action="policy.create").first()
    assert client.get(reverse("coding:interchange_report", args=["study", policy_event.pk])).status_code == 404


@pytest.mark.parametrize("persona", ["admin_user", "supervisor"])
def test_the_page_queries_do_not_grow_with_imports(client, project, admin_user, supervisor, persona, request):
    client.force_login(request.getfixturevalue(persona))

    def imported(n: int) -> None:
        data = qdpx(
            project_xml(selection_xml(0, 6)).replace(SOURCE.encode(), f"{n:08d}-0000-0000-0000-000000000000".encode())
        )
        data = data.replace(
            f"Sources/{SOURCE.upper()}.TXT".encode(), f"Sources/{n:08d}-0000-0000-0000-000000000000.txt".encode()
        )
        services.import_refi(actor=admin_user, parsed=refi.read_file(data, f"{n}.qdpx"), project=project)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(page()).status_code == 200
        return len(ctx)

    imported(1)
    with_one = queries()
    imported(2)
    imported(3)
    assert queries() == with_one


def test_archive_helper_builds_what_the_tests_upload():
    with zipfile.ZipFile(io.BytesIO(qdpx(project_xml()))) as zf:
        assert sorted(zf.namelist()) == ["Sources/" + SOURCE.upper() + ".TXT", "project.qde"]
