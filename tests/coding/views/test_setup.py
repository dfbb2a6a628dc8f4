"""The setup pages: policy import (upload → preview → confirm), clause review, members."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from coding import services
from coding.models import Clause, Event, ImportUpload, Membership, Policy, Reference, Role
from tests.coding.documents import database_state, make_docx, make_zip, policy_text, zip_bomb
from tests.factories import ReferenceFactory, UserFactory

pytestmark = pytest.mark.django_db

IMPORT = reverse("coding:policy_import", args=["study"])
CLAUSES = reverse("coding:clause_review_list", args=["study"])
MEMBERS = reverse("coding:members", args=["study"])


def review_url(number: int = 1) -> str:
    return reverse("coding:clause_review", args=["study", number])


def upload_zip(client, entries, **data):
    file = SimpleUploadedFile("policies.zip", make_zip(entries), content_type="application/zip")
    return client.post(IMPORT, {"file": file, "rule": "article", **data})


def streamed(response) -> str:
    return b"".join(response.streaming_content).decode()


def html_of(response) -> str:
    return response.content.decode()


# --- permissions -----------------------------------------------------------------------------


def _setup_requests(policy):
    upload = ImportUpload.objects.create(
        project=policy.project, name="x.csv", data=b"title\nA\n", size=8, sha256="0", rule="article", summary={}
    )
    preview = reverse("coding:policy_import_preview", args=["study", upload.pk])
    confirm = reverse("coding:policy_import_confirm", args=["study", upload.pk])
    return [
        ("get", IMPORT),
        ("post", IMPORT),
        ("get", preview),
        ("post", confirm),
        ("get", CLAUSES),
        ("get", review_url()),
        ("post", review_url()),
        ("get", MEMBERS),
        ("post", MEMBERS),
    ]


@pytest.mark.parametrize("persona", ["coder_a", "supervisor"])
def test_only_admins_reach_setup_pages(client, policy, persona, request):
    client.force_login(request.getfixturevalue(persona))
    requests = _setup_requests(policy)
    before = database_state()

    for method, url in requests:
        response = getattr(client, method)(url, {"action": "merge", "clause": 1, "username": "x", "role": "admin"})
        assert response.status_code == 403, (method, url)

    assert database_state() == before


def test_outsiders_get_404_and_anonymous_users_log_in(client, policy, outsider):
    requests = _setup_requests(policy)
    for method, url in requests:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    client.force_login(outsider)
    for method, url in requests:
        assert getattr(client, method)(url).status_code == 404, (method, url)


def test_admins_see_setup_links_and_coders_do_not(client, policy, admin_user, coder_a):
    home = reverse("coding:project_home", args=["study"])
    client.force_login(admin_user)
    html = html_of(client.get(home))
    for url in [IMPORT, CLAUSES, MEMBERS, reverse("coding:codebook", args=["study"])]:
        assert f'href="{url}"' in html

    client.force_login(coder_a)
    html = html_of(client.get(home))
    assert f'href="{reverse("coding:codebook", args=["study"])}"' in html
    assert IMPORT not in html and MEMBERS not in html and CLAUSES not in html


# --- import ----------------------------------------------------------------------------------


def test_upload_preview_confirm_imports_with_progress(client, project, admin_user):
    client.force_login(admin_user)
    entries = {"01.txt": policy_text(1).encode("gb18030"), "02.docx": make_docx(policy_text(2).split("\n"))}

    response = upload_zip(client, entries)

    upload = ImportUpload.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("coding:policy_import_preview", args=["study", upload.pk])
    assert Policy.objects.count() == 0
    assert Event.objects.filter(action="import.upload").count() == 1

    html = html_of(client.get(response["Location"]))
    assert "<dt>Policies</dt><dd>2 to create</dd>" in html
    assert "94 under the rule “article”" in html
    assert "GB18030 × 1; docx (UTF-8 XML) × 1" in html
    assert '<td class="num">75</td>' in html and '<td class="num">19</td>' in html
    assert "Confirm import" in html

    response = client.post(reverse("coding:policy_import_confirm", args=["study", upload.pk]))
    page = streamed(response)
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert '<progress max="2" value="2">100%</progress>' in page
    assert "2 policies created, 0 updated; 94 clauses." in page
    assert page.rstrip().endswith("</html>")
    assert list(Policy.objects.order_by("number").values_list("number", "title")) == [
        (1, "济宁市智慧城市促进条例"),
        (2, "杭州城市大脑赋能城市治理促进条例"),
    ]
    upload.refresh_from_db()
    assert upload.status == ImportUpload.Status.IMPORTED and bytes(upload.data) == b""
    assert Event.objects.filter(action="policy.create", actor=admin_user).count() == 2


def test_confirming_twice_imports_once(client, project, admin_user):
    client.force_login(admin_user)
    upload_zip(client, {"01.txt": policy_text(1)})
    upload = ImportUpload.objects.get()
    confirm = reverse("coding:policy_import_confirm", args=["study", upload.pk])
    streamed(client.post(confirm))

    response = client.post(confirm, follow=True)

    assert "was imported already" in html_of(response)
    assert Policy.objects.count() == 1


def test_upload_with_problems_shows_them_all_and_changes_nothing(client, project, admin_user, policy):
    client.force_login(admin_user)
    entries = {
        "meta.csv": "number,title,file,release_date\n1,甲,a.txt,2021\n2,乙,b.txt,2021.13.45\n",
        "a.txt": "第一条",
    }
    before = database_state()

    response = upload_zip(client, entries)

    html = html_of(response)
    assert response.status_code == 200
    assert "3 problems in policies.zip: nothing was imported" in html
    assert "meta.csv, row 2, number: 1 already exists in this project (use --update to change it)" in html
    assert "meta.csv, row 3, release_date: &#x27;2021.13.45&#x27; is not a date" in html
    assert "meta.csv, row 3, file: &#x27;b.txt&#x27; is not in the archive" in html
    assert database_state() == before


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bomb.zip", zip_bomb(20), "looks like a zip bomb"),
        ("evil.zip", make_zip({"../evil.txt": "x"}), "leads outside the archive (path traversal)"),
        ("evil.docx", make_docx(["x"], doctype='<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'), "XXE"),
        ("noise.txt", bytes(range(256)) * 8, "not text"),
    ],
)
def test_hostile_uploads_are_refused_and_change_nothing(client, project, admin_user, name, content, message):
    client.force_login(admin_user)
    before = database_state()

    response = client.post(IMPORT, {"file": SimpleUploadedFile(name, content), "rule": "article"})

    assert message in html_of(response)
    assert database_state() == before


def test_oversize_upload_is_refused_by_the_form(client, project, admin_user, settings):
    settings.MAX_UPLOAD_MB = 1
    client.force_login(admin_user)

    response = client.post(IMPORT, {"file": SimpleUploadedFile("big.txt", b"a" * (1024 * 1024 + 1)), "rule": "article"})

    assert "big.txt is 1.0 MB; the limit is 1 MB." in html_of(response)
    assert ImportUpload.objects.count() == 0


def test_confirm_rechecks_and_refuses_when_the_project_changed_meanwhile(client, project, admin_user):
    client.force_login(admin_user)
    upload_zip(client, {"meta.csv": "number,title,text\n5,甲,第一条 甲。\n"})
    upload = ImportUpload.objects.get()
    services.create_policy(actor=admin_user, project=project, number=5, title="先到", text="")
    before = database_state()

    page = streamed(client.post(reverse("coding:policy_import_confirm", args=["study", upload.pk])))

    assert "Nothing was imported" in page
    assert "meta.csv, row 2, number: 5 already exists in this project" in page
    assert database_state() == before


def test_update_upload_attaches_text_to_a_catalogue_entry(client, project, admin_user):
    services.create_policy(actor=admin_user, project=project, number=3, title="济宁市智慧城市促进条例", text="")
    client.force_login(admin_user)

    upload_zip(client, {"m.csv": "编号,文件\n3,01.txt\n", "01.txt": policy_text(1).encode("utf-16")}, update="on")
    upload = ImportUpload.objects.get()
    preview = html_of(client.get(reverse("coding:policy_import_preview", args=["study", upload.pk])))
    page = streamed(client.post(reverse("coding:policy_import_confirm", args=["study", upload.pk])))

    assert "1 to update" in preview and "UTF-16LE (BOM)" in preview
    assert "0 policies created, 1 updated" in page
    assert Policy.objects.get(number=3).text == policy_text(1)


def test_a_new_upload_replaces_the_same_admins_pending_one(client, project, admin_user):
    client.force_login(admin_user)
    upload_zip(client, {"a.txt": "第一条 甲。"})
    upload_zip(client, {"b.txt": "第一条 乙。"})

    assert list(ImportUpload.objects.values_list("name", "status")) == [("policies.zip", "pending")]
    assert ImportUpload.objects.get().summary["rows"][0]["source"] == "b.txt"


def test_import_page_lists_recent_uploads_in_constant_queries(client, project, admin_user):
    client.force_login(admin_user)
    counts = []
    for n in (1, 3):
        ImportUpload.objects.all().delete()
        for i in range(n):
            ImportUpload.objects.create(
                project=project,
                uploaded_by=admin_user,
                name=f"{i}.csv",
                data=b"",
                size=0,
                sha256="",
                rule="article",
                summary={"policies": 40 + i},
            )
        with CaptureQueriesContext(connection) as queries:
            html = html_of(client.get(IMPORT))
        counts.append(len(queries))
        assert re.findall(r'<td class="num">(\d+)</td>', html) == [str(40 + i) for i in reversed(range(n))]

    assert counts[0] == counts[1]


# --- clause review ---------------------------------------------------------------------------


@pytest.mark.parametrize("item_count", [1, 3])
def test_clause_list_counts_clauses_and_references_in_constant_queries(
    client, project, admin_user, item_count, django_assert_num_queries
):
    for i in range(item_count):
        services.create_policy(actor=admin_user, project=project, title=f"P{i}", text="第一条 甲。\n第二条 乙。\n")
    clause = Clause.objects.filter(number=1).first()
    ReferenceFactory(clause=clause, coder=admin_user)
    client.force_login(admin_user)

    with django_assert_num_queries(5):  # session, user, membership+project, count, one page of policies
        html = html_of(client.get(CLAUSES))

    counts = re.findall(r'<td class="num">(\d+)</td>\s*<td class="num">(\d+)</td>\s*</tr>', html)
    assert counts == [("2", "1")] + [("2", "0")] * (item_count - 1)  # clauses, references


def test_resegment_changes_the_clauses_and_is_refused_once_coded(client, policy, admin_user):
    client.force_login(admin_user)

    response = client.post(review_url(), {"action": "resegment", "rule": "sentence"}, follow=True)

    assert "Policy 1 now has" in html_of(response)
    policy.refresh_from_db()
    assert policy.segmentation_rule == "sentence"
    ReferenceFactory(clause=Clause.objects.filter(policy=policy).first(), coder=admin_user)
    before = database_state()

    response = client.post(review_url(), {"action": "resegment", "rule": "article"}, follow=True)

    assert "Policy 1 already has 1 reference(s); re-segmenting it would move them off their text." in html_of(response)
    assert database_state() == before


def test_split_at_a_sentence_boundary_renumbers_the_clauses_after_it(client, admin_user, project):
    text = "第一条　甲。乙。\n第二条　丙。\n第三条　丁。\n"
    policy = services.create_policy(actor=admin_user, project=project, title="T", text=text)
    client.force_login(admin_user)
    html = html_of(client.get(review_url()))
    assert 'name="offset" value="6"' in html  # after 第一条　甲。

    client.post(review_url(), {"action": "split", "clause": 1, "offset": 6})

    clauses = [(c.number, text[c.start : c.end]) for c in Clause.objects.filter(policy=policy).order_by("start")]
    assert clauses == [(1, "第一条　甲。"), (2, "乙。"), (3, "第二条　丙。"), (4, "第三条　丁。")]
    event = Event.objects.get(action="clause.split")
    assert event.after["renumbered"] == 2 and event.target_label == "1-1"


def test_merge_joins_a_clause_with_the_next_and_keeps_later_numbers(client, admin_user, project):
    text = "第一条　甲。\n第二条　乙。\n第三条　丙。\n"
    policy = services.create_policy(actor=admin_user, project=project, title="T", text=text)
    client.force_login(admin_user)

    response = client.post(review_url(), {"action": "merge", "clause": 1}, headers={"HX-Request": "true"})

    html = html_of(response)
    assert html.startswith('\n<div id="clause-review">') or html.lstrip().startswith('<div id="clause-review">')
    assert "<html" not in html and "merged with the clause after it" in html
    clauses = [(c.number, text[c.start : c.end]) for c in Clause.objects.filter(policy=policy).order_by("start")]
    assert clauses == [(1, "第一条　甲。\n第二条　乙。"), (3, "第三条　丙。")]


def test_split_and_merge_problems_are_shown_and_change_nothing(client, policy, admin_user):
    client.force_login(admin_user)
    before = database_state()

    for data, message in [
        ({"action": "split", "clause": 1, "offset": 999}, "split it at an offset strictly inside that"),
        ({"action": "split", "clause": 42, "offset": 2}, "Clause 1-42 does not exist."),
        ({"action": "merge", "clause": 3}, "Clause 1-3 is the last clause"),
        ({"action": "explode"}, "Unknown action."),
    ]:
        html = html_of(client.post(review_url(), data, follow=True))
        assert message in html, message

    assert database_state() == before


def test_clause_review_of_a_catalogue_entry_explains_what_to_do(client, project, admin_user):
    services.create_policy(actor=admin_user, project=project, title="Catalogue only", text="")
    client.force_login(admin_user)

    assert "catalogue entry without text" in html_of(client.get(review_url()))


# --- members ---------------------------------------------------------------------------------


@pytest.mark.parametrize("item_count", [1, 3])
def test_members_page_in_constant_queries(client, project, admin_user, item_count, django_assert_num_queries):
    for i in range(item_count):
        services.set_membership(actor=None, project=project, user=UserFactory(username=f"m{i}"), role=Role.CODER)
    client.force_login(admin_user)

    with django_assert_num_queries(5):  # session, user, membership+project, members, reference counts
        html = html_of(client.get(MEMBERS))

    assert html.count('<tr id="member-') == item_count + 1


def test_admin_adds_changes_and_removes_members_whose_references_stay(client, project, admin_user, policy):
    UserFactory(username="dana")
    client.force_login(admin_user)

    html = html_of(client.post(MEMBERS, {"action": "add", "username": "dana", "role": "coder"}, follow=True))
    assert "dana added as coder." in html
    membership = Membership.objects.get(project=project, user__username="dana")
    reference = ReferenceFactory(clause=Clause.objects.filter(policy=policy).first(), coder=membership.user)

    client.post(MEMBERS, {"action": "role", "member": membership.pk, "role": "supervisor"})
    membership.refresh_from_db()
    assert membership.role == Role.SUPERVISOR

    html = html_of(client.post(MEMBERS, {"action": "remove", "member": membership.pk}, follow=True))
    assert "dana removed; their references stay, attributed to them." in html
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert Reference.objects.get(pk=reference.pk).coder.username == "dana"
    assert "Former members with references" in html and "<tr><td>dana</td>" in html
    assert list(
        Event.objects.filter(action__startswith="membership.", actor=admin_user).values_list("action", flat=True)
    )


def test_member_problems_are_explained(client, project, admin_user):
    client.force_login(admin_user)
    own = Membership.objects.get(project=project, user=admin_user)

    for data, message in [
        ({"action": "add", "username": "ghost", "role": "coder"}, "There is no user &#x27;ghost&#x27;"),
        ({"action": "role", "member": own.pk, "role": "coder"}, "admin_p is the project&#x27;s only admin"),
        ({"action": "remove", "member": own.pk}, "admin_p is the project&#x27;s only admin"),
        ({"action": "remove", "member": 999999}, "not a member of this project"),
    ]:
        html = html_of(client.post(MEMBERS, data, follow=True))
        assert message in html, message

    own.refresh_from_db()
    assert own.role == Role.ADMIN


def test_members_htmx_returns_the_list_fragment(client, project, admin_user):
    UserFactory(username="erin")
    client.force_login(admin_user)

    response = client.post(
        MEMBERS, {"action": "add", "username": "erin", "role": "coder"}, headers={"HX-Request": "true"}
    )

    html = html_of(response)
    assert '<div id="member-list">' in html and "<html" not in html and "erin added as coder." in html
