"""Read policies from tables, documents, zip archives and folders into rows to import.

Parsing only: nothing here touches the database. ``read_path`` (the command line) and
``read_upload`` (the web page) return a ``ParsedImport``: the rows found and every problem,
each naming its file, row and column. ``coding.services.plan_policy_import`` checks the rows
against the project and ``coding.services.import_policies`` writes them, so both doors share
one reader and one writer.

What comes in:
- a table (``.csv``, ``.tsv``, ``.xlsx``, ``.json``), one row per policy, with the columns of
  ``COLUMN_ALIASES`` (header case, spaces, hyphens and underscores ignored; the study's
  Chinese headers accepted) and any other column kept as a policy attribute;
- a document (``.txt``, ``.docx``, ``.pdf`` text layer, ``.html``), one policy, titled by
  the document title or its first line;
- a ``.zip`` or a folder of documents, with at most one metadata table naming them.

Text is decoded deliberately (``decode_text``: BOM, then UTF-8, UTF-16 by its zero bytes,
GB18030 checked against GB2312's common characters), and cleaned once (``clean_text``:
LF line ends, no control characters). Clause offsets later refer to exactly that text.

Hostile input is refused with a reason: sizes over the limit, zip bombs (too many entries,
too large, too high an expansion ratio), entries whose path leaves the archive, symbolic
links, encrypted entries, and XML with a DTD or entities in ``.docx``.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import json
import re
import stat
import unicodedata
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from coding.dates import parse_partial_date

__all__ = [
    "DOCUMENT_TYPES",
    "TABLE_TYPES",
    "Document",
    "Limits",
    "ParsedImport",
    "PolicyRow",
    "Problem",
    "Refused",
    "clean_text",
    "decode_text",
    "read_path",
    "read_upload",
]

TABLE_TYPES = (".csv", ".tsv", ".xlsx", ".json")
DOCUMENT_TYPES = (".txt", ".docx", ".pdf", ".html", ".htm")
# Formats people will certainly try; refusing them with what to do beats skipping them.
REFUSED_TYPES = {
    ".doc": "is an old Word .doc file; save it as .docx or .txt",
    ".wps": "is a WPS document; save it as .docx or .txt",
    ".rtf": "is an RTF file; save it as .docx or .txt",
    ".odt": "is an OpenDocument file; save it as .docx or .txt",
    ".xls": "is an old Excel .xls file; save it as .xlsx or .csv",
    ".et": "is a WPS spreadsheet; save it as .xlsx or .csv",
    ".ods": "is an OpenDocument spreadsheet; save it as .xlsx or .csv",
    ".zip": "is an archive inside the archive; nested archives are not read",
    ".rar": "is a RAR archive; only .zip archives are read",
    ".7z": "is a 7-Zip archive; only .zip archives are read",
}

# Canonical field for each header, compared after ``_header_key`` (lower case, no spaces,
# hyphens or underscores). The Chinese headers are those of the legal databases' exports.
COLUMN_ALIASES = {
    "number": "number",
    "no": "number",
    "编号": "number",
    "序号": "number",
    "title": "title",
    "标题": "title",
    "名称": "title",
    "text": "text",
    "正文": "text",
    "file": "file",
    "filename": "file",
    "文件": "file",
    "potencylevel": "potency_level",
    "效力级别": "potency_level",
    "releasedepartment": "release_departments",
    "releasedepartments": "release_departments",
    "发布部门": "release_departments",
    "jurisdiction": "jurisdiction",
    "releasedate": "release_date",
    "发布日期": "release_date",
    "implementationdate": "implementation_date",
    "实施日期": "implementation_date",
    "sourceurl": "source_url",
    "url": "source_url",
    "language": "language",
    "语言": "language",
    "attributes": "attributes",
}
METADATA_FIELDS = ("potency_level", "jurisdiction", "source_url", "language")
DATE_FIELDS = ("release_date", "implementation_date")

ProgressCallback = Callable[[str, int, int], None]


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What an import may bring in; exceeding any is refused with a message."""

    max_bytes: int = 50 * 1024 * 1024  # the upload, file or folder as given
    max_zip_entries: int = 20_000
    max_expanded_bytes: int = 512 * 1024 * 1024  # an archive's content once unpacked
    max_zip_ratio: int = 100  # unpacked / packed; text compresses ~3-10x, bombs 1000x+

    @classmethod
    def from_megabytes(cls, megabytes: int, **others: int) -> Limits:
        return cls(max_bytes=megabytes * 1024 * 1024, **others)


@dataclass(frozen=True)
class Problem:
    """One reason the import cannot go ahead, located as precisely as the input allows."""

    file: str
    message: str
    row: int | None = None
    column: str | None = None
    row_label: str = "row"  # JSON tables count items, not rows

    def __str__(self) -> str:
        where = [self.file] if self.file else []
        if self.row is not None:
            where.append(f"{self.row_label} {self.row}")
        location = ", ".join(where)
        if self.column:
            location = f"{location}, {self.column}" if location else self.column
        return f"{location}: {self.message}" if location else self.message


