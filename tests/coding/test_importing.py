"""Reading policies: encodings, documents, tables, archives and folders (no database)."""

import datetime as dt
import io
import json

import openpyxl
import pytest

from coding import importing
from coding.importing import Limits, Refused, clean_text, decode_text, read_document, read_path, read_upload
from coding.segmentation import segment
from tests.coding.documents import (
    POLICY_FILES,
    XXE_DOCTYPE,
    make_docx,
    make_pdf,
    make_zip,
    policy_text,
    random_bytes,
    write_files,
    zip_bomb,
    zip_with_gbk_names,
)
from tests.conftest import POLICY_TEXTS

# --- text ----------------------------------------------------------------------------------


def test_clean_text_normalises_line_ends_and_drops_controls():
    raw = "\ufeff第一条\r\n第二条\r第三条\x0c第四条\u2028末\x00尾\x07\t𠀀\x1b\n"

    assert clean_text(raw) == "第一条\n第二条\n第三条\n第四条\n末尾\t𠀀\n"


ENCODINGS = [
    ("utf-8", "UTF-8"),
    ("utf-8-sig", "UTF-8 (BOM)"),
    ("utf-16", "UTF-16LE (BOM)"),  # Python writes the BOM in the machine's (little-endian) order
    ("utf-16-le", "UTF-16LE"),
    ("utf-16-be", "UTF-16BE"),
    ("gb18030", "GB18030"),
    ("gbk", "GB18030"),
]


@pytest.mark.parametrize(("codec", "label"), ENCODINGS, ids=[codec for codec, _ in ENCODINGS])
@pytest.mark.parametrize("path", POLICY_FILES, ids=[p.name[:2] for p in POLICY_FILES])
def test_decode_text_recognises_the_real_texts_in_every_encoding(path, codec, label):
    original = path.read_text(encoding="utf-8")
    data = original.replace("\n", "\r\n").encode(codec)

    text, detected = decode_text(data)

    assert detected == label
    assert clean_text(text) == original


TRADITIONAL = (
    "中華人民共和國政府資訊公開條例\n第一條　為了保障公民、法人和其他組織依法獲取政府資訊，提高政府工作的透明度，"
    "建設法治政府，充分發揮政府資訊對人民群眾生產、生活和經濟社會活動的服務作用，制定本條例。\n"
)


@pytest.mark.parametrize(
    "data",
    [
        TRADITIONAL.encode("big5"),
        "日本国憲法\n第一条　天皇は、日本国の象徴であり日本国民統合の象徴であつて、この地位は、主権の存する日本国民の"
        "総意に基く。\n".encode("shift_jis"),
        "Café crème, naïve résumé, déjà vu.\n".encode("cp1252"),
    ],
    ids=["big5", "shift-jis", "cp1252"],
)
def test_decode_text_refuses_encodings_it_cannot_vouch_for(data):
    with pytest.raises(Refused, match="encoding that could not be recognised"):
        decode_text(data)


@pytest.mark.parametrize("seed", range(5))
def test_decode_text_refuses_binary_data(seed):
    with pytest.raises(Refused, match="not text"):
        decode_text(random_bytes(4096, seed))


def test_decode_text_refuses_empty_data_and_broken_boms():
    with pytest.raises(Refused, match="is empty"):
        decode_text(b"")
    with pytest.raises(Refused, match="UTF-8 byte-order mark but is not valid"):
        decode_text(b"\xef\xbb\xbf\xff\xfe\xfd")


# --- documents -----------------------------------------------------------------------------


def test_txt_title_is_the_first_line_and_text_is_stored_whole():
    document = read_document("01.txt", policy_text(1).encode("gb18030"))

    assert document.title == "济宁市智慧城市促进条例"
    assert document.text == policy_text(1)
    assert document.encoding == "GB18030"


def test_docx_paragraphs_become_lines_and_core_title_is_the_title():
    lines = policy_text(4).split("\n")

    document = read_document("04.docx", make_docx(lines, title="在线政务服务规定"))

    assert document.title == "在线政务服务规定"
    assert document.text == "\n".join(lines) + "\n"
    assert len(segment(document.text, "article").clauses) == len(segment(policy_text(4), "article").clauses)


