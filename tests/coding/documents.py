"""Files the import tests feed in, made here rather than shipped: Word documents, PDFs with
and without a text layer, zip archives (well-formed and hostile), and a snapshot of every
table to prove a refused import changed nothing."""

from __future__ import annotations

import io
import random
import zipfile
import zlib
from pathlib import Path
from xml.sax.saxutils import escape

from django.db import connection

from tests.conftest import POLICY_TEXTS

POLICY_FILES = sorted(POLICY_TEXTS.glob("*.txt"))


def policy_text(index: int) -> str:
    """The text of the study's policy file ``index`` (1..17), as stored: UTF-8 with LF."""
    return POLICY_FILES[index - 1].read_text(encoding="utf-8")


# --- .docx -----------------------------------------------------------------------------------

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="word/document.xml"/></Relationships>'
)
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def make_docx(paragraphs: list[str], *, title: str | None = None, doctype: str = "") -> bytes:
    """A minimal Word document: one <w:p> per paragraph, split into two runs (as Word does
    when formatting changes mid-paragraph), tabs as <w:tab/>. ``doctype`` is put before the
    root element (to test that entity declarations are refused)."""
    body = []
    for paragraph in paragraphs:
        half = len(paragraph) // 2
        runs = []
        for part in (paragraph[:half], paragraph[half:]):
            pieces = part.split("\t")
            inner = "<w:tab/>".join(f'<w:t xml:space="preserve">{escape(piece)}</w:t>' for piece in pieces)
            runs.append(f"<w:r><w:rPr><w:b/></w:rPr>{inner}</w:r>")
        body.append(f"<w:p><w:pPr/>{''.join(runs)}</w:p>")
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{doctype}'
        f'<w:document xmlns:w="{W_NS}"><w:body>{"".join(body)}<w:sectPr/></w:body></w:document>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("word/document.xml", document)
        if title is not None:
            archive.writestr(
                "docProps/core.xml",
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"'
                f' xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{escape(title)}</dc:title>'
                "</cp:coreProperties>",
            )
    return out.getvalue()


XXE_DOCTYPE = '<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


# --- .pdf ------------------------------------------------------------------------------------


def make_pdf(lines: list[str], *, title: str | None = None, text_layer: bool = True) -> bytes:
    """A PDF written by hand: 40 lines a page, shown with a Type0 font whose character codes
    are the Unicode code points and whose ToUnicode CMap says so, so any text extractor
    recovers Chinese exactly (the glyphs are not embedded: viewers substitute a font). Without
    ``text_layer`` the pages carry only a grey rectangle, as a scan without OCR would."""
    objects: list[bytes] = []

    def add(content: bytes) -> int:
        objects.append(content)
        return len(objects)

    # Only the 256-code blocks the text uses: a full 64K-entry map makes extraction slow.
    blocks = sorted({ord(c) >> 8 for line in lines for c in line} | {0})
    ranges = "\n".join(f"<{h:02X}00> <{h:02X}FF> <{h:02X}00>" for h in blocks)
    cmap = (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /UCS def /CMapType 2 def\n"
        "1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
        f"{len(blocks)} beginbfrange\n{ranges}\nendbfrange\n"
        "endcmap CMapName currentdict /CMap defineresource pop end end"
    ).encode()
    to_unicode = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(cmap), cmap))
    descriptor = add(
        b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 4 /FontBBox [0 0 1000 1000] /ItalicAngle 0 "
        b"/Ascent 1000 /Descent 0 /CapHeight 1000 /StemV 80 >>"
    )
    cid_font = add(
        b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo << /Registry (Adobe) "
        b"/Ordering (Identity) /Supplement 0 >> /FontDescriptor %d 0 R /DW 1000 >>" % descriptor
    )
    font = add(
        b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /Identity-H "
        b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (cid_font, to_unicode)
    )
    pages_id = add(b"")
    page_ids = []
    chunks = [lines[i : i + 40] for i in range(0, len(lines), 40)] or [[]]
    for chunk in chunks:
        if text_layer:
            ops = ["BT /F1 12 Tf 14 TL 40 800 Td"]
            ops += [f"<{''.join(f'{ord(c):04X}' for c in line)}> Tj T*" for line in chunk]
            ops.append("ET")
        else:
            ops = ["0.5 g 40 400 500 300 re f"]
        content = zlib.compress("\n".join(ops).encode())
        stream = add(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(content), content))
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 %d 0 R >> >> "
                b"/Contents %d 0 R >>" % (pages_id, font, stream)
            )
        )
    kids = b" ".join(b"%d 0 R" % page for page in page_ids)
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    info = add(b"<< /Title <FEFF%s> >>" % title.encode("utf-16-be").hex().upper().encode()) if title else None
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, content in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, content)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info_ref = b" /Info %d 0 R" % info if info else b""
    out += b"trailer\n<< /Size %d /Root %d 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        info_ref,
        xref,
    )
    return bytes(out)


# --- .zip ------------------------------------------------------------------------------------


def make_zip(entries: dict[str, bytes | str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(zipfile.ZipInfo(name), content if isinstance(content, bytes) else content.encode())
    return out.getvalue()


def zip_bomb(megabytes: int = 20) -> bytes:
    """A small archive that unpacks to ``megabytes`` of zeros (ratio about 1000)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("policy.txt", "w") as member:
        block = b"\0" * (1024 * 1024)
        for _ in range(megabytes):
            member.write(block)
    return out.getvalue()


def zip_with_gbk_names(entries: dict[str, bytes]) -> bytes:
    """An archive as Windows in China writes one: names in GBK without the UTF-8 flag.

    zipfile always writes non-ASCII names as UTF-8, so the archive is written with ASCII
    placeholders of the same byte length, which are then replaced by the GBK bytes.
    """
    placeholders = {}
    for index, name in enumerate(entries):
        raw = name.encode("gbk")
        placeholders[raw] = chr(ord("A") + index).encode() * len(raw)
    data = make_zip({placeholders[name.encode("gbk")].decode(): content for name, content in entries.items()})
    for raw, placeholder in placeholders.items():
        assert data.count(placeholder) == 2  # the local header and the central directory
        data = data.replace(placeholder, raw)
    return data


def random_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def write_files(folder: Path, files: dict[str, bytes | str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return folder


# --- the database, whole ---------------------------------------------------------------------


def database_state() -> dict[str, list[str]]:
    """Every row of every table, so a test can show an import changed nothing at all."""
    state = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            cursor.execute(f'SELECT * FROM "{table}"')
            rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cursor.fetchall()]
            state[table] = sorted(map(repr, rows))
    return state


def table_counts(state: dict[str, list[str]]) -> dict[str, int]:
    return {table: len(rows) for table, rows in state.items()}