class Refused(Exception):
    """A whole file (or archive) cannot be read; the message says why."""


@dataclass
class PolicyRow:
    """One policy to create or update, as read; not yet checked against the project."""

    source: str  # the table or document it came from
    row: int | None  # row as a spreadsheet numbers it (header = 1), item for JSON; None for a document
    title: str
    number: int | None = None
    text: str | None = None  # None: no text given (a catalogue entry, or metadata only under --update)
    text_file: str = ""  # the document the text came from, if not inline
    encoding: str = ""  # how the text's bytes were decoded
    fields: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)  # field -> header as written, for messages
    row_label: str = "row"

    def problem(self, message: str, column_field: str | None = None) -> Problem:
        column = self.columns.get(column_field, column_field) if column_field else None
        return Problem(self.source, message, self.row, column, self.row_label)


@dataclass
class ParsedImport:
    rows: list[PolicyRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    label: str = ""


@dataclass(frozen=True)
class Document:
    title: str
    text: str
    encoding: str


# --- text ----------------------------------------------------------------------------------

_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
# C0/C1 controls except tab and LF (line breaks were turned into LF first), and the BOM.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufeff]")


def clean_text(text: str) -> str:
    """The text as stored: every line break (CRLF, CR, VT, FF, NEL, U+2028/9) becomes LF,
    control characters other than tab are removed, and so is any byte-order mark."""
    return _CONTROL.sub("", _LINE_BREAKS.sub("\n", text))


_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8 (BOM)"),
    (b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32LE (BOM)"),
    (b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32BE (BOM)"),
    (b"\xff\xfe", "utf-16-le", "UTF-16LE (BOM)"),
    (b"\xfe\xff", "utf-16-be", "UTF-16BE (BOM)"),
)
_PLAUSIBLE_BAD_SHARE = 0.02  # more odd characters than this and it was not text
_GB2312_SHARE = 0.8  # real simplified-Chinese text is >99% GB2312; Big5/Shift-JIS misread as GBK is not


_SAMPLE = 40_000  # characters judged from each of the start, middle and end of a text


def _sample(text: str) -> str:
    """What the plausibility checks look at: all of a short text, three slices of a long one
    (a 150 MB table would otherwise take seconds per check, for the same verdict)."""
    if len(text) <= 3 * _SAMPLE:
        return text
    middle = len(text) // 2
    return text[:_SAMPLE] + text[middle : middle + _SAMPLE] + text[-_SAMPLE:]


def _odd_share(text: str) -> float:
    """Share of characters no text document contains: controls (other than whitespace),
    private-use, unassigned and surrogate code points, U+FFFD."""
    text = _sample(text)
    if not text:
        return 0.0
    odd = 0
    for ch in text:
        if ch in "\t\n\r\x0b\x0c" or ch == " ":
            continue
        if ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs"):
            odd += 1
    return odd / len(text)


def _gb2312_share(text: str) -> float:
    """Share of the CJK characters of ``text`` that GB2312 (everyday simplified Chinese) has."""
    cjk = [ch for ch in _sample(text) if "\u3400" <= ch <= "\u9fff" or "\U00020000" <= ch <= "\U0003134f"]
    if not cjk:
        return 1.0
    common = 0
    for ch in cjk:
        try:
            ch.encode("gb2312")
        except UnicodeEncodeError:
            continue
        common += 1
    return common / len(cjk)


_COMMON_RANGES = (
    (0x20, 0x7E),  # ASCII
    (0xA0, 0x24F),  # Latin
    (0x370, 0x4FF),  # Greek, Cyrillic
    (0x2000, 0x206F),  # general punctuation
    (0x2100, 0x25FF),  # symbols, arrows, numbers, boxes
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3000, 0x30FF),  # CJK punctuation, kana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xFF00, 0xFFEF),  # full-width forms
    (0x20000, 0x3134F),  # CJK extensions B-G
)


def _common_share(text: str) -> float:
    """Share of characters in the scripts policy documents are written in (Chinese, Latin,
    their punctuation), whitespace included. Bytes read in the wrong byte order or as the
    wrong encoding land mostly elsewhere (Hangul, Yi, unassigned, private use)."""
    text = _sample(text)
    if not text:
        return 0.0
    common = 0
    for ch in text:
        code = ord(ch)
        if ch in "\t\n\r" or any(low <= code <= high for low, high in _COMMON_RANGES):
            common += 1
    return common / len(text)


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """``(text, label)`` if the bytes read as UTF-16 without a BOM, else None.

    Only tried when the data holds zero bytes, which UTF-8 and GB18030 text never does but
    UTF-16 always does (every ASCII character and line break has a zero byte). Of the two
    byte orders, the one giving text in the expected scripts wins; binary data gives neither.
    """
    if len(data) % 2 or b"\x00" not in data:
        return None
    best: tuple[float, str, str] | None = None
    for codec, label in (("utf-16-le", "UTF-16LE"), ("utf-16-be", "UTF-16BE")):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        share = _common_share(text)
        if _odd_share(text) <= _PLAUSIBLE_BAD_SHARE and share >= 0.9 and (best is None or share > best[0]):
            best = (share, text, label)
    return (best[1], best[2]) if best else None


def _declared_charset(data: bytes) -> str | None:
    """The charset an HTML page declares in its first 4 KB, mapped to a codec we trust."""
    head = data[:4096].decode("ascii", errors="replace").lower()
    match = re.search(r"<meta[^>]+charset\s*=\s*[\"']?\s*([a-z0-9_\-]+)", head)
    if not match:
        return None
    declared = match.group(1)
    if declared in ("gb2312", "gbk", "gb18030", "x-gbk", "cp936"):
        return "gb18030"  # pages that say gb2312 routinely contain GBK characters
    if declared in ("utf-8", "utf8"):
        return "utf-8"
    return declared


def decode_text(data: bytes, *, declared: str | None = None) -> tuple[str, str]:
    """Decode document bytes, returning ``(text, encoding label)``.

    Order: a byte-order mark (UTF-8, UTF-16, UTF-32); UTF-16 without BOM when the data
    has zero bytes and one byte order gives text in the expected scripts; a charset the
    document declares (HTML), if it decodes; strict UTF-8; strict GB18030 (a superset of
    GBK and GB2312) provided at least 80% of its Chinese characters are everyday GB2312
    ones, which tells GBK text apart from Big5 or Shift-JIS bytes that merely happen to
    decode. Every candidate must look like text (at most 2% control, private-use or
    unassigned characters).

    Raises ``Refused`` for empty data and for bytes none of these explain.
    """
    if not data:
        raise Refused("is empty")
    for bom, codec, label in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                raise Refused(f"starts with a {label.split()[0]} byte-order mark but is not valid {label}") from None
            return text, label
    utf16 = _utf16_without_bom(data)
    if utf16:
        return utf16
    candidates = [(declared, f"{declared} (declared)")] if declared else []
    candidates += [("utf-8", "UTF-8"), ("gb18030", "GB18030")]
    for codec, label in candidates:
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        if _odd_share(text) > _PLAUSIBLE_BAD_SHARE:
            continue
        if codec == "gb18030" and _gb2312_share(text) < _GB2312_SHARE:
            continue
        return text, label
    # Text in any legacy encoding has (almost) no C0 control bytes; binary data is full of them.
    controls = sum(data.count(bytes([b])) for b in (*range(0, 9), *range(14, 32), 127))
    if controls > len(data) * 0.01:
        raise Refused("is not text (it looks like binary data)")
    raise Refused(
        "is in an encoding that could not be recognised (tried UTF-8, UTF-16 and GB18030/GBK); save it as UTF-8"
    )


def _first_line(text: str) -> str:
    for line in text.split("\n"):
        line = line.strip()
        if line:
            # Some documents open with a whole paragraph; a title is a line, not a page.
            return line if len(line) <= 200 else line[:199] + "…"
    return ""


def _guess_language(text: str) -> str:
    sample = text[:5000]
    cjk = sum(1 for ch in sample if "\u3400" <= ch <= "\u9fff")
    latin = sum(1 for ch in sample if ch.isascii() and ch.isalpha())
    if cjk == 0 and latin:
        return "en"
    return "zh"


# --- documents -----------------------------------------------------------------------------


def _read_txt(data: bytes) -> Document:
    text, encoding = decode_text(data)
    text = clean_text(text)
    return Document(_first_line(text), text, encoding)


_HTML_SKIP = {"script", "style", "noscript", "template", "head", "svg", "object", "iframe"}
_HTML_BLOCKS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
    "p", "pre", "section", "table", "td", "th", "tr", "ul", "body", "caption", "tbody", "thead",
}  # fmt: skip