def test_docx_without_title_uses_its_first_paragraph_and_keeps_tabs():
    document = read_document("a.docx", make_docx(["第一条\t总则", "第二条 适用范围"]))

    assert document.title == "第一条\t总则"
    assert document.text == "第一条\t总则\n第二条 适用范围\n"


def test_docx_with_an_external_entity_is_refused():
    data = make_docx(["&xxe;"], doctype=XXE_DOCTYPE)

    with pytest.raises(Refused, match=r"DTD or XML entity declarations.*\(XXE\)"):
        read_document("evil.docx", data)


def test_docx_that_is_not_a_word_file_is_refused():
    with pytest.raises(Refused, match=r"no word/document\.xml"):
        read_document("x.docx", make_zip({"hello.txt": "hi"}))
    with pytest.raises(Refused, match="not a readable Word"):
        read_document("x.docx", b"plain text, not a zip")


def test_pdf_text_layer_gives_the_chinese_text_back():
    original = policy_text(2)
    lines = [line for line in original.split("\n") if line.strip()]

    document = read_document("02.pdf", make_pdf(lines, title="杭州城市大脑赋能城市治理促进条例"))

    assert document.title == "杭州城市大脑赋能城市治理促进条例"
    assert [line for line in document.text.split("\n") if line.strip()] == lines
    assert document.encoding == "PDF text layer"
    # A PDF has no blank lines; otherwise every article comes back as it was.
    compact = "\n".join(lines) + "\n"
    expected = [(c.number, compact[c.start : c.end]) for c in segment(compact, "article").clauses]
    got = [(c.number, document.text[c.start : c.end]) for c in segment(document.text, "article").clauses]
    assert got == expected
    assert [n for n, _ in got] == [c.number for c in segment(original, "article").clauses]


def test_pdf_without_title_uses_its_first_line():
    document = read_document("en.pdf", make_pdf(["Smart City Pilot Notice", "Article 1. Purpose."]))

    assert document.title == "Smart City Pilot Notice"


def test_pdf_without_text_layer_is_refused_as_a_scan():
    with pytest.raises(Refused, match="no text layer"):
        read_document("scan.pdf", make_pdf(["ignored"], text_layer=False))


def test_damaged_pdf_is_refused():
    with pytest.raises(Refused, match="not a PDF"):
        read_document("x.pdf", b"GIF89a....")
    with pytest.raises(Refused, match="not a readable PDF"):
        read_document("x.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage")


def test_html_keeps_visible_text_one_line_per_block():
    page = (
        '<html><head><meta charset="gbk"><title>济宁市 智慧城市\n促进条例</title>'
        "<style>p{color:red}</style><script>alert('x')</script></head><body>"
        "<h1>济宁市智慧城市促进条例</h1><p>第一条&nbsp;为了促进\n  智慧城市建设，&lt;制定&gt;本条例。</p>"
        "<div>第二条 本条例适用于<b>本市</b>。<br>第三条 附则。</div></body></html>"
    )

    document = read_document("p.html", page.encode("gbk"))

    assert document.title == "济宁市 智慧城市 促进条例"
    assert document.text == (
        "济宁市智慧城市促进条例\n第一条\xa0为了促进 智慧城市建设，<制定>本条例。\n"
        "第二条 本条例适用于本市。\n第三条 附则。\n"
    )
    assert document.encoding == "gb18030 (declared)"


# --- tables --------------------------------------------------------------------------------


def test_study_catalogue_reads_66_rows_keeping_date_precision():
    parsed = read_path(POLICY_TEXTS.parents[2] / "main" / "fixtures" / "study_policies.csv")

    assert parsed.problems == []
    assert len(parsed.rows) == 66
    by_number = {row.number: row for row in parsed.rows}
    assert sorted(by_number) == list(range(1, 67))
    assert by_number[57].fields["release_date"] == "2011"
    assert by_number[64].fields["implementation_date"] == "2021"
    assert by_number[2].fields["release_date"] == "2021-04-28"
    assert by_number[1].fields["release_departments"] == [
        "Ministry of Housing and Urban-Rural Development",
        "Ministry of Industry and Information Technology",
    ]
    assert all(row.text is None for row in parsed.rows)


