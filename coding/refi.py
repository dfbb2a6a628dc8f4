"""REFI-QDA interchange: read and write ``.qdpx`` projects, bare ``.qde`` files and ``.qdc`` codebooks.

The format is described in ``shared/reference/REFI-QDA.md``; the decisions that matter here:

- **Untrusted input.** Files are parsed with defusedxml with DTDs refused (so no entity
  expansion and no external entities), never fetched from ``xsi:schemaLocation``, and
  validated against the schemas shipped in ``coding/refi_schemas/``. Archives are read in
  memory, never extracted: entry count, declared sizes and compression ratio are checked
  before anything is decompressed, and an entry name that could point outside the archive
  (``../``, an absolute path) refuses the whole file. Any refusal raises :class:`RefiError`
  with a message for the person who sent the file.
- **Positions.** The standard counts Unicode code points from 0, half-open. NVivo counts
  UTF-16 code units over the file as stored (CRLF counts 2, the BOM not at all); ATLAS.ti
  counts a line break once although it writes CRLF. The unit is chosen per source from
  ``origin``, then checked against the text itself (every selection must fit, and where a
  selection's ``name`` quotes its text the quote must match); positions are converted to
  code points of the canonical text PolicyCoder stores (no BOM, LF line ends, no control
  characters but TAB and LF).
- **Our exports** write that canonical text as ``sources/<GUID>.txt`` (UTF-8, no BOM, LF), so
  every convention agrees except over characters outside the BMP, which is why an export can
  also be written in UTF-16 positions for NVivo. GUIDs are kept from an imported file (the
  ``refi_guid`` fields) or derived with uuid5 from the project slug and the object's id, so
  exporting twice gives the same file byte for byte.
- **Layers.** A selection's layer is the ``creatingUser`` of its ``Coding`` (in NVivo that is
  the person who applied the code; the selection's own ``creatingUser`` is often whoever
  merged the project), falling back to the selection's. The consensus layer is exported as
  a user whose ``id`` is :data:`CONSENSUS_ID`; on import that user means the consensus layer.

Everything above the "database" section at the end is pure (no Django); that last section
reads a project from the database into the plain dataclasses the writer takes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import re
import shutil
import tempfile
import uuid
import zipfile
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from xml.etree import ElementTree as ET

import defusedxml
from defusedxml import ElementTree as SafeET

from coding import offsets

__all__ = [
    "CONSENSUS_ID",
    "ORIGIN",
    "FileProject",
    "ImportReport",
    "Limits",
    "RefiError",
    "canonical_text",
    "place",
    "read_file",
    "write_codebook",
    "write_project",
]

PROJECT_NS = "urn:QDA-XML:project:1.0"
CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
ORIGIN = "PolicyCoder 0.1.0"
ORIGIN_UTF16 = f"{ORIGIN} (UTF-16 positions for NVivo)"
CONSENSUS_ID = "policycoder:consensus"
CONSENSUS_NAME = "Consensus"
SCHEMA_DIR = Path(__file__).resolve().parent / "refi_schemas"
# Namespace of every GUID PolicyCoder derives; a fixed constant, so derivations never change.
GUID_NS = uuid.UUID("6f0f3c55-2a4e-4d59-9a43-1c4b2f1d8e70")

MIB = 1024 * 1024

UNIT_CODEPOINT = "codepoint"
UNIT_UTF16 = "utf16"
UNIT_CODEPOINT_LF = "codepoint-lf"
UNIT_LABELS = {
    UNIT_CODEPOINT: "Unicode code points over the text as stored (the REFI-QDA standard)",
    UNIT_UTF16: "UTF-16 code units over the text as stored, a CRLF counting 2 (NVivo)",
    UNIT_CODEPOINT_LF: "Unicode code points with each line break counted once (ATLAS.ti)",
}


class RefiError(ValueError):
    """A file PolicyCoder refuses, with a message for the person who sent it."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What an imported file may be; anything beyond is refused before it is decompressed."""

    max_file_bytes: int = 512 * MIB
    max_entries: int = 10_000
    max_member_bytes: int = 256 * MIB
    max_total_bytes: int = 1024 * MIB
    # Text and XML compress 3-15 times; a zip bomb compresses hundreds or thousands of times.
    max_ratio: int = 100
    max_depth: int = 64


# --- text and positions (pure) -------------------------------------------------------------