class _HTMLText(HTMLParser):
    """Visible text of a page, one line per block element, and its <title>/<h1>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0
        self.in_title = False
        self.in_h1 = False
        self.title = ""
        self.h1 = ""

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in _HTML_SKIP:
            self.skip += 1
        if tag == "pre":
            self.pre += 1
        if tag == "h1" and not self.h1:
            self.in_h1 = True
        if tag in _HTML_BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag in _HTML_BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in _HTML_SKIP:
            self.skip = max(0, self.skip - 1)
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag == "h1":
            self.in_h1 = False
        if tag in _HTML_BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
            return
        if self.skip:
            return
        if not self.pre:
            data = re.sub(r"[ \t\r\n\f]+", " ", data)  # HTML collapses whitespace outside <pre>
        if self.in_h1:
            self.h1 += data
        self.parts.append(data)


def _read_html(data: bytes) -> Document:
    text, encoding = decode_text(data, declared=_declared_charset(data))
    parser = _HTMLText()
    parser.feed(clean_text(text))
    parser.close()
    lines = (line.strip(" ") for line in "".join(parser.parts).split("\n"))
    body = "\n".join(line for line in lines if line.strip())
    body = clean_text(body)
    if body:
        body += "\n"
    title = " ".join(parser.title.split()) or " ".join(parser.h1.split()) or _first_line(body)
    return Document(title, body, encoding)


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DC = "{http://purl.org/dc/elements/1.1/}"


def _safe_xml(data: bytes, what: str):
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise Refused(
            f"has a DTD or XML entity declarations in {what}, which Word never writes; refused for safety (XXE)"
        ) from None
    except SafeET.ParseError as exc:
        raise Refused(f"has damaged XML in {what} ({exc})") from None


def _docx_text(element) -> str:
    """Paragraph text in document order: runs' text, tabs and breaks; a line per paragraph."""
    parts: list[str] = []

    def walk(node) -> None:
        tag = node.tag
        if tag == f"{_W}t":
            parts.append(node.text or "")
        elif tag == f"{_W}tab":
            parts.append("\t")
        elif tag in (f"{_W}br", f"{_W}cr"):
            parts.append("\n")
        elif tag == f"{_W}noBreakHyphen":
            parts.append("-")
        for child in node:
            walk(child)
        if tag == f"{_W}p":
            parts.append("\n")

    walk(element)
    return "".join(parts)