def test_chinese_headers_and_unknown_columns_become_fields_and_attributes():
    table = (
        "编号,标题,效力级别,发布部门,发布日期,实施日期,正文,备注\n"
        "3,济宁市智慧城市促进条例,地方性法规,济宁市人大常委会；山东省人大常委会,2016.12.27,2017.5,"
        '"第一条 为了促进。\r\n第二条 适用。",试点\n'
    )

    parsed = read_upload("目录.csv", table.encode("gb18030"))

    assert parsed.problems == []
    [row] = parsed.rows
    assert (row.number, row.title, row.row) == (3, "济宁市智慧城市促进条例", 2)
    assert row.fields == {
        "potency_level": "地方性法规",
        "release_departments": ["济宁市人大常委会", "山东省人大常委会"],
        "release_date": "2016-12-27",
        "implementation_date": "2017-05",
    }
    assert row.text == "第一条 为了促进。\n第二条 适用。"
    assert row.attributes == {"备注": "试点"}
    assert row.encoding == "GB18030"


def test_headers_ignore_case_spaces_and_underscores():
    parsed = read_upload(
        "t.csv", b"Number,TITLE,Release Date,potency-level,Source_URL\n1,A,2021.4,Law,https://x.cn/1\n"
    )

    [row] = parsed.rows
    assert row.fields == {"release_date": "2021-04", "potency_level": "Law", "source_url": "https://x.cn/1"}


def test_xlsx_dates_keep_the_precision_their_format_shows():
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["编号", "标题", "发布日期", "实施日期", "Potency level"])
    sheet.append([1, "甲", dt.datetime(2021, 4, 28), dt.datetime(2011, 1, 1), "Law"])
    sheet.append([2.0, "乙", 2021.10, "2021.4", None])
    sheet["D2"].number_format = "yyyy"
    sheet["C2"].number_format = "yyyy-mm-dd"
    sheet["C3"].number_format = "0.00"
    out = io.BytesIO()
    book.save(out)

    parsed = read_upload("catalogue.xlsx", out.getvalue())

    assert parsed.problems == []
    first, second = parsed.rows
    assert (first.number, first.fields["release_date"], first.fields["implementation_date"]) == (
        1,
        "2021-04-28",
        "2011",
    )
    assert (second.number, second.fields["release_date"], second.fields["implementation_date"]) == (
        2,
        "2021-10",
        "2021-04",
    )
    assert first.row == 2 and second.row == 3


def test_json_table_in_the_demo_format_reads_files_beside_it():
    parsed = read_path(POLICY_TEXTS.parents[2] / "main" / "fixtures" / "demo_policies.json")

    assert parsed.problems == []
    assert [row.number for row in parsed.rows] == list(range(1, 18))
    first = parsed.rows[0]
    assert first.text == policy_text(1)
    assert first.attributes["title_en"] == "Jining Smart City Promotion Regulation"
    assert first.attributes["potency_level_zh"] == "地方性法规"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("number,title\n1,\n", "t.csv, row 2, title: a title is required"),
        ("number,title\n1,A\n1,B\n", "t.csv, row 3, number: 1 is also the number on row 2"),
        ("number,title\nabc,A\n", "t.csv, row 2, number: 'abc' is not a policy number"),
        ("number,title\n0,A\n", "t.csv, row 2, number: '0' is not a policy number"),
        (
            "title,release_date\nA,2021.13.45\n",
            "t.csv, row 2, release_date: '2021.13.45' is not a date (month 13 does not exist)",
        ),
        ("title,发布日期\nA,2021.2.30\n", "t.csv, row 2, 发布日期: '2021.2.30' is not a date"),
        ("name,date\nA,2021\n", "t.csv: has no title column (or 标题); the headers found are 'name', 'date'"),
        ("title,标题\nA,B\n", "t.csv: columns 'title' and '标题' both mean title"),
        ("title,file\nA,a.txt\n", "t.csv, row 2, file: names the file 'a.txt', but a table on its own brings no files"),
        ("title,text\nA\n,B,C\n", "t.csv: t.csv row 3 has 3 cells but the header names 2 columns"),
    ],
)
def test_table_problems_name_file_row_and_column(table, expected):
    parsed = read_upload("t.csv", table.encode())

    assert str(parsed.problems[0]).startswith(expected)


def test_json_problems_count_items():
    parsed = read_upload("p.json", json.dumps([{"title": "A"}, {"title": "B", "release_date": "2021-99"}]).encode())

    assert [str(p) for p in parsed.problems] == [
        "p.json, item 2, release_date: '2021-99' is not a date (month 99 does not exist)"
    ]