# Characters XML 1.0 cannot carry, and control characters that have no place in a policy text.
_DROP_RE = re.compile("\r(?=\n)|[\x00-\x08\x0b\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_TO_LF_RE = re.compile("[\r\x0c]")
_NOT_CANONICAL_RE = re.compile("[\x00-\x08\x0b-\x1f\ufffe\uffff\ud800-\udfff]")
_SPACES_RE = re.compile(r"\s+")
_XML_SPACES_RE = re.compile("[ \t\n\r]+")


def canonical_text(text: str) -> tuple[str, tuple[int, ...]]:
    """The text PolicyCoder stores: CRLF and lone CR become LF, a form feed a line break,
    other control characters (not TAB, not LF) are dropped.

    Returns the canonical text and the sorted indexes (in ``text``) of the characters
    dropped, which is what converting a position needs. A BOM must be removed before.
    """
    if not _NOT_CANONICAL_RE.search(text):
        return text, ()
    dropped = tuple(m.start() for m in _DROP_RE.finditer(text))
    return _TO_LF_RE.sub("\n", _DROP_RE.sub("", text)), dropped


def xml_safe(text: str) -> str:
    """``text`` with what XML 1.0 cannot carry removed and line ends as LF."""
    return canonical_text(text)[0]


def squeeze(text: str) -> str:
    return _SPACES_RE.sub(" ", text).strip()


class SourceText:
    """A source's text as the file holds it, and the conversion of its positions."""

    def __init__(self, raw: str):
        self.raw = raw.removeprefix("\ufeff")  # never counted (NVivo writes one, counts none)
        self.canonical, self._dropped = canonical_text(self.raw)
        self._lf_base: tuple[str, tuple[int, ...]] | None = None

    def _base(self, unit: str) -> tuple[str, tuple[int, ...]]:
        if unit != UNIT_CODEPOINT_LF:
            return self.raw, self._dropped
        if self._lf_base is None:
            base = self.raw.replace("\r\n", "\n")
            self._lf_base = (base, canonical_text(base)[1])
        return self._lf_base

    def length(self, unit: str) -> int:
        base, _ = self._base(unit)
        return offsets.utf16_length(base) if unit == UNIT_UTF16 else len(base)

    def to_canonical(self, position: int, unit: str) -> int:
        """Code-point index into the canonical text of ``position`` counted in ``unit``.

        Raises ValueError when the position is outside the text or splits a character.
        """
        base, dropped = self._base(unit)
        if unit == UNIT_UTF16:
            index = offsets.utf16_to_codepoint(base, position)
        elif 0 <= position <= len(base):
            index = position
        else:
            raise ValueError(f"position {position} is outside the text (0..{len(base)})")
        return index - bisect_left(dropped, index)


def place(clauses: Sequence[tuple[int, int]], start: int, end: int) -> list[tuple[int, int, int]]:
    """The pieces of ``[start, end)`` that lie in clauses: ``(clause index, start, end)``,
    one per clause it touches, in order.

    ``clauses`` are sorted, non-overlapping ``(start, end)`` spans. Text between clauses
    (headings, blank lines) is not part of any piece. Empty when nothing is covered.
    """
    pieces = []
    first = max(bisect_left(clauses, (start, start)) - 1, 0)
    for index in range(first, len(clauses)):
        c_start, c_end = clauses[index]
        if c_start >= end:
            break
        if c_end > start:
            pieces.append((index, max(start, c_start), min(end, c_end)))
    return pieces


def uncovered_characters(text: str, start: int, end: int, pieces: Iterable[tuple[int, int, int]]) -> int:
    """How many non-blank characters of ``text[start:end]`` no piece covers (pieces from
    :func:`place`, so they do not overlap)."""

    def solid(part: str) -> int:
        return len("".join(part.split()))

    return solid(text[start:end]) - sum(solid(text[s:e]) for _, s, e in pieces)


def canonical_guid(value: str) -> str:
    """Lower case, no braces: the form GUIDs are compared and stored in."""
    return str(uuid.UUID(value.strip().strip("{}")))


def derive_guid(namespace: uuid.UUID, name: str) -> str:
    return str(uuid.uuid5(namespace, name))


def project_namespace(slug: str) -> uuid.UUID:
    return uuid.uuid5(GUID_NS, f"project:{slug}")


def format_datetime(value: dt.datetime) -> str:
    """UTC without fractions, as every sample writes it: 2025-06-11T17:23:28Z."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.replace(microsecond=0)


# --- what a file holds (the reader's output) -----------------------------------------------


@dataclasses.dataclass
class FileUser:
    guid: str
    name: str
    login: str = ""
    consensus: bool = False
    declared: bool = True  # False: referenced by a GUID the file's Users do not list


@dataclasses.dataclass
class FileCode:
    guid: str
    name: str
    codable: bool
    colour: str
    description: str
    children: list[FileCode] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FileCoding:
    guid: str
    code_guid: str
    user_guid: str | None
    created: dt.datetime | None


@dataclasses.dataclass
class FileSelection:
    guid: str
    name: str
    raw_start: int
    raw_end: int
    user_guid: str | None
    created: dt.datetime | None
    modified: dt.datetime | None
    codings: list[FileCoding]
    memo: str
    start: int | None = None  # code points of the canonical text, once converted
    end: int | None = None
    problem: str = ""  # why it cannot be placed, when it cannot


@dataclasses.dataclass
class FileSource:
    guid: str
    name: str
    kind: str
    text: str | None  # canonical; None when the file does not carry it
    text_problem: str
    created: dt.datetime | None
    variables: dict[str, Any]
    selections: list[FileSelection]
    unit: str = UNIT_CODEPOINT
    unit_reason: str = ""
    whole_codings: int = 0


@dataclasses.dataclass
class FileProject:
    """Everything PolicyCoder imports from one file, positions already in code points."""

    kind: str  # "qdpx", "qde" or "qdc"
    name: str
    origin: str
    description: str = ""
    sha256: str = ""
    users: list[FileUser] = dataclasses.field(default_factory=list)
    codes: list[FileCode] = dataclasses.field(default_factory=list)
    sources: list[FileSource] = dataclasses.field(default_factory=list)
    ignored: dict[str, int] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def iter_codes(self) -> Iterator[FileCode]:
        stack = list(reversed(self.codes))
        while stack:
            code = stack.pop()
            yield code
            stack.extend(reversed(code.children))

    @property
    def selection_count(self) -> int:
        return sum(len(s.selections) for s in self.sources)


@dataclasses.dataclass
class ImportReport:
    """What an import did, for the person who ran it and for the audit trail.

    The counts read from the file (``codes``, ``sources``, ``selections``, ``codings``,
    ``users``) add up: every code was created or matched, every source became a policy, and
    every selection was placed (``selections_placed``) or is listed in ``unplaced`` with
    the reason.
    """

    file_name: str
    kind: str
    origin: str
    project: str = ""
    project_created: bool = False
    rule: str = ""
    codes: int = 0
    nodes_created: int = 0
    nodes_matched: int = 0
    sources: int = 0
    policies_created: int = 0
    clauses_created: int = 0
    selections: int = 0
    codings: int = 0
    selections_placed: int = 0
    references_created: int = 0
    duplicates: int = 0
    users: int = 0
    users_matched: int = 0
    users_created: int = 0
    units: list[dict[str, str]] = dataclasses.field(default_factory=list)
    unplaced: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    split: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    trimmed: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    ignored: dict[str, int] = dataclasses.field(default_factory=dict)
    event_id: int | None = None  # the "project.import" audit event that stores this report

    LISTS = ("units", "unplaced", "split", "trimmed", "notes")

    def as_dict(self, limit: int = 500) -> dict[str, Any]:
        """JSON-ready; each list keeps its first ``limit`` entries and its full length."""
        data = dataclasses.asdict(self)
        del data["event_id"]
        for name in self.LISTS:
            data[f"{name}_total"] = len(data[name])
            data[name] = data[name][:limit]
        return data

    def lines(self) -> list[str]:
        """The report as text, for the command line."""
        out = [
            f"{self.file_name} ({self.kind}, written by {self.origin or 'an unnamed program'}) "
            f"into project {self.project}{' (new)' if self.project_created else ''}.",
            f"Codes: {self.codes} in the file; {self.nodes_created} nodes created, {self.nodes_matched} matched.",
            f"Users: {self.users} in the file; {self.users_created} created (inactive), {self.users_matched} matched.",
            f"Sources: {self.sources} in the file; {self.policies_created} policies created "
            f"with {self.clauses_created} clauses.",
            f"Selections: {self.selections} in the file with {self.codings} codings; {self.selections_placed} placed, "
            f"{len(self.unplaced)} not placed, {len(self.split)} split across clauses; "
            f"{self.references_created} references created, {self.duplicates} duplicates skipped.",
        ]
        out += [f"Positions in {u['source']!r}: {u['unit']} (from {u['why']})." for u in self.units]
        out += [f"Note: {note}" for note in self.notes]
        out += [
            f"Not placed: selection {u['selection']} in {u['source']!r} [{u['start']}, {u['end']}): {u['reason']}."
            for u in self.unplaced
        ]
        out += [
            f"Split: selection {s['selection']} in {s['source']!r} became one reference per clause "
            f"({', '.join(s['clauses'])})."
            for s in self.split
        ]
        out += [
            f"Trimmed: selection {t['selection']} in {t['source']!r} covers {t['characters']} characters "
            "outside every clause (a heading or text between clauses); they are not coded."
            for t in self.trimmed
        ]
        out += [f"Not imported: {what}: {count}." for what, count in sorted(self.ignored.items())]
        return out


# --- reading --------------------------------------------------------------------------------


_UNSAFE_NAME_RE = re.compile(r"(^|[\\/])\.\.([\\/]|$)|^[\\/]|^[A-Za-z]:")


class _Archive:
    """The members of a .qdpx, looked up case-insensitively, read within the limits."""

    def __init__(self, data: bytes, limits: Limits):
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
            raise RefiError("The file is not a zip archive; a .qdpx is a zip of project.qde and its sources.") from None
        self.limits = limits
        if len(infos) > limits.max_entries:
            raise RefiError(f"The archive has {len(infos)} entries; PolicyCoder reads at most {limits.max_entries}.")
        total = 0
        for info in infos:
            if _UNSAFE_NAME_RE.search(info.filename):
                raise RefiError(f"The archive entry {info.filename!r} points outside the archive; the file is refused.")
            if info.flag_bits & 0x1:
                raise RefiError(f"The archive entry {info.filename!r} is encrypted; PolicyCoder cannot read it.")
            total += info.file_size
            if info.file_size > MIB and info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
                raise RefiError(
                    f"The archive entry {info.filename!r} would expand {info.file_size // info.compress_size} times "
                    f"(to {info.file_size // MIB} MiB); that is a zip bomb, not a project."
                )
        if total > limits.max_total_bytes:
            raise RefiError(
                f"The archive would expand to {total // MIB} MiB; PolicyCoder reads at most "
                f"{limits.max_total_bytes // MIB} MiB."
            )
        self.by_name = {info.filename.lower(): info for info in infos if not info.is_dir()}

    def read(self, info: zipfile.ZipInfo) -> bytes:
        if info.file_size > self.limits.max_member_bytes:
            raise RefiError(
                f"The archive entry {info.filename!r} is {info.file_size // MIB} MiB; PolicyCoder reads at most "
                f"{self.limits.max_member_bytes // MIB} MiB per entry."
            )
        try:
            # The reader never yields more than the declared size, so the check above bounds memory.
            return self.zip.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise RefiError(f"The archive entry {info.filename!r} cannot be read: {exc}.") from None

    def find_qde(self) -> zipfile.ZipInfo:
        at_root = [info for name, info in self.by_name.items() if "/" not in name and name.endswith(".qde")]
        if not at_root:
            raise RefiError("The archive has no .qde file at its root; a .qdpx holds project.qde and its sources.")
        if len(at_root) > 1:
            preferred = [info for info in at_root if info.filename.lower() == "project.qde"]
            if len(preferred) != 1:
                names = ", ".join(sorted(info.filename for info in at_root))
                raise RefiError(f"The archive has several .qde files at its root ({names}); it should have one.")
            return preferred[0]
        return at_root[0]

    def source_file(self, file_name: str) -> zipfile.ZipInfo | None:
        # The spec says "sources/"; NVivo for Windows writes "Sources/", and file names may be upper case.
        return self.by_name.get(f"sources/{file_name.lower()}")


def _decode_text(data: bytes, what: str) -> str:
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise RefiError(f"{what} is not UTF-8 text (byte {exc.start} cannot be decoded).") from None


def _parse_xml(data: bytes, what: str) -> ET.Element:
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        raise RefiError(
            f"{what} declares a document type (<!DOCTYPE …>), which can define entities that expand or read "
            "other files; REFI-QDA files have none, so it is refused."
        ) from None
    except defusedxml.EntitiesForbidden as exc:
        raise RefiError(f"{what} declares an XML entity ({exc.name}); it is refused for safety.") from None
    except defusedxml.DefusedXmlException as exc:
        raise RefiError(f"{what} uses an XML feature refused for safety ({exc}).") from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise RefiError(f"{what} is not well-formed XML (line {line}, column {column}: {exc.msg}).") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _normalise_namespace(root: ET.Element, what: str, limits: Limits) -> str:
    """Move every element into the 1.0 namespace of its kind; return "project" or "codebook".

    Codebooks circulate with ``…:codebook:0:4`` and ``…:codebook:1:0``; the elements are the
    same, so matching on local names and validating against 1.0 accepts them without
    accepting anything else.
    """
    name = _local(root.tag)
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if name == "Project" and (ns.startswith("urn:QDA-XML:project:") or not ns):
        kind, target = "project", PROJECT_NS
    elif name == "CodeBook" and (ns.startswith("urn:QDA-XML:codebook:") or not ns):
        kind, target = "codebook", CODEBOOK_NS
    else:
        raise RefiError(
            f"{what} is not a REFI-QDA project or codebook: its root element is {name!r} in namespace {ns!r}."
        )
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > limits.max_depth:
            raise RefiError(f"{what} nests elements more than {limits.max_depth} deep; it is refused.")
        if element.tag.startswith("{" + ns + "}") or (not ns and not element.tag.startswith("{")):
            element.tag = f"{{{target}}}{_local(element.tag)}"
        stack.extend((child, depth + 1) for child in element)
    return kind


_CLARK_RE = re.compile(r"\{[^{}]*:[^{}]*\}|\bns\d+:")  # namespaces in schema messages: noise to a reader


@lru_cache(maxsize=2)
def _schema(kind: str):
    from lxml import etree

    path = SCHEMA_DIR / ("Project-mrt2019.xsd" if kind == "project" else "Codebook-mrt2019.xsd")
    # The shipped XSDs import nothing; the parser may not fetch anything anyway.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(path), parser))


def _validate(root: ET.Element, kind: str, what: str) -> None:
    """Validate with libxml2, against the tree as read and namespace-normalised.

    The tree is serialised again rather than handing libxml2 the uploaded bytes: what is
    validated is then exactly what is imported, and libxml2 parses only ElementTree's own
    output (no DOCTYPE, no entities), never the untrusted file.
    """
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    schema = _schema(kind)
    document = etree.fromstring(ET.tostring(root, encoding="utf-8"), parser)
    if schema.validate(document):
        return
    errors = list(schema.error_log)
    shown = "; ".join(
        f"{_CLARK_RE.sub('', error.path or '/')}: {_CLARK_RE.sub('', squeeze(error.message)).rstrip('.')}"
        for error in errors[:3]
    )
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    raise RefiError(f"{what} does not follow the REFI-QDA schema: {shown}{more}.")


class _Reader:
    """Walks a validated Project or CodeBook element into a :class:`FileProject`."""

    def __init__(self, root: ET.Element, kind: str, file_kind: str, archive: _Archive | None, name: str):
        self.ns = PROJECT_NS if kind == "project" else CODEBOOK_NS
        self.root = root
        self.archive = archive
        self.file_kind = file_kind
        self.project = FileProject(kind=file_kind, name=name, origin=root.get("origin", "").strip())
        self.users: dict[str, FileUser] = {}
        self.code_guids: set[str] = set()
        self.variables: dict[str, tuple[str, str]] = {}
        self.notes: dict[str, str] = {}
        self.used_notes: set[str] = set()

    def q(self, name: str) -> str:
        return f"{{{self.ns}}}{name}"

    def children(self, element: ET.Element | None, name: str) -> list[ET.Element]:
        return [] if element is None else element.findall(self.q(name))

    def child(self, element: ET.Element, name: str) -> ET.Element | None:
        return element.find(self.q(name))

    def text_of(self, element: ET.Element, name: str) -> str:
        found = self.child(element, name)
        return xml_safe(found.text or "").strip() if found is not None else ""

    def ignore(self, what: str, count: int = 1) -> None:
        if count:
            self.project.ignored[what] = self.project.ignored.get(what, 0) + count

    def guid(self, element: ET.Element, attribute: str = "guid") -> str | None:
        value = element.get(attribute)
        return canonical_guid(value) if value else None

    # - project

    def read(self) -> FileProject:
        p = self.project
        if self.file_kind == "qdc":
            p.codes = [self.code(c) for c in self.children(self.child(self.root, "Codes"), "Code")]
            self.ignore("codebook sets", len(self.children(self.child(self.root, "Sets"), "Set")))
            return p
        p.name = squeeze(xml_safe(self.root.get("name", ""))) or p.name
        p.description = self.text_of(self.root, "Description")
        for element in self.children(self.child(self.root, "Users"), "User"):
            guid = self.guid(element)
            login = element.get("id", "").strip()
            name = squeeze(xml_safe(element.get("name", ""))) or login or f"user {guid[:8]}"
            self.users[guid] = FileUser(guid=guid, name=name, login=login, consensus=login == CONSENSUS_ID)
        codebook = self.child(self.root, "CodeBook")
        if codebook is not None:
            p.codes = [self.code(c) for c in self.children(self.child(codebook, "Codes"), "Code")]
        codes = {code.guid: code for code in p.iter_codes()}
        for element in self.children(self.child(self.root, "Variables"), "Variable"):
            self.variables[self.guid(element)] = (squeeze(element.get("name", "")), element.get("typeOfVariable"))
        for element in self.children(self.child(self.root, "Notes"), "Note"):
            self.notes[self.guid(element)] = self.note_text(element)
        for code_element in self.root.iter(self.q("Code")):
            # Code memos (NoteRef) join the node's description, after the definition.
            texts = self.note_texts(code_element)
            if texts:
                code = codes[self.guid(code_element)]
                code.description = "\n\n".join(t for t in [code.description, *texts] if t)
        self.read_sources()
        self.apply_cases()
        self.apply_sets()
        self.ignore("links", len(self.children(self.child(self.root, "Links"), "Link")))
        self.ignore("graphs", len(self.children(self.child(self.root, "Graphs"), "Graph")))
        self.ignore("notes not attached to a coded passage or a code", len(set(self.notes) - self.used_notes))
        p.users = list(self.users.values())
        return p

    def code(self, element: ET.Element) -> FileCode:
        guid = self.guid(element)
        if guid in self.code_guids:
            raise RefiError(f"Two codes in the file share the GUID {guid}; a code's GUID must be unique.")
        self.code_guids.add(guid)
        colour = element.get("color", "").strip().lower()
        if len(colour) == 4:  # "#rgb"
            colour = "#" + "".join(c * 2 for c in colour[1:])
        return FileCode(
            guid=guid,
            name=squeeze(xml_safe(element.get("name", ""))),
            codable=element.get("isCodable", "true").strip() not in ("false", "0"),
            colour=colour,
            description=self.text_of(element, "Description"),
            children=[self.code(c) for c in self.children(element, "Code")],
        )

    def note_text(self, element: ET.Element) -> str:
        text, _ = self.load_text(element, "memo")
        return xml_safe(text).strip() if text is not None else ""

    def note_texts(self, element: ET.Element) -> list[str]:
        texts = []
        for ref in self.children(element, "NoteRef"):
            guid = self.guid(ref, "targetGUID")
            if guid in self.notes:
                self.used_notes.add(guid)
                if self.notes[guid]:
                    texts.append(self.notes[guid])
        return texts

    def user(self, guid: str | None) -> str | None:
        if guid and guid not in self.users:
            self.users[guid] = FileUser(guid=guid, name=f"user {guid[:8]}", declared=False)
            self.project.notes.append(
                f"User {guid} is named by the file's codings but not listed among its users; "
                f"imported as {self.users[guid].name!r}."
            )
        return guid

    # - sources

    def load_text(self, element: ET.Element, what: str) -> tuple[str | None, str]:
        """The text of a TextSource-like element and, when absent, why."""
        content = self.child(element, "PlainTextContent")
        path = element.get("plainTextPath", "").strip()
        if path:
            scheme, _, rest = path.partition("://")
            if scheme.lower() != "internal":
                return None, f"its text is the external file {path!r}, which PolicyCoder does not read"
            file_name = rest.lstrip("/")
            if not file_name or "/" in file_name or "\\" in file_name or file_name in (".", ".."):
                raise RefiError(f"The {what} path {path!r} points outside the archive's sources folder.")
            if self.archive is None:
                return None, f"its text {path!r} is not in the file (a bare .qde carries no source files)"
            info = self.archive.source_file(file_name)
            if info is None:
                raise RefiError(
                    f"The {what} {element.get('name', '')!r} points to {path!r}, which is not in the archive."
                )
            return _decode_text(self.archive.read(info), f"The text file {info.filename!r}"), ""
        if content is not None:
            return content.text or "", ""
        return None, "the file gives no text for it"

    def read_sources(self) -> None:
        guids: set[str] = set()
        sources = self.child(self.root, "Sources")
        for element in list(sources) if sources is not None else []:
            kind = _local(element.tag)
            text_element, selections_ignored = element, 0
            if kind == "PDFSource":
                text_element = self.child(element, "Representation")
                selections_ignored = len(self.children(element, "PDFSelection"))
                if text_element is None:
                    self.ignore("PDF sources without a text representation")
                    self.ignore("PDF selections", selections_ignored)
                    continue
            elif kind != "TextSource":
                self.ignore(f"{kind}s (PolicyCoder codes text)")
                for selection_kind in ("PictureSelection", "AudioSelection", "VideoSelection"):
                    self.ignore(f"{selection_kind}s", len(self.children(element, selection_kind)))
                continue
            self.ignore("PDF selections (the PDF page, not its text)", selections_ignored)
            source = self.source(element, text_element, kind)
            if source.guid in guids:
                raise RefiError(
                    f"Two sources in the file share the GUID {source.guid}; a source's GUID must be unique."
                )
            guids.add(source.guid)
            self.project.sources.append(source)

    def source(self, element: ET.Element, text_element: ET.Element, kind: str) -> FileSource:
        name = squeeze(xml_safe(element.get("name", "")))
        guid = self.guid(element)
        raw, problem = self.load_text(text_element, "source")
        text = SourceText(raw) if raw is not None else None
        description = "\n\n".join(t for t in [self.text_of(element, "Description"), *self.note_texts(element)] if t)
        variables = self.variable_values(element)
        if description and "description" not in variables:
            variables["description"] = description
        source = FileSource(
            guid=guid,
            name=name,
            kind=kind,
            text=text.canonical if text is not None else None,
            text_problem=problem,
            created=parse_datetime(element.get("creationDateTime")),
            variables=variables,
            selections=[self.selection(s) for s in self.children(text_element, "PlainTextSelection")],
            whole_codings=len(self.children(element, "Coding")),
        )
        for coding in self.children(element, "Coding"):
            self.check_code_ref(coding)
        self.convert_positions(source, text)
        return source

    def check_code_ref(self, coding: ET.Element) -> str:
        ref = self.child(coding, "CodeRef")
        target = canonical_guid(ref.get("targetGUID"))
        if target not in self.code_guids:
            raise RefiError(
                f"Coding {coding.get('guid')} applies the code {target}, which is not in the file's codebook."
            )
        return target

    def selection(self, element: ET.Element) -> FileSelection:
        codings = []
        memos = [self.text_of(element, "Description"), *self.note_texts(element)]
        for coding in self.children(element, "Coding"):
            codings.append(
                FileCoding(
                    guid=self.guid(coding),
                    code_guid=self.check_code_ref(coding),
                    user_guid=self.user(self.guid(coding, "creatingUser")),
                    created=parse_datetime(coding.get("creationDateTime")),
                )
            )
            memos.extend(self.note_texts(coding))
        unique_memos = list(dict.fromkeys(m for m in memos if m))
        return FileSelection(
            guid=self.guid(element),
            name=xml_safe(element.get("name", "")),
            raw_start=int(element.get("startPosition")),
            raw_end=int(element.get("endPosition")),
            user_guid=self.user(self.guid(element, "creatingUser")),
            created=parse_datetime(element.get("creationDateTime")),
            modified=parse_datetime(element.get("modifiedDateTime")),
            codings=codings,
            memo="\n\n".join(unique_memos),
        )

    def variable_values(self, element: ET.Element) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for value_element in self.children(element, "VariableValue"):
            target = canonical_guid(self.child(value_element, "VariableRef").get("targetGUID"))
            if target not in self.variables:
                raise RefiError(f"A variable value refers to the variable {target}, which the file does not define.")
            name, _ = self.variables[target]
            value = _variable_value(value_element)
            if value is not None and name:
                values[name] = value
        return values

    def apply_cases(self) -> None:
        by_guid = {s.guid: s for s in self.project.sources}
        for case in self.children(self.child(self.root, "Cases"), "Case"):
            values = self.variable_values(case)
            for ref in self.children(case, "SourceRef"):
                source = by_guid.get(canonical_guid(ref.get("targetGUID")))
                if source is not None:
                    for name, value in values.items():
                        source.variables.setdefault(name, value)

    def apply_sets(self) -> None:
        # ATLAS.ti writes document attributes as sets named "attribute: value".
        by_guid = {s.guid: s for s in self.project.sources}
        as_attributes = 0
        for element in self.children(self.child(self.root, "Sets"), "Set"):
            name = squeeze(element.get("name", ""))
            members = [by_guid.get(canonical_guid(m.get("targetGUID"))) for m in self.children(element, "MemberSource")]
            members = [m for m in members if m is not None]
            key, sep, value = name.partition(":")
            if sep and key.strip() and value.strip() and members:
                as_attributes += 1
                for source in members:
                    source.variables.setdefault(key.strip(), value.strip())
            else:
                self.ignore("sets (groups of documents or codes)")
        if as_attributes:
            self.project.notes.append(
                f"{as_attributes} set(s) named 'attribute: value' (how ATLAS.ti writes document attributes) "
                "became attributes of their policies."
            )

    # - positions

    def convert_positions(self, source: FileSource, text: SourceText | None) -> None:
        if text is None:
            for selection in source.selections:
                selection.problem = f"source {source.name!r} has no text here: {source.text_problem}"
            return
        source.unit, source.unit_reason = self.choose_unit(source, text)
        length = text.length(source.unit)
        for s in source.selections:
            if not 0 <= s.raw_start <= s.raw_end <= length:
                raise RefiError(
                    f"Selection {s.guid} in source {source.name!r} runs from {s.raw_start} to {s.raw_end}, "
                    f"outside its text, which is {length} long counted in {UNIT_LABELS[source.unit]}."
                )
            try:
                s.start = text.to_canonical(s.raw_start, source.unit)
                s.end = text.to_canonical(s.raw_end, source.unit)
            except ValueError as exc:
                s.problem = f"its position cannot be placed in the text ({exc})"

    def choose_unit(self, source: FileSource, text: SourceText) -> tuple[str, str]:
        """The unit the writer counted positions in: by ``origin``, checked against the text.

        Another unit wins only on evidence: the preferred one puts a selection outside the
        text while it does not, or it matches strictly more of the quotes that ATLAS.ti and
        PolicyCoder write in a selection's ``name``.
        """
        origin = self.project.origin.lower()
        if origin.startswith("nvivo") or "utf-16 positions" in origin:
            order, why = [UNIT_UTF16, UNIT_CODEPOINT, UNIT_CODEPOINT_LF], f"origin {self.project.origin!r}"
        elif "atlas" in origin:
            order, why = [UNIT_CODEPOINT_LF, UNIT_CODEPOINT, UNIT_UTF16], f"origin {self.project.origin!r}"
        else:
            order, why = [UNIT_CODEPOINT, UNIT_UTF16, UNIT_CODEPOINT_LF], "the REFI-QDA standard"
        selections = source.selections
        if not selections:
            return order[0], why

        def fits(unit: str) -> bool:
            length = text.length(unit)
            return all(0 <= s.raw_start <= s.raw_end <= length for s in selections)

        def quotes_matched(unit: str) -> int:
            matched = 0
            for s in selections:
                quote = squeeze(s.name.rstrip("…").rstrip("."))
                if len(quote) < 8:
                    continue
                try:
                    start, end = text.to_canonical(s.raw_start, unit), text.to_canonical(s.raw_end, unit)
                except ValueError:
                    continue
                matched += squeeze(text.canonical[start:end]).startswith(quote)
            return matched

        candidates = [unit for unit in order if fits(unit)]
        if not candidates:
            return order[0], why  # the caller reports the selection outside the text
        scores = {unit: quotes_matched(unit) for unit in candidates}
        best = max(candidates, key=lambda unit: (scores[unit], -candidates.index(unit)))
        if best == order[0]:
            return best, why
        if order[0] not in candidates:
            return best, f"the text itself: under {why} a selection would lie outside the text"
        return best, f"the text itself: {scores[best]} selection names quote the text this way"


def _variable_value(element: ET.Element) -> Any:
    for child in element:
        kind = _local(child.tag)
        raw = (child.text or "").strip()
        if kind == "VariableRef" or (not raw and kind != "TextValue"):
            continue
        if kind == "TextValue":
            return xml_safe(child.text or "").strip() or None
        if kind == "BooleanValue":
            return raw in ("true", "1")
        if kind == "IntegerValue":
            return int(raw)
        if kind == "FloatValue":
            try:
                return float(Decimal(raw))
            except InvalidOperation:
                return raw
        return raw  # DateValue, DateTimeValue: ISO text
    return None


def read_file(data: bytes, filename: str, limits: Limits | None = None) -> FileProject:
    """Read a ``.qdpx``, ``.qde`` or ``.qdc`` the way PolicyCoder imports it.

    The kind is told by the content (a zip is a project archive, XML a project or codebook)
    and must agree with the extension when there is one. Everything is checked before
    anything is returned: safety limits, XML well-formedness, the REFI-QDA schema, codes and
    variables that references point to, and every selection lying inside its text. Raises
    :class:`RefiError` with a message for the person who sent the file.
    """
    limits = limits or Limits()
    suffix = PurePosixPath(filename.lower()).suffix
    stem = PurePosixPath(filename).stem or "Imported project"
    if len(data) > limits.max_file_bytes:
        raise RefiError(
            f"The file is {len(data) // MIB} MiB; PolicyCoder imports at most {limits.max_file_bytes // MIB} MiB."
        )
    if not data or (len(data) < 4096 and not data.strip()):
        raise RefiError("The file is empty.")
    is_zip = data.startswith(b"PK")
    if suffix not in (".qdpx", ".qde", ".qdc", ".xml", ""):
        raise RefiError(f"PolicyCoder imports .qdpx, .qde and .qdc files, not {suffix}.")
    if suffix == ".qdpx" or (is_zip and suffix not in (".qde", ".qdc")):
        archive = _Archive(data, limits)
        info = archive.find_qde()
        what = f"The archive's {info.filename}"
        root = _parse_xml(archive.read(info), what)
        file_kind = "qdpx"
    else:
        if is_zip:
            raise RefiError(f"The file is a zip archive; name it .qdpx, not {suffix}.")
        archive, what = None, "The file"
        root = _parse_xml(data, what)
        file_kind = "qdc" if suffix == ".qdc" else "qde"
    kind = _normalise_namespace(root, what, limits)
    if kind == "codebook":
        if file_kind == "qdpx":
            raise RefiError(f"{what} is a codebook, not a project.")
        file_kind = "qdc"
    elif file_kind == "qdc":
        file_kind = "qde"
    _validate(root, kind, what)
    project = _Reader(root, kind, file_kind, archive, stem).read()
    project.sha256 = hashlib.sha256(data).hexdigest()
    return project


# --- writing --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExportUser:
    guid: str
    name: str
    login: str


@dataclasses.dataclass
class ExportCode:
    guid: str
    name: str
    colour: str
    description: str
    children: list[ExportCode] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class ExportVariable:
    guid: str
    name: str
    type: str  # Text | Integer | Float | Boolean


@dataclasses.dataclass(frozen=True)
class ExportSelection:
    guid: str
    start: int  # code points into the source's text as exported
    end: int
    code_guid: str
    layer_guid: str  # the coder, or the consensus user
    creator_guid: str  # who made the passage (the supervisor, for the consensus layer)
    created: dt.datetime
    memo: str
    label: str  # "23-4"


@dataclasses.dataclass
class ExportSource:
    guid: str
    name: str
    text: str  # canonical: LF, no control characters
    created: dt.datetime | None
    values: list[tuple[ExportVariable, Any]]
    selections: list[ExportSelection]


@dataclasses.dataclass
class ExportProject:
    name: str
    description: str
    users: list[ExportUser]
    codes: list[ExportCode]
    variables: list[ExportVariable]
    sources: Iterable[ExportSource]


def _element(tag: str, attributes: Mapping[str, Any] | None = None, text: str | None = None) -> ET.Element:
    element = ET.Element(tag, {k: xml_safe(str(v)) for k, v in (attributes or {}).items() if v not in (None, "")})
    if text is not None:
        element.text = xml_safe(text)
    return element


def _code_element(code: ExportCode) -> ET.Element:
    element = _element("Code", {"guid": code.guid, "name": code.name, "isCodable": "true", "color": code.colour})
    if code.description:
        element.append(_element("Description", text=code.description))
    element.extend(_code_element(child) for child in code.children)
    return element


def _value_element(variable: ExportVariable, value: Any) -> ET.Element:
    element = _element("VariableValue")
    element.append(_element("VariableRef", {"targetGUID": variable.guid}))
    if variable.type == "Boolean":
        text = "true" if value else "false"
    elif variable.type == "Float":
        text = format(Decimal(repr(float(value))), "f")  # xsd:decimal has no exponent
    else:
        text = str(value)
    element.append(_element(f"{variable.type}Value", text=text))
    return element


def quote_name(text: str, limit: int = 60) -> str:
    # Only XML's own whitespace is collapsed (a parser turns it into spaces in attributes);
    # a full-width space is text.
    quote = _XML_SPACES_RE.sub(" ", text).strip(" ")
    return quote if len(quote) <= limit else quote[: limit - 1] + "…"


def _source_element(source: ExportSource, utf16: bool) -> tuple[ET.Element, list[ET.Element]]:
    """The TextSource and the Notes holding its memos."""
    element = _element(
        "TextSource",
        {
            "guid": source.guid,
            "name": source.name,
            "plainTextPath": f"internal://{source.guid}.txt",
            "creationDateTime": format_datetime(source.created) if source.created else None,
        },
    )
    notes = []
    for s in source.selections:
        start, end = s.start, s.end
        if utf16:
            start, end = offsets.codepoint_to_utf16(source.text, start), offsets.codepoint_to_utf16(source.text, end)
        created = format_datetime(s.created)
        selection = _element(
            "PlainTextSelection",
            {
                "guid": s.guid,
                "name": quote_name(source.text[s.start : s.end]),
                "startPosition": start,
                "endPosition": end,
                "creatingUser": s.creator_guid,
                "creationDateTime": created,
            },
        )
        coding = _element(
            "Coding",
            {
                "guid": derive_guid(uuid.UUID(s.guid), "coding"),
                "creatingUser": s.layer_guid,
                "creationDateTime": created,
            },
        )
        coding.append(_element("CodeRef", {"targetGUID": s.code_guid}))
        selection.append(coding)
        if s.memo:
            note_guid = derive_guid(uuid.UUID(s.guid), "memo")
            selection.append(_element("NoteRef", {"targetGUID": note_guid}))
            note = _element(
                "Note",
                {
                    "guid": note_guid,
                    "name": f"Memo on {s.label}",
                    "creatingUser": s.layer_guid,
                    "creationDateTime": created,
                },
            )
            note.append(_element("PlainTextContent", text=s.memo))
            notes.append(note)
        element.append(selection)
    for variable, value in source.values:
        element.append(_value_element(variable, value))
    return element, notes


def _serialise(element: ET.Element, level: int) -> bytes:
    ET.indent(element, space="  ", level=level)
    element.tail = None
    return ("  " * level + ET.tostring(element, encoding="unicode") + "\n").encode()


def _open_tag(tag: str, attributes: Mapping[str, Any]) -> bytes:
    # Elements are written unqualified under a default xmlns on the root, so that each
    # source can be serialised (and streamed) on its own without repeating the namespace.
    return ET.tostring(_element(tag, attributes), encoding="unicode").replace(" />", ">").encode() + b"\n"


_XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'


def write_project(project: ExportProject, out: BinaryIO, *, utf16_positions: bool = False) -> None:
    """Write a ``.qdpx`` (zip of ``project.qde`` and ``sources/<GUID>.txt``) to ``out``.

    Sources are consumed one at a time, so memory holds one source's text and selections;
    ``project.qde`` is spooled to a temporary file until its sources are written. Entries
    carry a fixed date, so the same project gives the same bytes. With ``utf16_positions``
    positions count UTF-16 code units, as NVivo reads them (and ``origin`` says so).
    """
    with tempfile.SpooledTemporaryFile(max_size=16 * MIB) as qde, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        qde.write(_XML_DECLARATION)
        qde.write(
            _open_tag(
                "Project",
                {"xmlns": PROJECT_NS, "name": project.name, "origin": ORIGIN_UTF16 if utf16_positions else ORIGIN},
            )
        )
        if project.users:
            users = _element("Users")
            users.extend(_element("User", {"guid": u.guid, "name": u.name, "id": u.login}) for u in project.users)
            qde.write(_serialise(users, 1))
        if project.codes:
            codebook = _element("CodeBook")
            codes = _element("Codes")
            codes.extend(_code_element(code) for code in project.codes)
            codebook.append(codes)
            qde.write(_serialise(codebook, 1))
        if project.variables:
            variables = _element("Variables")
            variables.extend(
                _element("Variable", {"guid": v.guid, "name": v.name, "typeOfVariable": v.type})
                for v in project.variables
            )
            qde.write(_serialise(variables, 1))
        notes: list[ET.Element] = []
        opened = False
        for source in project.sources:
            if not opened:
                qde.write(b"  <Sources>\n")
                opened = True
            element, source_notes = _source_element(source, utf16_positions)
            qde.write(_serialise(element, 2))
            notes.extend(source_notes)
            info = zipfile.ZipInfo(f"sources/{source.guid}.txt", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, source.text.encode())
        if opened:
            qde.write(b"  </Sources>\n")
        if notes:
            notes_element = _element("Notes")
            notes_element.extend(notes)
            qde.write(_serialise(notes_element, 1))
        if project.description:
            qde.write(_serialise(_element("Description", text=project.description), 1))
        qde.write(b"</Project>\n")
        qde.seek(0)
        info = zipfile.ZipInfo("project.qde", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as target:
            shutil.copyfileobj(qde, target)


def write_codebook(codes: Sequence[ExportCode], out: BinaryIO) -> None:
    """Write a ``.qdc``: the codebook alone, with the same GUIDs as the project export."""
    if not codes:
        raise RefiError("The project has no nodes; a REFI-QDA codebook needs at least one code.")
    root = _element("CodeBook", {"xmlns": CODEBOOK_NS, "origin": ORIGIN})
    codes_element = _element("Codes")
    codes_element.extend(_code_element(code) for code in codes)
    root.append(codes_element)
    ET.indent(root, space="  ")
    out.write(_XML_DECLARATION + ET.tostring(root, encoding="unicode").encode() + b"\n")


# --- checks of an export that the schema cannot express ------------------------------------

_REFERENCE_KINDS = {
    "CodeRef": {"Code"},
    "MemberCode": {"Code"},
    "NoteRef": {"Note"},
    "MemberNote": {"Note"},
    "VariableRef": {"Variable"},
    "SourceRef": {"TextSource", "PDFSource", "PictureSource", "AudioSource", "VideoSource"},
    "MemberSource": {"TextSource", "PDFSource", "PictureSource", "AudioSource", "VideoSource"},
}
_VALUE_TYPES = {
    "TextValue": "Text",
    "IntegerValue": "Integer",
    "FloatValue": "Float",
    "BooleanValue": "Boolean",
    "DateValue": "Date",
    "DateTimeValue": "DateTime",
}


def check_project(qde: bytes, files: Mapping[str, bytes]) -> list[str]:
    """Problems of an exported ``project.qde`` (with the archive's other ``files``) that the
    XSD cannot see; an empty list when there are none.

    GUIDs unique and every reference (``CodeRef``, ``NoteRef``, ``VariableRef``, users)
    pointing to an element of the right kind; exactly one of ``plainTextPath`` and
    ``PlainTextContent`` per source and note; every ``internal://`` file present under
    ``sources/``, UTF-8 without BOM and without CR; every selection inside its text (code
    points); every value of the type its variable declares.
    """
    problems: list[str] = []
    root = SafeET.fromstring(qde, forbid_dtd=True)
    kinds: dict[str, str] = {}
    for element in root.iter():
        guid = element.get("guid")
        if guid:
            key = canonical_guid(guid)
            if key in kinds:
                problems.append(f"GUID {guid} is used twice ({kinds[key]} and {_local(element.tag)}).")
            kinds[key] = _local(element.tag)
    variable_types = {
        canonical_guid(v.get("guid")): v.get("typeOfVariable") for v in root.iter(f"{{{PROJECT_NS}}}Variable")
    }
    for element in root.iter():
        tag = _local(element.tag)
        if tag in _REFERENCE_KINDS:
            target = canonical_guid(element.get("targetGUID"))
            if kinds.get(target) not in _REFERENCE_KINDS[tag]:
                problems.append(
                    f"{tag} {target} points to {kinds.get(target, 'nothing')}, not a {'/'.join(_REFERENCE_KINDS[tag])}."
                )
        for attribute in ("creatingUser", "modifyingUser", "creatingUserGUID", "modifyingUserGUID"):
            if element.get(attribute) and kinds.get(canonical_guid(element.get(attribute))) != "User":
                problems.append(f"{tag} {element.get('guid')}: {attribute} {element.get(attribute)} is not a user.")
        if tag == "VariableValue":
            ref, value = element[0], element[1] if len(element) > 1 else None
            declared = variable_types.get(canonical_guid(ref.get("targetGUID")))
            if value is not None and _VALUE_TYPES.get(_local(value.tag)) != declared:
                problems.append(f"A {_local(value.tag)} is given for a variable of type {declared}.")
        if tag in ("TextSource", "Note"):
            path = element.get("plainTextPath")
            content = element.find(f"{{{PROJECT_NS}}}PlainTextContent")
            if (path is None) == (content is None):
                problems.append(f"{tag} {element.get('guid')} needs exactly one of plainTextPath and PlainTextContent.")
                continue
            if content is not None:
                text = content.text or ""
            elif not path.startswith("internal://") or f"sources/{path[11:]}" not in files:
                problems.append(f"{tag} {element.get('guid')}: {path} is not an internal file of the archive.")
                continue
            else:
                data = files[f"sources/{path[11:]}"]
                if data.startswith(b"\xef\xbb\xbf") or b"\r" in data:
                    problems.append(f"{path} has a BOM or CR characters; exports write UTF-8 without BOM, LF only.")
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    problems.append(f"{path} is not UTF-8.")
                    continue
            for selection in element.iter(f"{{{PROJECT_NS}}}PlainTextSelection"):
                start, end = int(selection.get("startPosition")), int(selection.get("endPosition"))
                if not 0 <= start <= end <= len(text):
                    problems.append(
                        f"Selection {selection.get('guid')} [{start}, {end}) lies outside its text "
                        f"({len(text)} code points)."
                    )
    return problems


def check_qdpx(data: bytes) -> list[str]:
    """:func:`check_project` on a whole ``.qdpx``; also refuses entries other than the layout."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    problems = [
        f"Unexpected archive entry {name!r}."
        for name in files
        if name != "project.qde" and not re.fullmatch(r"sources/[0-9a-f-]{36}\.txt", name)
    ]
    if "project.qde" not in files:
        return [*problems, "No project.qde at the root."]
    return problems + check_project(files["project.qde"], files)


# --- the database side: a project as the writer takes it ------------------------------------
# Reads only; imports are written by coding.services.import_refi.

BUILTIN_VARIABLES = (
    # (variable name, type, Policy field)
    ("Policy number", "Integer", "number"),
    ("Potency level", "Text", "potency_level"),
    ("Release departments", "Text", "release_departments"),
    ("Jurisdiction", "Text", "jurisdiction"),
    ("Release date", "Text", "release_date"),
    ("Implementation date", "Text", "implementation_date"),
    ("Source URL", "Text", "source_url"),
    ("Language", "Text", "language"),
    ("Segmentation rule", "Text", "segmentation_rule"),
)
BUILTIN_BY_NAME = {name.lower(): field for name, _, field in BUILTIN_VARIABLES}
ATTRIBUTE_SUFFIX = " (attribute)"


def attribute_variable_name(key: str) -> str:
    """Variable name of a free-form attribute; one that would read as a built-in field is marked."""
    return key + ATTRIBUTE_SUFFIX if key.lower() in BUILTIN_BY_NAME else key


def _attribute_type(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "Boolean"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "Integer"
    if all(isinstance(v, float) and v == v and v not in (float("inf"), float("-inf")) for v in values):
        return "Float"
    return "Text"


def _attribute_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _builtin_value(policy: Mapping[str, Any], field: str) -> Any:
    value = policy[field]
    if field == "release_departments":
        return "; ".join(value or [])
    return value


def _user_label(user) -> str:
    return user.get_full_name().strip() or user.get_username()


class ProjectExport:
    """One project read for export: header data up front, sources streamed policy by policy."""

    CHUNK = 100

    def __init__(self, project):
        # Imported here so that the pure part of this module loads without Django.
        from django.contrib.auth import get_user_model

        from coding.models import Membership, Node, Policy, Reference, Role

        self.project = project
        self.ns = project_namespace(project.slug)
        self._Policy, self._Reference = Policy, Reference
        nodes = list(Node.objects.filter(project=project).order_by("position", "id"))
        self.node_guids = {n.pk: self.guid("node", n.pk, n.refi_guid) for n in nodes}
        by_parent: dict[int | None, list] = {}
        for node in nodes:
            by_parent.setdefault(node.parent_id, []).append(node)

        def tree(parent_id: int | None) -> list[ExportCode]:
            return [
                ExportCode(
                    guid=self.node_guids[n.pk],
                    name=n.name,
                    colour=n.colour.lower(),
                    description=n.description,
                    children=tree(n.pk),
                )
                for n in by_parent.get(parent_id, [])
            ]

        self.codes = tree(None)

        references = Reference.objects.filter(policy__project=project)
        memberships = {m.user_id: m for m in Membership.objects.filter(project=project)}
        user_ids = {uid for uid, m in memberships.items() if m.role == Role.CODER}
        user_ids |= set(references.exclude(coder=None).values_list("coder_id", flat=True).distinct())
        user_ids |= set(references.values_list("created_by_id", flat=True).distinct())
        users = get_user_model().objects.filter(pk__in=user_ids).order_by("username")
        self.user_guids = {
            u.pk: self.guid("user", u.pk, memberships[u.pk].refi_guid if u.pk in memberships else None) for u in users
        }
        self.users = [ExportUser(self.user_guids[u.pk], _user_label(u), u.get_username()) for u in users]
        # Variables and the consensus layer are named, not stored: their GUIDs come from the name
        # alone, so that a project imported elsewhere (another slug) exports them unchanged.
        self.consensus_guid = derive_guid(GUID_NS, "consensus")
        if references.filter(consensus=True).exists():
            self.users.append(ExportUser(self.consensus_guid, CONSENSUS_NAME, CONSENSUS_ID))

        fields = [field for _, _, field in BUILTIN_VARIABLES]
        self.policies = list(
            Policy.objects.filter(project=project)
            .order_by("number")
            .values("pk", "refi_guid", "title", "created_at", "attributes", *fields)
        )
        self.variables: list[ExportVariable] = []
        self.builtin: list[tuple[ExportVariable, str]] = []
        for name, kind, field in BUILTIN_VARIABLES:
            if any(_builtin_value(p, field) not in ("", None) for p in self.policies):
                variable = ExportVariable(derive_guid(GUID_NS, f"variable:{name}"), name, kind)
                self.variables.append(variable)
                self.builtin.append((variable, field))
        keys = sorted({key for p in self.policies for key in (p["attributes"] or {})})
        self.attributes: list[tuple[ExportVariable, str]] = []
        for key in keys:
            values = [p["attributes"][key] for p in self.policies if (p["attributes"] or {}).get(key) not in (None, "")]
            if not values:
                continue
            name = attribute_variable_name(key)
            variable = ExportVariable(derive_guid(GUID_NS, f"variable:{name}"), name, _attribute_type(values))
            self.variables.append(variable)
            self.attributes.append((variable, key))

    def guid(self, kind: str, pk: int, stored: uuid.UUID | None) -> str:
        return str(stored) if stored else derive_guid(self.ns, f"{kind}:{pk}")

    def project_data(self) -> ExportProject:
        return ExportProject(
            name=self.project.name,
            description=self.project.description,
            users=self.users,
            codes=self.codes,
            variables=self.variables,
            sources=self.sources(),
        )

    def values(self, policy: Mapping[str, Any]) -> list[tuple[ExportVariable, Any]]:
        values = []
        for variable, field in self.builtin:
            value = _builtin_value(policy, field)
            if value not in ("", None):
                values.append((variable, value))
        for variable, key in self.attributes:
            value = (policy["attributes"] or {}).get(key)
            if value not in (None, ""):
                values.append((variable, _attribute_text(value) if variable.type == "Text" else value))
        return values

    def sources(self) -> Iterator[ExportSource]:
        for i in range(0, len(self.policies), self.CHUNK):
            chunk = self.policies[i : i + self.CHUNK]
            texts = dict(self._Policy.objects.filter(pk__in=[p["pk"] for p in chunk]).values_list("pk", "text"))
            rows = (
                self._Reference.objects.filter(policy_id__in=texts)
                .values_list(
                    "policy_id",
                    "pk",
                    "refi_guid",
                    "node_id",
                    "coder_id",
                    "consensus",
                    "created_by_id",
                    "start",
                    "end",
                    "memo",
                    "created_at",
                    "clause__number",
                )
                .order_by("policy_id", "start", "end", "pk")
            )
            by_policy: dict[int, list] = {}
            for row in rows:
                by_policy.setdefault(row[0], []).append(row)
            for policy in chunk:
                yield self.source(policy, texts[policy["pk"]], by_policy.get(policy["pk"], []))

    def source(self, policy: Mapping[str, Any], raw_text: str, rows: list) -> ExportSource:
        text, dropped = canonical_text(raw_text)
        guid = self.guid("policy", policy["pk"], policy["refi_guid"])
        selections = []
        for _, pk, refi_guid, node_id, coder_id, consensus, creator_id, start, end, memo, created, clause in rows:
            selections.append(
                ExportSelection(
                    guid=self.guid("reference", pk, refi_guid),
                    start=start - bisect_left(dropped, start),
                    end=end - bisect_left(dropped, end),
                    code_guid=self.node_guids[node_id],
                    layer_guid=self.consensus_guid if consensus else self.user_guids[coder_id],
                    creator_guid=self.user_guids[creator_id],
                    created=created,
                    memo=xml_safe(memo).strip(),
                    label=f"{policy['number']}-{clause}",
                )
            )
        # The order is the file's, not the database's, so that a round trip writes the same file.
        selections.sort(key=lambda s: (s.start, s.end, s.guid))
        return ExportSource(
            guid=guid,
            name=policy["title"],
            text=text,
            created=policy["created_at"],
            values=self.values(policy),
            selections=selections,
        )


def export_project(project, out: BinaryIO, *, utf16_positions: bool = False) -> None:
    """Write ``project`` as a ``.qdpx`` to ``out`` (see :func:`write_project`)."""
    write_project(ProjectExport(project).project_data(), out, utf16_positions=utf16_positions)


def export_codebook(project, out: BinaryIO) -> None:
    """Write ``project``'s codebook as a ``.qdc`` to ``out`` (see :func:`write_codebook`)."""
    write_codebook(ProjectExport(project).codes, out)


EXPORT_FORMATS = {"qdpx": "application/zip", "nvivo.qdpx": "application/zip", "qdc": "application/xml"}


def export_download(project, fmt: str) -> tuple[BinaryIO, str, str]:
    """The project as a REFI-QDA download (the interchange page's and the API's): a spooled file
    at its start (a FileResponse closes it), its content type and its file name ``<slug>.<fmt>``.
    ``fmt`` is ``qdpx``, ``nvivo.qdpx`` (positions in UTF-16 code units, as NVivo counts them)
    or ``qdc`` (the codebook alone). ValueError for another format, and for a codebook export of
    a project without nodes."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError("Exports are .qdpx or .qdc.")
    if fmt == "qdc" and not project.nodes.exists():
        raise ValueError("The project has no nodes, so there is no codebook to export.")
    out = tempfile.SpooledTemporaryFile(max_size=16 * MIB)  # noqa: SIM115 - the caller's FileResponse closes it
    if fmt == "qdc":
        export_codebook(project, out)
    else:
        export_project(project, out, utf16_positions=fmt == "nvivo.qdpx")
    out.seek(0)
    return out, EXPORT_FORMATS[fmt], f"{project.slug}.{fmt}"


def read_path(path: str | Path, limits: Limits | None = None) -> FileProject:
    """:func:`read_file` on a file on disk, refusing an oversized one before reading it."""
    limits = limits or Limits()
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise RefiError(f"Cannot read {path}: {exc.strerror}.") from None
    if size > limits.max_file_bytes:
        raise RefiError(
            f"The file is {size // MIB} MiB; PolicyCoder imports at most {limits.max_file_bytes // MIB} MiB."
        )
    return read_file(path.read_bytes(), path.name, limits)