def _read_docx(data: bytes, limits: Limits) -> Document:
    try:
        archive = _ZipBundle("", data, limits)
    except Refused as exc:
        raise Refused(f"is not a readable Word .docx file: it {exc}") from None
    if "word/document.xml" not in archive.members:
        raise Refused("is not a Word .docx file (it has no word/document.xml)")
    root = _safe_xml(archive.read("word/document.xml"), "word/document.xml")
    body = root.find(f"{_W}body")
    text = clean_text(_docx_text(body if body is not None else root))
    title = ""
    if "docProps/core.xml" in archive.members:
        core = _safe_xml(archive.read("docProps/core.xml"), "docProps/core.xml")
        element = core.find(f"{_DC}title")
        title = " ".join((element.text or "").split()) if element is not None else ""
    return Document(title or _first_line(text), text, "docx (UTF-8 XML)")


def _read_pdf(data: bytes) -> Document:
    # Imported here: only PDF imports pay for loading pypdf.
    import pypdf
    from pypdf.errors import PyPdfError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise Refused("is not a PDF file")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Refused("is password-protected; save an unprotected copy")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except Refused:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise Refused(f"is not a readable PDF ({type(exc).__name__}: {exc})") from None
    text = clean_text("\n".join(pages))
    if not text.strip():
        raise Refused("has no text layer (it is probably a scan); run OCR on it and import the text")
    if not text.endswith("\n"):
        text += "\n"
    title = " ".join(str(meta_title).split())
    return Document(title or _first_line(text), text, "PDF text layer")


def read_document(name: str, data: bytes, limits: Limits | None = None) -> Document:
    """Title, cleaned text and encoding of one document; ``Refused`` when it cannot be read."""
    limits = limits or Limits()
    suffix = PurePosixPath(name).suffix.lower()
    if suffix == ".txt":
        document = _read_txt(data)
    elif suffix in (".html", ".htm"):
        document = _read_html(data)
    elif suffix == ".docx":
        document = _read_docx(data, limits)
    elif suffix == ".pdf":
        document = _read_pdf(data)
    else:
        raise Refused(f"is not a document type that can be read ({', '.join(DOCUMENT_TYPES)})")
    if not document.text.strip():
        raise Refused("has no text")
    return document


# --- archives and folders ------------------------------------------------------------------


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def _safe_member(raw: str) -> str:
    """The member path as a clean relative POSIX path, or ``Refused`` if it leaves the archive."""
    name = raw.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        raise Refused(f"has an entry {raw!r} whose path leads outside the archive (path traversal); refused")
    return "/".join(part for part in path.parts if part not in ("", "."))


def _member_name(info: zipfile.ZipInfo) -> str:
    # Without the UTF-8 flag, names are in the creator's code page: Windows in China writes GBK,
    # which Python has decoded as cp437. Recover the bytes and decode them as what they are.
    if info.flag_bits & 0x800:
        return info.filename
    raw = info.filename.encode("cp437", errors="replace")
    for codec in ("utf-8", "gb18030"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return info.filename


def _ignored(name: str) -> bool:
    """macOS resource forks, hidden files and folders: never documents anyone meant to send."""
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(name).parts)