def test_invalid_json_is_refused_with_its_position():
    parsed = read_upload("p.json", b'[{"title": "A",}]')

    assert str(parsed.problems[0]).startswith("p.json: p.json is not valid JSON (line 1, column 16")


def test_update_rows_need_numbers_but_not_titles():
    parsed = read_upload("t.csv", b"number,title,text\n3,,new text\n,B,x\n", update=True)

    assert [str(p) for p in parsed.problems] == [
        "t.csv, row 3, number: a number is needed to find the policy to update"
    ]
    assert parsed.rows[0].title == "" and parsed.rows[0].text == "new text"


# --- folders and archives ------------------------------------------------------------------


def test_folder_of_the_17_texts_reads_each_as_a_policy_and_skips_other_files():
    parsed = read_path(POLICY_TEXTS)

    assert parsed.problems == []
    assert parsed.notices == ["Skipped SOURCES.md: not a policy document or table."]
    assert [row.text for row in parsed.rows] == [policy_text(i) for i in range(1, 18)]
    assert parsed.rows[0].title == "济宁市智慧城市促进条例"
    assert {row.encoding for row in parsed.rows} == {"UTF-8"}


@pytest.mark.parametrize("codec", ["gb18030", "utf-16"])
def test_zip_of_the_17_texts_reencoded_with_crlf_gives_the_same_texts(codec):
    entries = {path.name: path.read_text(encoding="utf-8").replace("\n", "\r\n").encode(codec) for path in POLICY_FILES}

    parsed = read_upload("policies.zip", make_zip(entries))

    assert parsed.problems == []
    assert [row.text for row in parsed.rows] == [policy_text(i) for i in range(1, 18)]
    assert {row.encoding for row in parsed.rows} == {"GB18030" if codec == "gb18030" else "UTF-16LE (BOM)"}


def test_zip_with_metadata_table_attaches_documents_by_file_column():
    table = "number,title,file,jurisdiction\n7,上海市数据条例,texts/07.docx,Shanghai\n4,国务院,texts/04.pdf,Central\n"
    entries = {
        "meta/catalogue.csv": table,
        "texts/07.docx": make_docx(policy_text(7).split("\n")),
        "texts/04.pdf": make_pdf([line for line in policy_text(4).split("\n") if line.strip()]),
        "__MACOSX/._07.docx": b"\0\0",
        ".DS_Store": b"\0",
    }

    parsed = read_upload("study.zip", make_zip(entries))

    assert parsed.problems == []
    seven, four = parsed.rows
    assert (seven.number, seven.title, seven.text_file, seven.fields["jurisdiction"]) == (
        7,
        "上海市数据条例",
        "texts/07.docx",
        "Shanghai",
    )
    assert seven.text == policy_text(7) + "\n"  # the final empty line became an empty paragraph
    assert four.encoding == "PDF text layer" and four.text.startswith("国务院关于在线政务服务的若干规定\n")


def test_zip_with_gbk_file_names_finds_them():
    entries = {
        "目录.csv": "title,file\n条例,济宁条例.txt\n".encode("gbk"),
        "济宁条例.txt": policy_text(1).encode("gbk"),
    }

    parsed = read_upload("cn.zip", zip_with_gbk_names(entries))

    assert parsed.problems == []
    assert parsed.rows[0].text_file == "济宁条例.txt"
    assert parsed.rows[0].text == policy_text(1)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (
            {"t.csv": "title,file\nA,b.txt\n", "a.txt": "x"},
            "t.csv, row 2, file: 'b.txt' is not in the archive (did you mean 'a.txt'?)",
        ),
        (
            {"t.csv": "title,file\nA,a.txt\n", "a.txt": "x", "b.txt": "y"},
            "b.txt: is in the archive but no row of t.csv names it",
        ),
        ({"t.csv": "title\nA\n", "u.json": "[]"}, "archive: holds 2 tables (t.csv, u.json); keep one metadata table"),
        ({"a.doc": b"\xd0\xcf\x11\xe0"}, "a.doc: a.doc is an old Word .doc file; save it as .docx or .txt"),
        ({"inner.zip": make_zip({"a.txt": "x"})}, "inner.zip: inner.zip is an archive inside the archive"),
        ({"README.md": "hi"}, "archive: holds no policy documents"),
        (
            {"t.csv": "title,file\nA,../../etc/passwd\n"},
            "t.csv, row 2, file: '../../etc/passwd' leads outside the archive; refused",
        ),
        ({"scan.pdf": make_pdf([], text_layer=False)}, "scan.pdf: scan.pdf has no text layer"),
        ({"empty.txt": b""}, "empty.txt: empty.txt is empty"),
    ],
)
def test_archive_problems_are_located(entries, expected):
    parsed = read_upload("x.zip", make_zip(entries))

    assert any(str(p).startswith(expected) for p in parsed.problems), [str(p) for p in parsed.problems]


