"""import_policies (and the services behind it), import_codebook, export_codebook, add_member:
real files in, the database checked after; every refused import leaves every table as it was."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from coding import importing, services
from coding.models import Clause, Event, Membership, Node, Policy, Reference, Role
from tests.coding.documents import (
    POLICY_FILES,
    XXE_DOCTYPE,
    database_state,
    make_docx,
    make_pdf,
    make_zip,
    policy_text,
    random_bytes,
    table_counts,
    write_files,
    zip_bomb,
)
from tests.conftest import POLICY_TEXTS
from tests.factories import ReferenceFactory, UserFactory

pytestmark = pytest.mark.django_db

STUDY_CSV = POLICY_TEXTS.parents[2] / "main" / "fixtures" / "study_policies.csv"
if not STUDY_CSV.exists():  # a clone not named main: fixtures/ sits beside tests/
    STUDY_CSV = __import__("pathlib").Path(__file__).resolve().parents[2] / "fixtures" / "study_policies.csv"


def run(*args, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def refused(*args, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match=r"problem\(s\) found; nothing was imported"):
        call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


# --- real files in ---------------------------------------------------------------------------


def test_folder_of_the_17_texts_imports_each_with_its_clauses(project, admin_user):
    out, err = run("import_policies", str(POLICY_TEXTS), project="study", actor="admin_p")

    assert "17 created, 0 updated, 0 unchanged" in out
    assert "Skipped SOURCES.md" in out
    assert "Writing  [##############################] 100% 17/17" in err
    policies = list(Policy.objects.filter(project=project).order_by("number"))
    assert [p.number for p in policies] == list(range(1, 18))
    assert [p.text for p in policies] == [policy_text(i) for i in range(1, 18)]
    first = policies[0]
    assert first.title == "济宁市智慧城市促进条例" and first.segmentation_rule == "article"
    assert Clause.objects.filter(policy=first).exclude(number=0).count() == 74
    assert Clause.objects.filter(policy=first, number=74).exists()
    events = Event.objects.filter(project=project, action="policy.create")
    assert events.count() == 17 and {e.actor_id for e in events} == {admin_user.pk}
    assert events.get(target_id=first.pk).after["clauses"] == Clause.objects.filter(policy=first).count()


@pytest.mark.parametrize("codec", ["gb18030", "utf-16"])
def test_zip_of_reencoded_crlf_texts_stores_the_same_text_once(project, tmp_path, codec):
    entries = {p.name: p.read_text(encoding="utf-8").replace("\n", "\r\n").encode(codec) for p in POLICY_FILES}
    archive = tmp_path / "policies.zip"
    archive.write_bytes(make_zip(entries))

    run("import_policies", str(archive), project="study")

    texts = list(Policy.objects.filter(project=project).order_by("number").values_list("text", flat=True))
    assert texts == [policy_text(i) for i in range(1, 18)]
    assert "\r" not in "".join(texts)


def test_docx_and_pdf_documents_import(project, tmp_path):
    folder = write_files(
        tmp_path / "docs",
        {
            "a.docx": make_docx(policy_text(2).split("\n"), title="杭州城市大脑赋能城市治理促进条例"),
            "b.pdf": make_pdf([line for line in policy_text(4).split("\n") if line.strip()]),
            "c.html": "<html><head><title>Smart city notice</title></head><body><p>Article 1. Purpose.</p>",
        },
    )

    run("import_policies", str(folder), project="study", segment="paragraph")

    a, b, c = Policy.objects.filter(project=project).order_by("number")
    assert a.title == "杭州城市大脑赋能城市治理促进条例" and a.text == policy_text(2) + "\n"
    assert b.title == "国务院关于在线政务服务的若干规定" and b.text.count("\n") == 30
    assert (c.title, c.text, c.language) == ("Smart city notice", "Article 1. Purpose.\n", "en")
    assert {p.segmentation_rule for p in (a, b, c)} == {"paragraph"}


def test_study_catalogue_imports_66_entries_with_dates_at_their_precision(project):
    out, _ = run("import_policies", str(STUDY_CSV), project="study")

    assert "66 created" in out
    policies = {p.number: p for p in Policy.objects.filter(project=project)}
    assert len(policies) == 66
    assert (policies[57].release_date, policies[57].implementation_date) == ("2011", "2011")
    assert policies[2].release_date == "2021-04-28"
    assert policies[1].release_departments == [
        "Ministry of Housing and Urban-Rural Development",
        "Ministry of Industry and Information Technology",
    ]
    assert not any(p.text for p in policies.values())
    assert Clause.objects.filter(policy__project=project).count() == 0
    assert Policy.objects.filter(project=project, jurisdiction="Shanghai").count() == 16


def test_update_attaches_texts_to_catalogue_entries_by_number(project, tmp_path):
    run("import_policies", str(STUDY_CSV), project="study")
    folder = write_files(
        tmp_path / "texts",
        {
            "meta.csv": "编号,文件,备注\n2,02.txt,test\n5,05.txt,\n",
            "02.txt": policy_text(2).encode("utf-16"),
            "05.txt": policy_text(5).encode("gbk"),
        },
    )
    before = Policy.objects.get(project=project, number=2)

    out, _ = run("import_policies", str(folder / "meta.csv"), project="study", update=True)

    assert "0 created, 2 updated, 0 unchanged" in out
    two = Policy.objects.get(project=project, number=2)
    assert two.text == policy_text(2)
    assert (two.title, two.release_date) == (before.title, before.release_date)  # kept: the row leaves them blank
    assert two.attributes == {"备注": "test"}
    assert Clause.objects.filter(policy=two).count() == 19
    event = Event.objects.get(action="policy.update", target_id=two.pk)
    assert event.before["text_length"] == 0 and event.after["text_length"] == len(policy_text(2))
    assert event.before["clauses"] == 0 and event.after["clauses"] == 19
    assert Event.objects.filter(action="policy.update").count() == 2


def test_update_with_nothing_new_changes_nothing(project, tmp_path):
    run("import_policies", str(STUDY_CSV), project="study")
    events = Event.objects.count()

    out, _ = run("import_policies", str(STUDY_CSV), project="study", update=True)

    assert "0 created, 0 updated, 66 unchanged" in out
    assert Event.objects.count() == events


def test_dry_run_shows_counts_clause_counts_and_encodings_and_writes_nothing(project, tmp_path):
    archive = tmp_path / "p.zip"
    archive.write_bytes(make_zip({"01.txt": policy_text(1).encode("gb18030"), "14.txt": policy_text(14)}))
    before = database_state()

    out, _ = run("import_policies", str(archive), project="study", dry_run=True)

    assert database_state() == before
    assert (
        "Would create 2 policies (2 with text, 0 catalogue entries without), 166 clauses under rule 'article'." in out
    )
    assert "Encodings detected: GB18030 ×1, UTF-8 ×1." in out
    lines = out.splitlines()
    assert any(line.split()[:4] == ["1", "75", "article", "GB18030"] for line in lines)
    assert any(line.split()[:4] == ["2", "91", "paragraph", "UTF-8"] for line in lines)  # no articles: fell back
    assert lines[-1] == "Dry run: nothing was written."


def test_segment_option_chooses_the_rule(project):
    run("import_policies", str(POLICY_TEXTS / "14_beijing_gov_work_report_2024.txt"), project="study", segment="item")

    policy = Policy.objects.get(project=project)
    assert policy.segmentation_rule == "item"
    assert Clause.objects.filter(policy=policy, number=0).exists()  # the opening before 一、


def test_numbers_continue_after_the_existing_ones(project, admin_user, policy):
    run("import_policies", str(POLICY_TEXTS / "02_hangzhou_city_brain_regulation_2020_partial.txt"), project="study")

    assert list(Policy.objects.filter(project=project).values_list("number", flat=True).order_by("number")) == [1, 2]


# --- bulk writing ----------------------------------------------------------------------------


def _parsed(count: int) -> importing.ParsedImport:
    rows = "".join(f'{i},Policy {i},"第一条 甲{i}。\n第二条 乙。\n第三条 丙。"\n' for i in range(1, count + 1))
    return importing.read_upload("t.csv", f"number,title,text\n{rows}".encode())


def test_import_takes_the_same_number_of_queries_for_3_or_30_policies(project):
    counts = []
    for count, start in ((3, 0), (30, 100)):
        parsed = _parsed(count)
        for row in parsed.rows:
            row.number += start
        with CaptureQueriesContext(connection) as queries:
            services.import_policies(actor=None, project=project, parsed=parsed)
        counts.append(len(queries))

    assert counts[0] == counts[1]
    assert Clause.objects.filter(policy__project=project).count() == 33 * 3
    assert Event.objects.filter(action="policy.create").count() == 33


def test_progress_reports_checking_and_writing(project):
    seen = []

    services.import_policies(actor=None, project=project, parsed=_parsed(3), progress=lambda *step: seen.append(step))

    assert seen == [("check", 3, 3), ("write", 3, 3)]


def test_a_generator_closed_midway_writes_nothing(project):
    before = database_state()
    steps = services.import_policies_iter(actor=None, project=project, parsed=_parsed(3))

    assert next(steps) == ("check", 3, 3)
    assert next(steps) == ("write", 3, 3)
    steps.close()

    assert database_state() == before


# --- the bad-input suite ---------------------------------------------------------------------


def _bad_inputs(tmp_path):
    files = {
        "missing_title.csv": "number,title\n1,济宁\n2,\n",
        "duplicate_number.csv": "number,title\n4,甲\n4,乙\n",
        "exists_already.csv": "number,title\n1,甲\n",
        "bad_date.csv": "title,release_date\n甲,2021.4.28\n乙,2021.13.45\n",
        "bad_number.csv": "编号,标题\n一,甲\n",
        "bad_url.csv": "title,source_url\n甲,not a url\n",
        "long_title.csv": "title\n" + "长" * 501 + "\n",
        "no_title_column.csv": "name\n甲\n",
        "big5.txt": (
            "中華人民共和國政府資訊公開條例\n第一條　為了保障公民依法獲取政府資訊，提高政府工作的透明度，制定本條例。\n"
        ).encode("big5"),
        "garbage.txt": random_bytes(2048),
        "empty.txt": b"",
        "oversize.csv": "title,text\n甲," + "文" * 400_000 + "\n",
        "bomb.zip": zip_bomb(20),
        "slip.zip": make_zip({"../../../tmp/evil.txt": "x"}),
        "xxe.docx": make_docx(["&xxe;"], doctype=XXE_DOCTYPE),
        "missing_file.zip": make_zip({"meta.csv": "title,file\n甲,01.txt\n乙,02.txt\n", "01.txt": policy_text(1)}),
        "scan.pdf": make_pdf(["x"], text_layer=False),
        "not_a_pdf.pdf": b"<html>not a pdf</html>",
        "old.doc": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100,
        "broken.json": '[{"title": "甲"',
        "not_a_zip.zip": b"PK\x03\x04 truncated",
        "unnamed_document.zip": make_zip({"meta.csv": "title,file\n甲,01.txt\n", "01.txt": "第一条", "02.txt": "x"}),
        "two_tables.zip": make_zip({"a.csv": "title\n甲\n", "b.xlsx": b"PK"}),
        "text_and_file.zip": make_zip({"m.csv": "title,text,file\n甲,正文,01.txt\n", "01.txt": "x"}),
    }
    write_files(tmp_path, files)
    return tmp_path


BAD_INPUTS = [
    ("missing_title.csv", "missing_title.csv, row 3, title: a title is required"),
    ("duplicate_number.csv", "duplicate_number.csv, row 3, number: 4 is also the number on row 2"),
    ("exists_already.csv", "exists_already.csv, row 2, number: 1 already exists in this project"),
    ("bad_date.csv", "bad_date.csv, row 3, release_date: '2021.13.45' is not a date (month 13 does not exist)"),
    ("bad_number.csv", "bad_number.csv, row 2, 编号: '一' is not a policy number"),
    ("bad_url.csv", "bad_url.csv, row 2, source_url: 'not a url': Enter a valid URL."),
    ("long_title.csv", "long_title.csv, row 2, title: Ensure this value has at most 500 characters (it has 501)."),
    ("no_title_column.csv", "no_title_column.csv: has no title column (or 标题); the headers found are 'name'"),
    ("big5.txt", "big5.txt: big5.txt is in an encoding that could not be recognised"),
    ("garbage.txt", "garbage.txt: garbage.txt is not text (it looks like binary data)"),
    ("empty.txt", "empty.txt: empty.txt is empty"),
    ("oversize.csv", "oversize.csv: oversize.csv is 1.1 MB; the limit is 1.0 MB"),
    ("bomb.zip", "bomb.zip: bomb.zip would unpack"),
    ("slip.zip", "slip.zip: slip.zip has an entry '../../../tmp/evil.txt' whose path leads outside the archive"),
    ("xxe.docx", "xxe.docx: xxe.docx has a DTD or XML entity declarations in word/document.xml"),
    ("missing_file.zip", "meta.csv, row 3, file: '02.txt' is not in the archive (did you mean '01.txt'?)"),
    ("scan.pdf", "scan.pdf: scan.pdf has no text layer (it is probably a scan); run OCR on it"),
    ("not_a_pdf.pdf", "not_a_pdf.pdf: not_a_pdf.pdf is not a PDF file"),
    ("old.doc", "old.doc: old.doc is an old Word .doc file; save it as .docx or .txt"),
    ("broken.json", "broken.json: broken.json is not valid JSON (line 1, column 15: Expecting"),
    ("not_a_zip.zip", "not_a_zip.zip: not_a_zip.zip is not a zip archive, or it is damaged"),
    ("unnamed_document.zip", "02.txt: is in the archive but no row of meta.csv names it"),
    ("two_tables.zip", "archive: holds 2 tables (a.csv, b.xlsx); keep one metadata table"),
    ("text_and_file.zip", "m.csv, row 2: give either text or file, not both"),
]


@pytest.mark.parametrize(("name", "message"), BAD_INPUTS, ids=[name for name, _ in BAD_INPUTS])
def test_bad_input_is_refused_with_its_reason_and_the_database_is_unchanged(
    project, admin_user, policy, tmp_path, name, message
):
    folder = _bad_inputs(tmp_path)
    before = database_state()

    _, err = refused("import_policies", str(folder / name), project="study", max_size_mb=1)

    assert message in err, err
    after = database_state()
    assert table_counts(after) == table_counts(before)
    assert after == before


def test_bad_input_suite_covers_the_issue_list():
    assert len(BAD_INPUTS) >= 15


def test_every_problem_is_reported_at_once(project, tmp_path):
    (tmp_path / "t.csv").write_text("number,title,release_date\n1,,2021\n1,乙,2021.2.30\n")

    _, err = refused("import_policies", str(tmp_path / "t.csv"), project="study", verbosity=0)

    assert err.splitlines() == [
        "t.csv, row 2, title: a title is required",
        "t.csv, row 3, release_date: '2021.2.30' is not a date (day 30 does not exist in 2021-02)",
    ]


def test_update_of_a_missing_number_is_refused(project, tmp_path):
    (tmp_path / "t.csv").write_text("number,text\n9,第一条 甲。\n")

    _, err = refused("import_policies", str(tmp_path / "t.csv"), project="study", update=True)

    assert (
        "t.csv, row 2, number: policy 9 does not exist in this project; --update changes existing policies only" in err
    )


def test_update_refuses_to_replace_a_coded_text_saying_how_many_references(project, admin_user, policy, tmp_path):
    clause = Clause.objects.filter(policy=policy).exclude(number=0).first()
    ReferenceFactory(clause=clause, coder=admin_user)
    ReferenceFactory(clause=clause, coder=UserFactory())
    (tmp_path / "t.csv").write_text("number,text\n1,第一条 新的。\n")
    before = database_state()

    _, err = refused("import_policies", str(tmp_path / "t.csv"), project="study", update=True)

    assert "policy 1 already has 2 reference(s); replacing its text would move them off their text" in err
    assert database_state() == before


def test_command_refuses_unknown_project_actor_and_rule(project):
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        run("import_policies", str(POLICY_TEXTS), project="nope")
    with pytest.raises(CommandError, match="no user 'ghost'"):
        run("import_policies", str(POLICY_TEXTS), project="study", actor="ghost")
    with pytest.raises(CommandError, match="invalid choice: 'chapter'"):
        run("import_policies", str(POLICY_TEXTS), "--project", "study", "--segment", "chapter")
    _, err = refused("import_policies", "/nonexistent/path.csv", project="study")
    assert err.strip() == "/nonexistent/path.csv: /nonexistent/path.csv does not exist"


# --- codebook and members commands -----------------------------------------------------------

DEMO_CODEBOOK = STUDY_CSV.parent / "demo_codebook.json"


def test_import_codebook_builds_the_study_tree_and_export_round_trips(project, tmp_path):
    out, _ = run("import_codebook", str(DEMO_CODEBOOK), project="study")

    assert out.strip() == "Codebook of study: 18 node(s) created, 0 updated, 0 unchanged."
    roots = list(Node.objects.filter(project=project, parent=None).order_by("position").values_list("name", flat=True))
    assert roots == ["Supply-based", "Environmental-based", "Demand-based"]
    exported = tmp_path / "codebook.json"
    run("export_codebook", project="study", format="json", output=str(exported))
    # The demo file writes "no shortcut" as null; an export writes it as "".
    demo = DEMO_CODEBOOK.read_text(encoding="utf-8").replace('"shortcut": null', '"shortcut": ""')
    assert json.loads(exported.read_text(encoding="utf-8")) == json.loads(demo)


def test_codebook_csv_round_trip_through_a_new_project(project, tmp_path):
    run("import_codebook", str(DEMO_CODEBOOK), project="study")
    first = tmp_path / "first.csv"
    run("export_codebook", project="study", format="csv", output=str(first))
    services.create_project(actor=None, slug="copy", name="Copy")

    run("import_codebook", str(first), project="copy")
    second = tmp_path / "second.csv"
    run("export_codebook", project="copy", format="csv", output=str(second))

    assert second.read_bytes() == first.read_bytes()
    assert first.read_bytes().startswith(b"\xef\xbb\xbfpath,description,colour,shortcut\r\n")
    assert "Supply-based > Talent," in first.read_text(encoding="utf-8-sig")


def test_export_codebook_to_stdout(project, node):
    out, _ = run("export_codebook", project="study", format="csv")

    assert out == "path,description,colour,shortcut\r\nSupply-based,,#ffe08a,\r\n"


def test_import_codebook_with_problems_changes_nothing(project, node, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,colour\nSupply-based > Talent,#12345\nA > ,#ffffff\n", encoding="utf-8")
    before = database_state()

    with pytest.raises(CommandError, match="2 problem"):
        run("import_codebook", str(bad), project="study")

    assert database_state() == before


def test_add_member_adds_changes_and_refuses(project, admin_user):
    UserFactory(username="dana")

    assert run("add_member", "dana", "coder", project="study")[0].strip() == "Added dana to study as coder."
    assert run("add_member", "dana", "supervisor", project="study")[0].strip() == "dana is now supervisor in study."
    assert "nothing changed" in run("add_member", "dana", "supervisor", project="study")[0]
    assert Membership.objects.get(project=project, user__username="dana").role == Role.SUPERVISOR
    with pytest.raises(CommandError, match="There is no user 'nobody'"):
        run("add_member", "nobody", "coder", project="study")
    with pytest.raises(CommandError, match="invalid choice: 'owner'"):
        run("add_member", "dana", "owner", project="study")
    with pytest.raises(CommandError, match="only admin"):
        run("add_member", "admin_p", "coder", project="study")
    assert Event.objects.filter(action__startswith="membership.", target_id__isnull=False).count() >= 2
    assert Reference.objects.count() == 0