class _ZipBundle:
    """The members of a zip archive, checked against the limits before anything is unpacked."""

    def __init__(self, label: str, data: bytes, limits: Limits) -> None:
        self.label = label
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
            raise Refused("is not a zip archive, or it is damaged") from None
        if len(infos) > limits.max_zip_entries:
            raise Refused(f"has {len(infos):,} entries; at most {limits.max_zip_entries:,} are accepted")
        expanded = sum(info.file_size for info in infos)
        if expanded > limits.max_expanded_bytes:
            raise Refused(
                f"would unpack to {_mb(expanded)}; at most {_mb(limits.max_expanded_bytes)} is accepted (a zip bomb?)"
            )
        # Small archives of repetitive text legitimately compress well; a ratio only means
        # something once the unpacked size is large enough to hurt.
        if expanded > 1024 * 1024 and expanded > limits.max_zip_ratio * max(len(data), 1):
            raise Refused(
                f"would unpack {expanded / max(len(data), 1):,.0f} times its size ({_mb(len(data))} to "
                f"{_mb(expanded)}); more than {limits.max_zip_ratio} times looks like a zip bomb; refused"
            )
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = _safe_member(_member_name(info))
            if info.is_dir() or not name:
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise Refused(f"has an entry {name!r} that is a symbolic link; refused")
            if info.flag_bits & 0x1:
                raise Refused(f"has an encrypted entry {name!r}; unpack it and zip it again without a password")
            if info.file_size > 1024 * 1024 and info.file_size > limits.max_zip_ratio * max(info.compress_size, 1):
                raise Refused(f"has an entry {name!r} that would unpack more than {limits.max_zip_ratio} times")
            self.members[name] = info

    def names(self) -> list[str]:
        return sorted(self.members)

    def has(self, name: str) -> bool:
        return name in self.members

    def hint(self, name: str) -> str | None:
        near = difflib.get_close_matches(name, self.names(), n=1)
        return near[0] if near else None

    def read(self, name: str) -> bytes:
        try:
            # zipfile stops at the declared size and checks the CRC, so a member that lies about
            # its size cannot unpack to more than the limits checked above.
            return self.zip.read(self.members[name])
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise Refused(f"is damaged ({exc})") from None


class _FolderBundle:
    """Files under a folder (hidden ones skipped), with the same rules as a zip archive.

    Files are looked up on demand, so a table next to thousands of unrelated files costs
    nothing; ``names()`` lists the folder when a whole folder is imported.
    """

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = root.resolve()
        self.label = root.name
        self.limits = limits
        self.read_bytes = 0

    def _path(self, name: str) -> Path | None:
        path = self.root / name
        if _ignored(name) or not path.is_file():
            return None
        if not path.resolve().is_relative_to(self.root):
            raise Refused(f"has {name!r}, a link to a file outside the folder; refused")
        return path

    def names(self) -> list[str]:
        names = []
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root).as_posix()
            if self._path(relative) is not None:
                names.append(relative)
        return names

    def has(self, name: str) -> bool:
        return self._path(name) is not None

    def hint(self, name: str) -> str | None:
        folder = (self.root / name).parent
        if not folder.is_dir() or not folder.resolve().is_relative_to(self.root):
            return None
        siblings = [(folder / entry.name).relative_to(self.root).as_posix() for entry in folder.iterdir()]
        near = difflib.get_close_matches(name, siblings, n=1)
        return near[0] if near else None

    def read(self, name: str) -> bytes:
        path = self._path(name)
        if path is None:
            raise Refused(f"{name!r} is not in the folder")
        self.read_bytes += path.stat().st_size
        if self.read_bytes > self.limits.max_bytes:
            raise Refused(
                f"brings the files read to {_mb(self.read_bytes)}, over the {_mb(self.limits.max_bytes)} limit"
            )
        return path.read_bytes()


# --- tables --------------------------------------------------------------------------------


def _header_key(header: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(header).replace("\ufeff", "")).lower()