def test_zip_slip_entry_is_refused():
    parsed = read_upload("evil.zip", make_zip({"../../evil.txt": "x", "ok.txt": "y"}))

    assert [str(p) for p in parsed.problems] == [
        "evil.zip: evil.zip has an entry '../../evil.txt' whose path leads outside the archive "
        "(path traversal); refused"
    ]


def test_absolute_and_windows_paths_are_refused():
    for name in ["/etc/passwd", "C:\\Windows\\win.ini", "a\\..\\..\\b.txt"]:
        parsed = read_upload("evil.zip", make_zip({name: "x"}))
        assert "leads outside the archive" in str(parsed.problems[0]), name


def test_zip_bomb_is_refused_by_ratio():
    parsed = read_upload("bomb.zip", zip_bomb(20))

    assert "looks like a zip bomb" in str(parsed.problems[0])


def test_zip_over_the_expanded_size_limit_is_refused():
    parsed = read_upload(
        "big.zip", make_zip({"a.txt": random_bytes(300_000)}), limits=Limits(max_expanded_bytes=200_000)
    )

    assert "would unpack to 0.3 MB; at most 0.2 MB is accepted" in str(parsed.problems[0])


def test_zip_with_too_many_entries_is_refused():
    parsed = read_upload("many.zip", make_zip({f"{i}.txt": "x" for i in range(30)}), limits=Limits(max_zip_entries=25))

    assert str(parsed.problems[0]) == "many.zip: many.zip has 30 entries; at most 25 are accepted"


def test_upload_over_the_size_limit_is_refused_before_reading():
    parsed = read_upload("big.csv", b"title\n" + b"x" * 2000, limits=Limits(max_bytes=1000))

    assert str(parsed.problems[0]) == "big.csv: big.csv is 0.0 MB; the limit is 0.0 MB"
    assert parsed.rows == []


def test_folder_link_outside_it_is_refused(tmp_path):
    outside = write_files(tmp_path / "outside", {"secret.txt": "秘密"})
    folder = write_files(tmp_path / "in", {"a.txt": "甲"})
    (folder / "b.txt").symlink_to(outside / "secret.txt")

    parsed = read_path(folder)

    assert str(parsed.problems[0]) == "in: in has 'b.txt', a link to a file outside the folder; refused"


def test_table_in_a_folder_reads_named_files_only_and_not_beyond_it(tmp_path):
    folder = write_files(
        tmp_path / "study",
        {
            "meta.csv": "title,file\n甲,texts/a.txt\n乙,../secret.txt\n",
            "texts/a.txt": "第一条 甲。\n",
            "texts/z.txt": "z",
        },
    )
    (tmp_path / "secret.txt").write_text("秘密")

    parsed = read_path(folder / "meta.csv")

    assert [str(p) for p in parsed.problems] == [
        "meta.csv, row 3, file: '../secret.txt' leads outside the folder; refused"
    ]
    assert parsed.rows[0].text == "第一条 甲。\n"


def test_unknown_single_file_type_is_refused():
    parsed = read_upload("photo.png", b"\x89PNG\r\n")

    assert str(parsed.problems[0]).startswith("photo.png: photo.png is not a file type that can be imported")


def test_progress_is_reported_per_document():
    seen = []

    read_path(POLICY_TEXTS, progress=lambda stage, done, total: seen.append((stage, done, total)))

    assert seen[-1] == ("read", 17, 17) and len(seen) == 17


def test_problem_str_without_row_or_column():
    assert str(importing.Problem("a.txt", "is empty")) == "a.txt: is empty"
    assert str(importing.Problem("", "no file")) == "no file"
