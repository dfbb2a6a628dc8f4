"""REFI-QDA interchange (coding/refi.py, services.import_refi, export_project/import_project).

The real exports in shared/data/refi are counted here independently (the standard library's
ElementTree on the trusted files, and UTF-16 arithmetic of our own for NVivo positions), and
every export is validated against the XSDs with xmlschema, a different validator from the one the
importer uses.
"""

import hashlib
import io
import random
import uuid
import zipfile
from xml.etree import ElementTree as ET

import pytest
import xmlschema
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from coding import refi, services
from coding.models import Clause, Event, Membership, Node, Policy, Project, Reference, Role
from coding.segmentation import segment
from tests.conftest import SAMPLE_TEXT, SHARED
from tests.factories import UserFactory

REFI_DATA = SHARED / "data" / "refi"
NS = "{urn:QDA-XML:project:1.0}"
NVIVO_SAMPLES = [
    "DEpt-metagenom_oltas.qdpx",
    "DEpt-metagenom_oltas0517.qdpx",
    "DEpt-metagenom_OltasSzkepticizmus_17June.qdpx",
]


def xsd(name: str) -> xmlschema.XMLSchema10:
    return xmlschema.XMLSchema10(str(REFI_DATA / f"rpgauthier_{name}-mrt2019.xsd"))


def assert_valid(schema: xmlschema.XMLSchema10, data: bytes) -> None:
    errors = [f"{e.path}: {e.reason}" for e in schema.iter_errors(ET.fromstring(data))]
    assert errors == []


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def export_bytes(project, **kwargs) -> bytes:
    out = io.BytesIO()
    refi.export_project(project, out, **kwargs)
    return out.getvalue()


def table_counts() -> dict[str, int]:
    models = [Project, Membership, Node, Policy, Clause, Reference, Event, get_user_model()]
    return {model.__name__: model.objects.count() for model in models}


# --- pure: text, positions, placement -------------------------------------------------------


def test_canonical_text_turns_line_ends_into_lf_and_drops_controls():
    text, dropped = refi.canonical_text("a\r\nb\rc\x0cd\x00e\tf")

    assert text == "a\nb\nc\nde\tf"
    assert dropped == (1, 8)


def utf16_offset(text: str, index: int) -> int:
    """Independent of coding.offsets: the UTF-16 length of the prefix."""
    return len(text[:index].encode("utf-16-le")) // 2


@pytest.mark.parametrize(
    ("unit", "base"),
    [
        (refi.UNIT_UTF16, "\ufeff第一条　甲𠀀乙\r\n第二条　𠀀丙丁\r\n"),
        (refi.UNIT_CODEPOINT, "第一条　甲𠀀乙\r\n第二条　𠀀丙丁\r\n"),
        (refi.UNIT_CODEPOINT_LF, "第一条　甲𠀀乙\n第二条　𠀀丙丁\n"),
    ],
)
def test_positions_of_every_unit_land_on_the_same_canonical_character(unit, base):
    raw = "\ufeff第一条　甲𠀀乙\r\n第二条　𠀀丙丁\r\n"
    text = refi.SourceText(raw)
    counted = base.removeprefix("\ufeff")
    target = counted.index("丙")

    position = utf16_offset(counted, target) if unit == refi.UNIT_UTF16 else target

    assert text.canonical == "第一条　甲𠀀乙\n第二条　𠀀丙丁\n"
    assert text.canonical[text.to_canonical(position, unit)] == "丙"


def test_a_utf16_position_inside_a_surrogate_pair_is_refused():
    text = refi.SourceText("a𠀀b")

    with pytest.raises(ValueError, match="surrogate pair"):
        text.to_canonical(2, refi.UNIT_UTF16)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "甲", "𠀀", "😀", "\r\n", "\n", " ", "\t"]), max_size=40), st.data())
def test_utf16_positions_over_crlf_text_match_an_independent_count(parts, data):
    raw = "".join(parts)
    boundaries = [len("".join(parts[:i])) for i in range(len(parts) + 1)]
    index = data.draw(st.sampled_from(boundaries))
    expected = len(raw[:index].replace("\r\n", "\n"))

    assert refi.SourceText(raw).to_canonical(utf16_offset(raw, index), refi.UNIT_UTF16) == expected


def test_place_splits_at_clauses_and_skips_text_between_them():
    clauses = [(0, 10), (12, 20), (25, 30)]

    assert refi.place(clauses, 5, 27) == [(0, 5, 10), (1, 12, 20), (2, 25, 27)]
    assert refi.place(clauses, 20, 25) == []
    assert refi.place(clauses, 12, 14) == [(1, 12, 14)]
    assert refi.uncovered_characters("0123456789ab" + "x" * 18, 8, 14, refi.place(clauses, 8, 14)) == 2


# --- pure: reading ----------------------------------------------------------------------------