def _cell(value: Any, *, clean: bool = True) -> Any:
    """A table cell as text (or a date/list/dict from xlsx/JSON); None when empty.

    ``clean=False`` for cells of a CSV table, whose whole text was cleaned once already.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        value = (clean_text(value) if clean else value).strip()
        return value or None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return value


@dataclass
class _Table:
    headers: list[str]
    records: list[tuple[int, dict[str, Any]]]  # (row number, header -> cell)
    encoding: str
    row_label: str = "row"


def _csv_table(data: bytes, delimiter: str) -> _Table:
    text, encoding = decode_text(data)
    # Policy texts in a cell exceed csv's default field limit (128 KB); the file size limit bounds it.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(clean_text(text), newline=""), delimiter=delimiter)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise Refused(f"is not a readable CSV table (line {reader.line_num}: {exc})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise Refused("has no header row")
    headers = [header.strip() for header in rows[0]]
    records = []
    for number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(headers) and any(cell.strip() for cell in cells[len(headers) :]):
            raise Refused(f"row {number} has {len(cells)} cells but the header names {len(headers)} columns")
        cells = {headers[i]: _cell(cell, clean=False) for i, cell in enumerate(cells) if i < len(headers)}
        records.append((number, cells))
    return _Table(headers, records, encoding)


def _xlsx_date(value: dt.datetime | dt.date, number_format: str) -> str:
    """A date cell at the precision its format shows: a cell formatted ``yyyy`` is a year."""
    value = value.date() if isinstance(value, dt.datetime) else value
    shown = re.sub(r'"[^"]*"|\[[^]]*\]', "", number_format.lower())
    if "d" in shown:
        return value.isoformat()
    if "m" in shown:
        return f"{value.year:04d}-{value.month:02d}"
    return f"{value.year:04d}"


def _xlsx_number(value: float | int, number_format: str) -> str:
    # 2021.10 typed into Excel is the number 2021.1; its format still shows the two decimals.
    match = re.fullmatch(r"0\.(0+)", number_format or "")
    if match and isinstance(value, float):
        return f"{value:.{len(match.group(1))}f}"
    return _cell(value)


def _xlsx_table(data: bytes, limits: Limits) -> _Table:
    import openpyxl  # only xlsx imports pay for it

    _ZipBundle("", data, limits)  # the same bomb and path checks as any archive
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles it does not need
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except DefusedXmlException:
        raise Refused("has DTD or XML entity declarations; refused for safety (XXE)") from None
    except Exception as exc:  # openpyxl raises many types for damaged workbooks
        raise Refused(f"is not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
    sheet = book.worksheets[0]
    headers: list[str] = []
    records = []
    for cells in sheet.iter_rows():
        values = []
        for cell in cells:
            value = cell.value
            if isinstance(value, dt.datetime | dt.date):
                value = _xlsx_date(value, cell.number_format or "")
            elif isinstance(value, int | float) and not isinstance(value, bool):
                value = _xlsx_number(value, cell.number_format or "")
            values.append(_cell(value))
        row_number = cells[0].row if cells else 0
        if not headers:
            if any(values):
                headers = [str(v).strip() if v is not None else "" for v in values]
            continue
        if any(v is not None for v in values):
            records.append((row_number, {headers[i]: v for i, v in enumerate(values) if i < len(headers)}))
    book.close()
    if not headers:
        raise Refused("has no header row in its first sheet")
    return _Table(headers, records, "xlsx")


def _json_table(data: bytes) -> _Table:
    text, encoding = decode_text(data)
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    items = loaded.get("policies") if isinstance(loaded, dict) else loaded
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise Refused('must hold a list of objects, one per policy (or {"policies": [...]})')
    headers: list[str] = []
    for item in items:
        headers += [key for key in item if key not in headers]
    records = [(i, {key: _cell(value) for key, value in item.items()}) for i, item in enumerate(items, start=1)]
    return _Table(headers, records, encoding, row_label="item")


def _read_table(name: str, data: bytes, limits: Limits) -> _Table:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix == ".csv":
        return _csv_table(data, ",")
    if suffix == ".tsv":
        return _csv_table(data, "\t")
    if suffix == ".xlsx":
        return _xlsx_table(data, limits)
    return _json_table(data)


def _number(value: Any) -> int:
    text = str(value).strip()
    if re.fullmatch(r"[0-9０-９]+(\.0+)?", text):
        number = int(text.split(".")[0])
        if number >= 1:
            return number
    raise ValueError(f"{text!r} is not a policy number (a whole number from 1)")


def _departments(value: Any) -> list[str]:
    items = value if isinstance(value, list) else re.split(r"[;；]", str(value))
    return [str(item).strip() for item in items if str(item).strip()]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class _Reader:
    """Turns tables and documents from one source into rows and problems."""

    def __init__(self, limits: Limits, update: bool, progress: ProgressCallback | None) -> None:
        self.limits = limits
        self.update = update
        self.progress = progress
        self.result = ParsedImport()

    def problem(self, file: str, message: str, **where: Any) -> None:
        self.result.problems.append(Problem(file, message, **where))

    def document_row(self, name: str, data: bytes) -> PolicyRow | None:
        try:
            document = read_document(name, data, self.limits)
        except Refused as exc:
            self.problem(name, f"{PurePosixPath(name).name} {exc}")
            return None
        return PolicyRow(
            source=name,
            row=None,
            title=document.title,
            text=document.text,
            text_file=name,
            encoding=document.encoding,
            fields={"language": _guess_language(document.text)},
        )

    def table_rows(self, name: str, table: _Table, bundle: _ZipBundle | _FolderBundle | None) -> set[str]:
        """Rows of a metadata table; returns the files it names."""
        columns: dict[str, str] = {}
        for header in table.headers:
            canonical = COLUMN_ALIASES.get(_header_key(header))
            if canonical is None:
                continue
            if canonical in columns:
                self.problem(name, f"columns {columns[canonical]!r} and {header!r} both mean {canonical}")
                continue
            columns[canonical] = header
        if "title" not in columns and not (self.update and "number" in columns):
            found = ", ".join(repr(h) for h in table.headers) or "none"
            self.problem(name, f"has no title column (or 标题); the headers found are {found}")
            return set()
        if self.update and "number" not in columns:
            self.problem(name, "has no number column (or 编号); --update finds policies by their number")
            return set()
        named: set[str] = set()
        seen_numbers: dict[int, int] = {}
        known = set(columns.values())
        total = len(table.records)
        for index, (row_number, cells) in enumerate(table.records, start=1):
            row = self.table_row(name, table, columns, known, row_number, cells, bundle, named)
            if row is not None and row.number is not None:
                if row.number in seen_numbers:
                    self.result.problems.append(
                        row.problem(
                            f"{row.number} is also the number on {table.row_label} {seen_numbers[row.number]}",
                            "number",
                        )
                    )
                else:
                    seen_numbers[row.number] = row_number
            if row is not None:
                self.result.rows.append(row)
            if self.progress and (index % 200 == 0 or index == total):
                self.progress("read", index, total)
        return named

    def table_row(self, name, table, columns, known, row_number, cells, bundle, named) -> PolicyRow | None:
        get = {canonical: cells.get(header) for canonical, header in columns.items()}
        row = PolicyRow(
            source=name,
            row=row_number,
            title="",
            encoding=table.encoding,
            columns=dict(columns),
            row_label=table.row_label,
        )
        ok = True
        if get.get("number") is not None:
            try:
                row.number = _number(get["number"])
            except ValueError as exc:
                self.result.problems.append(row.problem(str(exc), "number"))
                ok = False
        elif self.update:
            self.result.problems.append(row.problem("a number is needed to find the policy to update", "number"))
            ok = False
        title = get.get("title")
        row.title = _as_text(title) if title is not None else ""
        for name_ in METADATA_FIELDS:
            if get.get(name_) is not None:
                row.fields[name_] = _as_text(get[name_])
        if get.get("release_departments") is not None:
            row.fields["release_departments"] = _departments(get["release_departments"])
        for name_ in DATE_FIELDS:
            if get.get(name_) is None:
                continue
            try:
                row.fields[name_] = parse_partial_date(get[name_]) or ""
            except ValueError as exc:
                self.result.problems.append(row.problem(str(exc), name_))
                ok = False
        attributes = get.get("attributes")
        if isinstance(attributes, dict):
            row.attributes.update({k: v for k, v in attributes.items() if v not in (None, "")})
        elif attributes is not None:
            self.result.problems.append(row.problem("must be an object of name: value pairs", "attributes"))
            ok = False
        for header, value in cells.items():
            if header not in known and value is not None and str(header).strip():
                row.attributes[str(header).strip()] = value
        text, file = get.get("text"), get.get("file")
        if text is not None and file is not None:
            self.result.problems.append(row.problem(f"give either {columns['text']} or {columns['file']}, not both"))
            ok = False
        elif text is not None:
            row.text = _as_text(text)  # cells were cleaned as the table was read
        elif file is not None:
            ok = self.attach_file(row, str(file), bundle, named) and ok
        if not row.title and row.text_file and not self.update:
            row.title = _first_line(row.text or "")
        if not row.title and not self.update:
            self.result.problems.append(row.problem("a title is required", "title"))
            ok = False
        return row if ok else None

    def attach_file(self, row: PolicyRow, file: str, bundle, named: set[str]) -> bool:
        if bundle is None:
            self.result.problems.append(
                row.problem(
                    f"names the file {file!r}, but a table on its own brings no files; "
                    "upload a .zip with the table and its documents",
                    "file",
                )
            )
            return False
        where = "archive" if isinstance(bundle, _ZipBundle) else "folder"
        try:
            member = _safe_member(file)
            found = bundle.has(member)
        except Refused:
            self.result.problems.append(row.problem(f"{file!r} leads outside the {where}; refused", "file"))
            return False
        if not found:
            near = bundle.hint(member)
            hint = f" (did you mean {near!r}?)" if near else ""
            self.result.problems.append(row.problem(f"{file!r} is not in the {where}{hint}", "file"))
            return False
        named.add(member)
        try:
            data = bundle.read(member)
            suffix = PurePosixPath(member).suffix.lower()
            if suffix in REFUSED_TYPES:
                raise Refused(REFUSED_TYPES[suffix])
            document = read_document(member, data, self.limits)
        except Refused as exc:
            self.result.problems.append(row.problem(f"{file!r} {exc}", "file"))
            return False
        row.text, row.text_file, row.encoding = document.text, member, document.encoding
        if not row.title and not self.update:
            row.title = document.title
        row.fields.setdefault("language", _guess_language(document.text))
        return True

    def bundle(self, bundle: _ZipBundle | _FolderBundle, label: str) -> None:
        tables, documents = [], []
        for name in bundle.names():
            if _ignored(name):
                continue
            suffix = PurePosixPath(name).suffix.lower()
            if suffix in TABLE_TYPES:
                tables.append(name)
            elif suffix in DOCUMENT_TYPES:
                documents.append(name)
            elif suffix in REFUSED_TYPES:
                self.problem(name, f"{PurePosixPath(name).name} {REFUSED_TYPES[suffix]}")
            else:
                self.result.notices.append(f"Skipped {name}: not a policy document or table.")
        if len(tables) > 1:
            self.problem(label, f"holds {len(tables)} tables ({', '.join(tables)}); keep one metadata table")
            return
        if tables:
            table_name = tables[0]
            try:
                table = _read_table(table_name, bundle.read(table_name), self.limits)
            except Refused as exc:
                self.problem(table_name, f"{PurePosixPath(table_name).name} {exc}")
                return
            named = self.table_rows(table_name, table, bundle)
            for name in documents:
                if name not in named:
                    self.problem(
                        name, f"is in the {label} but no row of {table_name} names it; add a row or remove the file"
                    )
            return
        if not documents:
            self.problem(label, "holds no policy documents (.txt, .docx, .pdf, .html) and no metadata table")
            return
        if self.update:
            self.problem(label, "--update needs a metadata table with number and file columns to match documents")
            return
        for index, name in enumerate(documents, start=1):
            try:
                data = bundle.read(name)
            except Refused as exc:
                self.problem(name, f"{PurePosixPath(name).name} {exc}")
                continue
            row = self.document_row(name, data)
            if row is not None:
                self.result.rows.append(row)
            if self.progress:
                self.progress("read", index, len(documents))

    def single(self, name: str, data: bytes, folder: _FolderBundle | None) -> None:
        suffix = PurePosixPath(name).suffix.lower()
        if suffix == ".zip":
            try:
                archive = _ZipBundle(name, data, self.limits)
            except Refused as exc:
                self.problem(name, f"{name} {exc}")
                return
            self.bundle(archive, "archive")
        elif suffix in TABLE_TYPES:
            try:
                table = _read_table(name, data, self.limits)
            except Refused as exc:
                self.problem(name, f"{name} {exc}")
                return
            self.table_rows(name, table, folder)
        elif suffix in DOCUMENT_TYPES:
            if self.update:
                self.problem(name, "--update needs a metadata table with number and file columns")
                return
            row = self.document_row(name, data)
            if row is not None:
                self.result.rows.append(row)
        elif suffix in REFUSED_TYPES:
            self.problem(name, f"{name} {REFUSED_TYPES[suffix]}")
        else:
            kinds = ", ".join((*TABLE_TYPES, *DOCUMENT_TYPES, ".zip"))
            self.problem(name, f"{name} is not a file type that can be imported ({kinds})")


def _size_problem(name: str, size: int, limits: Limits) -> Problem | None:
    if size > limits.max_bytes:
        return Problem(name, f"{name} is {_mb(size)}; the limit is {_mb(limits.max_bytes)}")
    return None


def read_upload(
    name: str,
    data: bytes,
    *,
    limits: Limits | None = None,
    update: bool = False,
    progress: ProgressCallback | None = None,
) -> ParsedImport:
    """Rows from one uploaded file: a table, a document or a zip archive.

    ``update`` reads for ``--update``: rows need a number and may leave the title empty.
    """
    limits = limits or Limits()
    name = PurePosixPath(name.replace("\\", "/")).name or "upload"
    reader = _Reader(limits, update, progress)
    reader.result.label = name
    too_big = _size_problem(name, len(data), limits)
    if too_big:
        reader.result.problems.append(too_big)
    else:
        reader.single(name, data, folder=None)
    return reader.result


def read_path(
    path: Path | str,
    *,
    limits: Limits | None = None,
    update: bool = False,
    progress: ProgressCallback | None = None,
) -> ParsedImport:
    """Rows from a file or folder on the server (the command line).

    A folder is read like a zip archive. A table's ``file`` column names files relative to
    the table's own folder, which they may not leave.
    """
    limits = limits or Limits()
    path = Path(path)
    reader = _Reader(limits, update, progress)
    reader.result.label = path.name
    if not path.exists():
        reader.problem(str(path), f"{path} does not exist")
        return reader.result
    try:
        if path.is_dir():
            reader.bundle(_FolderBundle(path, limits), "folder")
            return reader.result
        too_big = _size_problem(path.name, path.stat().st_size, limits)
        if too_big:
            reader.result.problems.append(too_big)
            return reader.result
        folder = _FolderBundle(path.parent, limits) if path.suffix.lower() in TABLE_TYPES else None
        reader.single(path.name, path.read_bytes(), folder)
    except Refused as exc:
        reader.problem(path.name, f"{path.name} {exc}")
    return reader.result


def iter_problems(parsed: ParsedImport) -> Iterator[str]:
    for problem in parsed.problems:
        yield str(problem)