CODE = "3c51efbb-071f-43a7-9f32-228b89668e8d"
USER = "8ca3a2c1-8b7a-41c3-a9dd-a8fb46caa645"
SOURCE = "56a79789-d535-4fb8-bedd-a915504c54ba"


def selection_xml(start: int, end: int, guid: str = "11111111-1111-1111-1111-111111111111", name: str = "") -> str:
    return (
        f'<PlainTextSelection guid="{guid}" name="{name}" startPosition="{start}" endPosition="{end}">'
        f'<Coding guid="{uuid.uuid4()}" creatingUser="{USER}"><CodeRef targetGUID="{CODE}"/></Coding>'
        "</PlainTextSelection>"
    )


def project_xml(selections: str = "", origin: str = "Test", source: str = "", extra: str = "") -> bytes:
    source = source or (
        f'<TextSource guid="{SOURCE}" name="Doc" plainTextPath="internal://{SOURCE}.txt">{selections}</TextSource>'
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<Project xmlns="urn:QDA-XML:project:1.0" name="P" origin="{origin}">'
        f'<Users><User guid="{USER}" name="Ann"/></Users>'
        f'<CodeBook><Codes><Code guid="{CODE}" name="Talent" isCodable="true"/></Codes></CodeBook>'
        f"<Sources>{source}</Sources>{extra}</Project>"
    ).encode()


def archive(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def qdpx(qde: bytes, text: bytes = "Talent matters.\n第二行𠀀。\n".encode()) -> bytes:
    return archive({"project.qde": qde, f"Sources/{SOURCE.upper()}.TXT": text})


def test_reads_nvivo_positions_as_utf16_over_the_crlf_text_with_a_bom():
    raw = "𠀀 first line\r\nsecond 𠀀 line\r\n"
    start = utf16_offset(raw, raw.index("second"))
    data = qdpx(
        project_xml(selection_xml(start, start + 6), origin="NVivo for Windows 12.6"), b"\xef\xbb\xbf" + raw.encode()
    )

    source = refi.read_file(data, "x.qdpx").sources[0]
    selection = source.selections[0]

    assert source.unit == refi.UNIT_UTF16
    assert source.text == "𠀀 first line\nsecond 𠀀 line\n"
    assert source.text[selection.start : selection.end] == "second"


def test_reads_atlas_positions_with_line_breaks_counted_once():
    raw = "one\r\ntwo\r\nthree"
    start = "one\ntwo\nthree".index("three")
    data = qdpx(project_xml(selection_xml(start, start + 5), origin="ATLAS.ti 9"), raw.encode())

    source = refi.read_file(data, "x.qdpx").sources[0]

    assert source.unit == refi.UNIT_CODEPOINT_LF
    assert source.text[source.selections[0].start : source.selections[0].end] == "three"


def test_an_unknown_writer_is_recognised_by_the_quotes_in_selection_names():
    raw = "😀 intro 😀\nthe coded sentence is here\n"
    start = utf16_offset(raw, raw.index("the coded"))
    selections = selection_xml(start, start + 18, name="the coded sentence…")
    data = qdpx(project_xml(selections, origin="SomeTool 2"), raw.encode())

    source = refi.read_file(data, "x.qdpx").sources[0]

    assert source.unit == refi.UNIT_UTF16
    assert "the text itself" in source.unit_reason
    assert source.text[source.selections[0].start : source.selections[0].end] == "the coded sentence"


def test_a_selection_splitting_a_character_is_kept_for_the_report_not_refused():
    raw = "a𠀀b"
    data = qdpx(project_xml(selection_xml(2, 4), origin="NVivo for Mac 12.7.0"), raw.encode())

    selection = refi.read_file(data, "x.qdpx").sources[0].selections[0]

    assert selection.start is None and "surrogate pair" in selection.problem


def test_codebooks_in_other_namespace_versions_are_read():
    data = (
        '<?xml version="1.0"?><CodeBook xmlns="urn:QDA-XML:codebook:0:4" origin="ATLAS.ti Win 23">'
        f'<Codes><Code guid="{{{CODE.upper()}}}" name="A" isCodable="false" color="#F0A">'
        '<Code guid="b3bae912-0f40-4549-8e8f-dd46acd4f161" name="B" isCodable="true"/></Code></Codes></CodeBook>'
    ).encode()

    parsed = refi.read_file(data, "book.qdc")

    assert parsed.kind == "qdc"
    assert [(c.guid, c.name, c.codable, c.colour) for c in parsed.iter_codes()] == [
        (CODE, "A", False, "#ff00aa"),
        ("b3bae912-0f40-4549-8e8f-dd46acd4f161", "B", True, ""),
    ]


def test_variables_come_from_sources_and_from_cases_with_their_types():
    variables = (
        "<Variables>"
        '<Variable guid="00000000-0000-0000-0000-0000000000a1" name="Policy number" typeOfVariable="Integer"/>'
        '<Variable guid="00000000-0000-0000-0000-0000000000a2" name="binding" typeOfVariable="Boolean"/>'
        '<Variable guid="00000000-0000-0000-0000-0000000000a3" name="weight" typeOfVariable="Float"/>'
        '<Variable guid="00000000-0000-0000-0000-0000000000a4" name="Release date" typeOfVariable="Date"/>'
        "</Variables>"
    )
    values = (
        '<VariableValue><VariableRef targetGUID="00000000-0000-0000-0000-0000000000a1"/>'
        "<IntegerValue>7</IntegerValue></VariableValue>"
        '<VariableValue><VariableRef targetGUID="00000000-0000-0000-0000-0000000000a2"/>'
        "<BooleanValue>true</BooleanValue></VariableValue>"
    )
    case = (
        '<Cases><Case guid="00000000-0000-0000-0000-0000000000c1" name="c">'
        '<VariableValue><VariableRef targetGUID="00000000-0000-0000-0000-0000000000a3"/>'
        "<FloatValue>0.5</FloatValue></VariableValue>"
        '<VariableValue><VariableRef targetGUID="00000000-0000-0000-0000-0000000000a4"/>'
        "<DateValue>2021-04-28</DateValue></VariableValue>"
        f'<SourceRef targetGUID="{SOURCE}"/></Case></Cases>'
    )
    source = f'<TextSource guid="{SOURCE}" name="Doc" plainTextPath="internal://{SOURCE}.txt">{values}</TextSource>'
    qde = project_xml(source=source).replace(b"<Sources>", (variables + case + "<Sources>").encode())

    parsed = refi.read_file(qdpx(qde), "p.qdpx")

    assert parsed.sources[0].variables == {
        "Policy number": 7,
        "binding": True,
        "weight": 0.5,
        "Release date": "2021-04-28",
    }


BAD_FILES = {
    "not a zip": ("p.qdpx", b"this is text, not an archive", "is not a zip archive"),
    "no .qde": ("p.qdpx", archive({"sources/a.txt": b"abc"}), "has no .qde file at its root"),
    "two .qde": ("p.qdpx", archive({"a.qde": project_xml(), "b.qde": project_xml()}), "several .qde files"),
    "zip slip": ("p.qdpx", archive({"project.qde": project_xml(), "../../etc/evil.txt": b"x"}), "outside the archive"),
    "zip bomb": (
        "p.qdpx",
        archive({"project.qde": project_xml(), "sources/big.txt": bytes(20 * 1024 * 1024)}),
        "zip bomb",
    ),
    "not well-formed": ("p.qde", b"<Project name='x'", "not well-formed XML"),
    "external entity": (
        "p.qde",
        b'<?xml version="1.0"?><!DOCTYPE Project [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<Project xmlns="urn:QDA-XML:project:1.0" name="&xxe;"/>',
        "document type",
    ),
    "entity expansion": (
        "p.qde",
        b'<?xml version="1.0"?><!DOCTYPE P [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b'<Project xmlns="urn:QDA-XML:project:1.0" name="&b;"/>',
        "document type",
    ),
    "fails the schema": (
        "p.qde",
        b'<Project xmlns="urn:QDA-XML:project:1.0" name="P"><Sets/></Project>',
        "does not follow the REFI-QDA schema: /Project/Sets",
    ),
    "bad GUID": (
        "p.qde",
        b'<Project xmlns="urn:QDA-XML:project:1.0" name="P"><Users><User guid="c001"/></Users></Project>',
        "does not follow the REFI-QDA schema",
    ),
    "not REFI": ("p.qde", b"<html><body/></html>", "not a REFI-QDA project or codebook"),
    "selection past its text": ("p.qdpx", qdpx(project_xml(selection_xml(5, 500))), "outside its text"),
    "code that is not in the codebook": (
        "p.qdpx",
        qdpx(project_xml(selection_xml(0, 6).replace(CODE, "00000000-0000-0000-0000-000000000001"))),
        "not in the file's codebook",
    ),
    "missing source file": ("p.qdpx", archive({"project.qde": project_xml(selection_xml(0, 3))}), "not in the archive"),
    "path out of the sources folder": (
        "p.qdpx",
        qdpx(project_xml().replace(f"internal://{SOURCE}.txt".encode(), b"internal://../project.qde")),
        "points outside the archive's sources folder",
    ),
    "text not UTF-8": ("p.qdpx", qdpx(project_xml(), "Talent 甲".encode("gb18030")), "is not UTF-8"),
    "empty": ("p.qdpx", b"", "empty"),
    "unknown kind": ("p.docx", b"PK\x03\x04", "imports .qdpx, .qde and .qdc files"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_are_refused_with_a_message_naming_the_problem(case):
    name, data, message = BAD_FILES[case]

    with pytest.raises(refi.RefiError, match=message.replace(".", r"\.").replace("(", r"\(")):
        refi.read_file(data, name)


def test_too_many_archive_entries_are_refused_before_reading():
    data = archive({f"sources/{i}.txt": b"x" for i in range(5)} | {"project.qde": project_xml()})

    with pytest.raises(refi.RefiError, match="has 6 entries; PolicyCoder reads at most 5"):
        refi.read_file(data, "p.qdpx", refi.Limits(max_entries=5))


def test_a_large_declared_expansion_is_refused_before_decompressing():
    data = archive({"project.qde": project_xml(), "sources/a.txt": random.Random(0).randbytes(1_200_000)})

    with pytest.raises(refi.RefiError, match="would expand to 1 MiB; PolicyCoder reads at most 0 MiB"):
        refi.read_file(data, "p.qdpx", refi.Limits(max_total_bytes=1024))


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["not a zip", "zip bomb", "selection past its text", "external entity"])
def test_the_command_refuses_bad_files_and_writes_nothing(case, tmp_path, project):
    name, data, _ = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(data)
    before = table_counts()

    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("import_project", str(path), "--project", "study")

    assert table_counts() == before


# --- the real samples -----------------------------------------------------------------------


def sample_xml(name: str) -> tuple[ET.Element, dict[str, bytes]]:
    path = REFI_DATA / name
    if name.endswith(".qde"):
        return ET.fromstring(path.read_bytes()), {}
    files = unzip(path.read_bytes())
    return ET.fromstring(files["project.qde"]), files


def independent_counts(root: ET.Element) -> dict[str, int]:
    """Codes, text-bearing sources and their text selections, as the file holds them."""
    sources = list(root.iter(f"{NS}TextSource")) + [
        p.find(f"{NS}Representation") for p in root.iter(f"{NS}PDFSource") if p.find(f"{NS}Representation") is not None
    ]
    return {
        "codes": sum(1 for _ in root.find(f"{NS}CodeBook").iter(f"{NS}Code")),
        "sources": len(sources),
        "selections": sum(len(s.findall(f"{NS}PlainTextSelection")) for s in sources),
        "users": len(root.findall(f"{NS}Users/{NS}User")),
    }


def imported_counts(project: Project, report: refi.ImportReport) -> dict[str, int]:
    return {
        "codes": Node.objects.filter(project=project).count(),
        "sources": Policy.objects.filter(project=project).count(),
        "selections": report.selections_placed + len(report.unplaced),
        "users": Membership.objects.filter(project=project).count(),
    }


def nvivo_selections(root: ET.Element, files: dict[str, bytes]):
    """Every selection of an NVivo file as (source GUID, the text NVivo showed, its code-point
    span in the text with LF line ends, coding user GUID, code GUID), computed here from
    UTF-16 units over the stored file (BOM skipped, CRLF counted as 2)."""
    names = {n.lower(): n for n in files}
    for source in root.iter(f"{NS}TextSource"):
        raw = files[names["sources/" + source.get("plainTextPath")[11:]]].decode("utf-8").removeprefix("\ufeff")
        assert set(raw) & set(map(chr, range(32))) <= {"\r", "\n", "\t"}  # the conversion below assumes it
        units = raw.encode("utf-16-le")

        def code_point(position, units=units):
            prefix = units[: 2 * position].decode("utf-16-le")
            if prefix.endswith("\r") and units[2 * position : 2 * position + 2] == "\n".encode("utf-16-le"):
                prefix = prefix[:-1]
            return len(prefix.replace("\r\n", "\n"))

        for selection in source.findall(f"{NS}PlainTextSelection"):
            start, end = (int(selection.get(a)) for a in ("startPosition", "endPosition"))
            (coding,) = selection.findall(f"{NS}Coding")
            shown = units[2 * start : 2 * end].decode("utf-16-le")
            code = coding.find(f"{NS}CodeRef").get("targetGUID")
            yield source.get("guid"), shown, (code_point(start), code_point(end)), coding.get("creatingUser"), code


def pieces_of(span: tuple[int, int], clauses: list[tuple[int, int]]) -> list[tuple[int, int]]:
    start, end = span
    return [(max(start, s), min(end, e)) for s, e in clauses if s < end and e > start]


@pytest.mark.parametrize("sample", NVIVO_SAMPLES)
def test_nvivo_selections_fall_on_the_text_nvivo_showed_in_paragraph_clauses(sample):
    """The default rule (articles, falling back to paragraphs) on the real NVivo texts: every
    selection is converted to the span NVivo showed and lies in clauses (read + segment +
    place, as the import does, without the database)."""
    root, files = sample_xml(sample)
    parsed = refi.read_file((REFI_DATA / sample).read_bytes(), sample)
    texts = {source.guid: source.text for source in parsed.sources}
    clauses = {guid: [(c.start, c.end) for c in segment(text, "article").clauses] for guid, text in texts.items()}
    converted = {s.guid: (s.start, s.end) for source in parsed.sources for s in source.selections}

    for (source, shown, span, _, _), selection in zip(
        nvivo_selections(root, files), root.iter(f"{NS}PlainTextSelection"), strict=True
    ):
        assert converted[selection.get("guid")] == span
        pieces = refi.place(clauses[source], *span)
        assert [(s, e) for _, s, e in pieces] == pieces_of(span, clauses[source]) != []
        placed = "".join(texts[source][s:e] for _, s, e in pieces)
        assert "".join(placed.split()) == "".join(shown.split())


# None: the database tests import with the default rule (one clause per line, about 15,000
# per NVivo text), which is fast since the clause trigger reads Policy.text_length instead of
# counting the text for every clause. Set a rule here to import with it instead.
NVIVO_DB_RULE = None


@pytest.mark.django_db
@pytest.mark.parametrize("sample", NVIVO_SAMPLES)
def test_nvivo_samples_import_every_selection_exactly_on_the_text_nvivo_showed(sample):
    root, files = sample_xml(sample)
    get_user_model().objects.create(username="Gergo")  # an existing user is matched by name

    parsed = refi.read_path(REFI_DATA / sample)
    project, report = services.import_refi(actor=None, parsed=parsed, file_name=sample, rule=NVIVO_DB_RULE)

    assert imported_counts(project, report) == independent_counts(root)
    assert report.unplaced == [] and report.selections_placed == independent_counts(root)["selections"]
    members = {str(m.refi_guid): m.user_id for m in Membership.objects.filter(project=project)}
    nodes = {str(n.refi_guid): n.pk for n in Node.objects.filter(project=project)}
    policies = {str(p.refi_guid): p for p in Policy.objects.filter(project=project)}
    clauses = {
        guid: list(Clause.objects.filter(policy=policy).order_by("start").values_list("start", "end"))
        for guid, policy in policies.items()
    }
    expected = set()
    for source, shown, span, user, code in nvivo_selections(root, files):
        policy = policies[source]
        pieces = pieces_of(span, clauses[source])
        placed = "".join(policy.text[s:e] for s, e in pieces)
        assert "".join(placed.split()) == "".join(shown.split())
        expected |= {(policy.pk, members[user], nodes[code], s, e) for s, e in pieces}
    references = Reference.objects.filter(policy__project=project)
    assert set(references.values_list("policy_id", "coder_id", "node_id", "start", "end")) == expected
    assert references.count() == len(expected) == report.references_created
    users = {u.username: u for u in get_user_model().objects.filter(memberships__project=project)}
    assert users["Gergo"].is_active  # matched, not created
    assert [u.is_active for name, u in users.items() if name != "Gergo"] == [False]


@pytest.mark.django_db
def test_the_atlas_reference_project_imports_its_codebook_sources_and_reports_every_selection():
    root, _ = sample_xml("sky-loom_Project.qde")
    counts = independent_counts(root)

    project, report = services.import_refi(
        actor=None, parsed=refi.read_path(REFI_DATA / "sky-loom_Project.qde"), file_name="Project.qde"
    )

    assert imported_counts(project, report) == counts == {"codes": 14, "sources": 8, "selections": 8, "users": 3}
    assert report.selections_placed == 0
    assert {u["reason"].split(": ")[-1] for u in report.unplaced} == {
        "its text " + u["reason"].split("its text ")[-1] for u in report.unplaced
    }
    assert all("a bare .qde carries no source files" in u["reason"] for u in report.unplaced)
    mabel = Policy.objects.get(project=project, title="Mabel.txt")
    assert mabel.attributes == {"gender": "female", "age": "25"}  # ATLAS.ti writes attributes as sets
    assert Node.objects.get(project=project, name="Coke").colour == "#966450"
    assert report.ignored["VideoSources (PolicyCoder codes text)"] == 2


# --- export, validation, round trip ---------------------------------------------------------


@pytest.fixture
def coded(project, admin_user, supervisor, coder_a, coder_b, policy):
    """A project with everything an export carries: nested coloured nodes, metadata and typed
    attributes, a text with 𠀀 and one stored with CRLF, a catalogue entry without text,
    two coders, the consensus layer, a selection across clauses, memos."""
    services.update_policy(
        actor=admin_user,
        policy=policy,
        potency_level="Local regulation",
        release_departments=["Jining People's Congress", "Standing Committee"],
        jurisdiction="Jining",
        release_date="2017-01",
        source_url="https://example.org/jining",
        attributes={"pages": 3, "ratio": 0.25, "binding": True, "tags": ["a", "b"], "Jurisdiction": "x"},
    )
    crlf = services.create_policy(
        actor=admin_user, project=project, title="CRLF", text="第一条　甲𠀀乙。\r\n第二条　丙丁。\r\n", language="zh"
    )
    services.create_policy(actor=admin_user, project=project, title="Catalogue entry only")
    supply = services.add_node(
        actor=admin_user, project=project, name="Supply-based", colour="#AABBCC", description="供给"
    )
    talent = services.add_node(actor=admin_user, project=project, name="Talent", parent=supply)
    deep = services.add_node(actor=admin_user, project=project, name="Deep & <odd>", parent=talent)
    services.add_node(actor=admin_user, project=project, name="Demand-based")
    text = policy.text
    at = text.index("𠀀")
    clause3 = Clause.objects.get(policy=policy, number=3)
    for coder in (coder_a, coder_b):
        services.add_reference(actor=coder, clause=clause3, node=talent, start=at - 2, end=at + 3, coder=coder)
    services.add_reference(
        actor=coder_a, clause=clause3, node=deep, start=clause3.start, end=clause3.end, coder=coder_a, memo="why\nso"
    )
    services.add_references_for_selection(
        actor=coder_b,
        policy=policy,
        node=supply,
        start=text.index("第一条"),
        end=text.index("第三条") - 5,
        coder=coder_b,
    )
    services.add_reference(actor=supervisor, clause=clause3, node=talent, start=at - 2, end=at + 3, consensus=True)
    c = Clause.objects.get(policy=crlf, number=2)
    services.add_reference(actor=coder_a, clause=c, node=deep, start=c.start, end=c.end, coder=coder_a, memo="m")
    return project


@pytest.mark.django_db
def test_an_export_validates_against_the_schema_and_the_semantic_checks(coded):
    data = export_bytes(coded)
    files = unzip(data)

    assert_valid(xsd("Project"), files["project.qde"])
    assert refi.check_qdpx(data) == []
    root = ET.fromstring(files["project.qde"])
    assert root.get("origin") == refi.ORIGIN
    users = {u.get("id"): u.get("name") for u in root.iter(f"{NS}User")}
    assert users == {
        "coder_a": "coder_a",
        "coder_b": "coder_b",
        "supervisor_p": "supervisor_p",
        refi.CONSENSUS_ID: "Consensus",
    }
    assert len(list(root.iter(f"{NS}PlainTextSelection"))) == Reference.objects.filter(policy__project=coded).count()
    assert len(list(root.iter(f"{NS}Note"))) == 2
    crlf = Policy.objects.get(project=coded, title="CRLF")
    source = next(s for s in root.iter(f"{NS}TextSource") if s.get("name") == "CRLF")
    text = files[f"sources/{source.get('guid')}.txt"].decode()
    assert text == crlf.text.replace("\r\n", "\n")
    (selection,) = source.iter(f"{NS}PlainTextSelection")
    start, end = int(selection.get("startPosition")), int(selection.get("endPosition"))
    assert text[start:end] == "第二条　丙丁。"
    assert selection.get("name") == "第二条　丙丁。"


@pytest.mark.django_db
def test_exporting_twice_gives_the_same_bytes(coded):
    assert export_bytes(coded) == export_bytes(coded)


@pytest.mark.django_db
def test_round_trip_export_import_export_gives_the_same_file(coded, admin_user):
    first = export_bytes(coded)

    copy, report = services.import_refi(actor=None, parsed=refi.read_file(first, "study.qdpx"), file_name="x")
    second = export_bytes(copy)

    assert copy.pk != coded.pk and report.unplaced == [] and report.split == []
    assert unzip(second) == unzip(first)
    assert second == first
    # Positions in the CRLF policy moved (its text is stored with LF now); everything else is equal.
    fields = ("policy__number", "clause__number", "node__name", "coder__username", "consensus", "text", "memo")
    again = Reference.objects.filter(policy__project=copy).values_list(*fields)
    original = Reference.objects.filter(policy__project=coded).values_list(*fields)
    assert sorted(again, key=repr) == sorted(((*r[:5], r[5].replace("\r", ""), r[6]) for r in original), key=repr)
    assert sorted(
        Reference.objects.filter(policy__project=copy, policy__number=1).values_list("start", "end")
    ) == sorted(Reference.objects.filter(policy__project=coded, policy__number=1).values_list("start", "end"))
    policy = Policy.objects.get(project=copy, number=1)
    assert (policy.release_date, policy.release_departments, policy.attributes) == (
        "2017-01",
        ["Jining People's Congress", "Standing Committee"],
        {"pages": 3, "ratio": 0.25, "binding": True, "tags": '["a", "b"]', "Jurisdiction": "x"},
    )
    assert report.nodes_created == 4 and report.users_matched == 3 and report.users_created == 0


@pytest.mark.django_db
def test_a_utf16_export_for_nvivo_reimports_to_the_same_references(coded):
    data = export_bytes(coded, utf16_positions=True)
    root = ET.fromstring(unzip(data)["project.qde"])

    copy, report = services.import_refi(actor=None, parsed=refi.read_file(data, "study.qdpx"))

    assert root.get("origin") == refi.ORIGIN_UTF16
    assert report.units and {u["unit"] for u in report.units} == {refi.UNIT_LABELS[refi.UNIT_UTF16]}
    assert unzip(export_bytes(copy))["project.qde"] == unzip(export_bytes(coded))["project.qde"]


@pytest.mark.django_db
def test_importing_sources_already_in_the_project_is_refused_and_writes_nothing(coded, admin_user):
    parsed = refi.read_file(export_bytes(coded), "study.qdpx")
    before = table_counts()

    with pytest.raises(ValidationError, match="already in this project"):
        services.import_refi(actor=admin_user, parsed=parsed, project=coded)

    assert table_counts() == before


@pytest.mark.django_db
def test_an_import_writes_one_event_per_created_object_and_the_report(coded):
    admin_user = UserFactory(username="operator", is_superuser=True)  # a new project: the site's operators
    data = export_bytes(coded)
    parsed = refi.read_file(data, "study.qdpx")
    mark = Event.objects.order_by("-id").values_list("id", flat=True).first()

    copy, report = services.import_refi(actor=admin_user, parsed=parsed, file_name="study.qdpx")

    events = Event.objects.filter(id__gt=mark)
    by_action = {a: events.filter(action=a).count() for a in events.values_list("action", flat=True).distinct()}
    assert by_action == {
        "project.create": 1,
        "membership.create": Membership.objects.filter(project=copy).count(),
        "node.create": Node.objects.filter(project=copy).count(),
        "policy.create": Policy.objects.filter(project=copy).count(),
        "reference.create": Reference.objects.filter(policy__project=copy).count(),
        "project.import": 1,
    }
    summary = events.get(action="project.import")
    assert summary.id == report.event_id and summary.actor == admin_user
    assert summary.after["references_created"] == report.references_created
    assert summary.after["sha256"] == hashlib.sha256(data).hexdigest()
    assert set(events.values_list("project_id", flat=True)) == {copy.pk}


@pytest.mark.django_db
def test_selections_across_clauses_are_split_and_the_report_says_so(project, admin_user):
    raw = "第一条　甲乙。\n第二条　丙丁。\n"
    start, end = raw.index("乙"), raw.index("丙") + 1
    data = qdpx(project_xml(selection_xml(start, end)), raw.encode())

    _, report = services.import_refi(actor=admin_user, parsed=refi.read_file(data, "x.qdpx"), project=project)

    policy = Policy.objects.get(project=project, refi_guid=SOURCE)
    assert [r.text for r in Reference.objects.filter(policy=policy).order_by("start")] == ["乙。", "第二条　丙"]
    assert report.split == [
        {"source": "Doc", "selection": "11111111-1111-1111-1111-111111111111", "clauses": ["1-1", "1-2"]}
    ]
    assert report.selections_placed == 1 and report.references_created == 2


@pytest.mark.django_db
def test_unplaceable_selections_are_reported_with_the_reason(project, admin_user):
    raw = "标题\n\n第一条　甲乙。\n"
    blank = raw.index("\n\n") + 1
    comment = (
        '<PlainTextSelection guid="22222222-2222-2222-2222-222222222222" startPosition="0" endPosition="2">'
        "<Description>just a comment</Description></PlainTextSelection>"
    )
    selections = selection_xml(blank, blank + 1) + comment + selection_xml(3, 3, guid=str(uuid.uuid4()))
    data = qdpx(project_xml(selections), raw.encode())

    _, report = services.import_refi(
        actor=admin_user, parsed=refi.read_file(data, "x.qdpx"), project=project, rule="article"
    )

    reasons = [u["reason"] for u in report.unplaced]
    assert reasons == [
        "it lies outside every clause (blank text or a heading)",
        "it applies no code (a comment or annotation); PolicyCoder keeps coded passages only",
        "it is empty (zero length)",
    ]
    assert report.selections_placed == 0 and Reference.objects.count() == 0


@pytest.mark.django_db
def test_users_are_matched_by_name_or_created_inactive(project, admin_user):
    # The site's operator (the command line) matches any user of the site.
    existing = get_user_model().objects.create(username="someone", first_name="Ann", last_name="")
    data = qdpx(project_xml(selection_xml(0, 6)))

    services.import_refi(actor=None, parsed=refi.read_file(data, "x.qdpx"), project=project)
    data = qdpx(project_xml(selection_xml(0, 6)).replace(b'name="Ann"', b'name="Bea Cid"'))
    data = data.replace(SOURCE.encode(), b"99999999-9999-9999-9999-999999999999")
    other = services.create_project(actor=None, slug="other", name="Other")
    services.import_refi(actor=admin_user, parsed=refi.read_file(data, "x.qdpx"), project=other)

    assert Reference.objects.get(policy__project=project).coder == existing
    created = Reference.objects.get(policy__project=other).coder
    assert (created.username, created.first_name, created.is_active, created.has_usable_password()) == (
        "Bea_Cid",
        "Bea Cid",
        False,
        False,
    )
    assert Membership.objects.get(project=other, user=created).role == Role.CODER


def test_a_project_admin_matches_only_the_projects_members(project, coder_a):
    """A project admin importing a file cannot put coding in the name of a site user who
    never joined the project: only members are matched; the file's other users become new
    inactive users, and the report says so."""
    boss = UserFactory(username="boss")
    services.set_membership(actor=None, project=project, user=boss, role=Role.ADMIN)
    outsider = get_user_model().objects.create(username="ann")  # on the site, not in the project
    data = qdpx(project_xml(selection_xml(0, 6)))

    _, report = services.import_refi(actor=boss, parsed=refi.read_file(data, "x.qdpx"), project=project)

    coder = Reference.objects.get(policy__project=project).coder
    assert coder != outsider and (coder.username, coder.is_active) == ("Ann", False)
    assert not Membership.objects.filter(user=outsider).exists()
    assert any("'Ann' is no member of this project" in note and "'Ann'." in note for note in report.notes)

    # Two members called Ann: the report says so, and only that (not also "no member").
    twins_ = [get_user_model().objects.create(username=name, first_name="Ann") for name in ("ann_a", "ann_b")]
    third = services.create_project(actor=None, slug="third", name="Third")
    services.set_membership(actor=None, project=third, user=boss, role=Role.ADMIN)
    for twin in twins_:
        services.set_membership(actor=None, project=third, user=twin, role=Role.CODER)
    _, twins = services.import_refi(actor=boss, parsed=refi.read_file(data, "x.qdpx"), project=third)
    assert [note for note in twins.notes if "Ann" in note] == [
        "Several users are called 'Ann'; a new user was created instead."
    ]

    other = services.create_project(actor=None, slug="other", name="Other")
    services.set_membership(actor=None, project=other, user=boss, role=Role.ADMIN)
    services.set_membership(actor=None, project=other, user=outsider, role=Role.CODER)
    services.import_refi(actor=boss, parsed=refi.read_file(data, "x.qdpx"), project=other)
    assert Reference.objects.get(policy__project=other).coder == outsider  # a member there: matched


@pytest.mark.django_db
def test_a_codebook_exports_valid_and_imports_once(coded, tmp_path):
    path = tmp_path / "book.qdc"
    call_command("export_project", "--project", "study", "--format", "qdc", "-o", str(path))
    assert_valid(xsd("Codebook"), path.read_bytes())

    call_command("import_project", str(path), "--project", "books")
    call_command("import_project", str(path), "--project", "books")
    again = tmp_path / "again.qdc"
    call_command("export_project", "--project", "books", "--format", "qdc", "-o", str(again))

    books = Project.objects.get(slug="books")
    assert again.read_bytes() == path.read_bytes()
    assert Node.objects.filter(project=books).count() == Node.objects.filter(project=coded).count() == 4
    assert Node.objects.get(project=books, name="Talent").parent.name == "Supply-based"
    assert Node.objects.get(project=books, name="Supply-based").colour == "#aabbcc"


@pytest.mark.django_db
def test_the_commands_export_and_import_a_project(coded, tmp_path, capsys):
    path = tmp_path / "study.qdpx"

    call_command("export_project", "--project", "study", "-o", str(path))
    call_command("import_project", str(path), "--rule", "article")

    out = capsys.readouterr().out
    assert "Selections: 7 in the file with 7 codings; 7 placed, 0 not placed" in out
    assert Project.objects.filter(name="Study").count() == 2
    with pytest.raises(CommandError, match="There is no project 'nope'"):
        call_command("export_project", "--project", "nope", "-o", str(path))


@pytest.mark.django_db
def test_an_empty_project_exports_a_minimal_valid_file(project):
    data = export_bytes(project)

    assert_valid(xsd("Project"), unzip(data)["project.qde"])
    assert unzip(data) == {
        "project.qde": b'<?xml version="1.0" encoding="utf-8"?>\n'
        b'<Project xmlns="urn:QDA-XML:project:1.0" name="Study" origin="PolicyCoder 0.1.0">\n'
        b"</Project>\n"
    }
    with pytest.raises(refi.RefiError, match="no nodes"):
        refi.export_codebook(project, io.BytesIO())


def test_sample_text_fixture_has_an_astral_character():
    assert "𠀀" in SAMPLE_TEXT  # the round trip above relies on it
