"""Codebook files: read JSON or CSV into entries, and write a codebook as JSON or CSV.

No database here: ``read_codebook`` turns bytes into ``CodebookEntry`` rows (a path from a
tree node down, plus description, colour and shortcut) and located problems;
``coding.services.import_codebook`` writes them. ``export_json``/``export_csv`` take the
project's nodes (anything with ``pk``, ``parent_id``, ``name``, ``description``, ``colour``,
``shortcut``, ``position``) and write them in tree order, so export → import into a new
project → export gives the same file.

- JSON is the nested form of ``fixtures/demo_codebook.json``: a list of
  ``{"name", "description", "colour", "shortcut", "children": [...]}``. A flat list of
  objects with a ``path`` (text or list of names) is read too.
- CSV has a ``path`` column, names from the top joined by `` > `` (``Supply-based > Talent``),
  and ``description``, ``colour``, ``shortcut``. A name containing ``>`` or ``\\`` is
  written with a backslash before it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from coding.importing import Problem, Refused, clean_text, decode_text

__all__ = ["CodebookEntry", "ParsedCodebook", "export_csv", "export_json", "join_path", "read_codebook", "split_path"]

PATH_SEPARATOR = " > "
CSV_COLUMNS = ("path", "description", "colour", "shortcut")
_COLUMN_ALIASES = {
    "path": "path",
    "node": "path",
    "路径": "path",
    "节点": "path",
    "description": "description",
    "definition": "description",
    "描述": "description",
    "定义": "description",
    "colour": "colour",
    "color": "colour",
    "颜色": "colour",
    "shortcut": "shortcut",
    "key": "shortcut",
    "快捷键": "shortcut",
}
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_NAME = 200  # Node.name
MAX_CODEBOOK_BYTES = 2 * 1024 * 1024  # an upload's limit: a codebook of thousands of nodes is a few hundred KB


@dataclass(frozen=True)
class CodebookEntry:
    """One node of a codebook file. ``None`` means the file does not say (keep what is there)."""

    path: tuple[str, ...]
    description: str | None = None
    colour: str | None = None
    shortcut: str | None = None
    row: int | None = None
    row_label: str = "row"


@dataclass
class ParsedCodebook:
    entries: list[CodebookEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def split_path(text: str) -> list[str]:
    r"""``"Supply-based > Talent"`` → ``["Supply-based", "Talent"]``; ``\>`` is a literal ``>``."""
    names, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ">":
            names.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    names.append("".join(current).strip())
    return names


def join_path(names: Iterable[str]) -> str:
    return PATH_SEPARATOR.join(name.replace("\\", "\\\\").replace(">", "\\>") for name in names)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return clean_text(str(value)).strip()


class _Checker:
    """Checks entries one by one: names, colours, shortcuts, repeated paths and shortcuts."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.result = ParsedCodebook()
        self.paths: dict[tuple[str, ...], int | None] = {}
        self.shortcuts: dict[str, tuple[str, ...]] = {}

    def add(self, entry: CodebookEntry, column_names: dict[str, str] | None = None) -> None:
        names = column_names or {}

        def problem(message: str, column: str | None = None) -> None:
            shown = names.get(column, column) if column else None
            self.result.problems.append(Problem(self.source, message, entry.row, shown, entry.row_label))

        before = len(self.result.problems)
        if not entry.path or any(not name for name in entry.path):
            problem("the path has an empty name (write names from the top, joined by ' > ')", "path")
        for name in entry.path:
            if len(name) > MAX_NAME:
                problem(f"the name {name[:40]!r}… is longer than {MAX_NAME} characters", "path")
        if entry.path in self.paths:
            earlier = self.paths[entry.path]
            problem(f"{join_path(entry.path)!r} is also on {entry.row_label} {earlier}", "path")
        if entry.colour and not _COLOUR.match(entry.colour):
            problem(f"{entry.colour!r} is not a colour; write it as #rrggbb, e.g. #8fbcef", "colour")
        if entry.shortcut:
            if len(entry.shortcut) != 1:
                problem(f"{entry.shortcut!r} is not a shortcut; use one character", "shortcut")
            elif entry.shortcut in self.shortcuts:
                problem(
                    f"{entry.shortcut!r} is also the shortcut of {join_path(self.shortcuts[entry.shortcut])!r}",
                    "shortcut",
                )
        if len(self.result.problems) == before:
            self.paths[entry.path] = entry.row
            if entry.shortcut:
                self.shortcuts[entry.shortcut] = entry.path
            self.result.entries.append(entry)


def _json_entries(loaded: Any) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """(path, item) in tree order from the nested form, or from a flat list with paths."""

    def walk(items: Any, parent: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
        if not isinstance(items, list):
            raise Refused("must hold a list of nodes (objects with a name and children)")
        for item in items:
            if not isinstance(item, dict):
                raise Refused("must hold a list of nodes (objects with a name and children)")
            if "path" in item and "name" not in item:
                raw = item["path"]
                path = tuple(str(n).strip() for n in raw) if isinstance(raw, list) else tuple(split_path(str(raw)))
                yield path, item
                continue
            path = (*parent, str(item.get("name") or "").strip())
            yield path, item
            yield from walk(item.get("children") or [], path)

    items = loaded.get("nodes", loaded.get("codebook")) if isinstance(loaded, dict) else loaded
    yield from walk(items, ())


def _read_json(source: str, data: bytes) -> ParsedCodebook:
    checker = _Checker(source)
    text, _ = decode_text(data)
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    for index, (path, item) in enumerate(_json_entries(loaded), start=1):
        entry = CodebookEntry(
            path=path,
            description=_text(item["description"]) if "description" in item else None,
            colour=_text(item.get("colour", item.get("color"))) or None,
            shortcut=_text(item["shortcut"]) if "shortcut" in item else None,
            row=index,
            row_label="node",
        )
        checker.add(entry, None if "path" in item else {"path": "name"})
    return checker.result


def _read_csv(source: str, data: bytes) -> ParsedCodebook:
    checker = _Checker(source)
    text, _ = decode_text(data)
    rows = list(csv.reader(io.StringIO(clean_text(text), newline="")))
    if not rows:
        raise Refused("has no header row")
    columns: dict[str, int] = {}
    names: dict[str, str] = {}
    for index, header in enumerate(rows[0]):
        key = _COLUMN_ALIASES.get(re.sub(r"[\s_\-]+", "", header.replace("\ufeff", "")).lower())
        if key and key not in columns:
            columns[key] = index
            names[key] = header.strip()
    if "path" not in columns:
        found = ", ".join(repr(h) for h in rows[0]) or "none"
        raise Refused(f"has no path column (e.g. 'Supply-based > Talent'); the headers found are {found}")

    def cell(cells: list[str], key: str) -> str | None:
        if key not in columns:
            return None
        index = columns[key]
        return _text(cells[index]) if index < len(cells) else ""

    for number, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        entry = CodebookEntry(
            path=tuple(split_path(cell(cells, "path") or "")),
            description=cell(cells, "description"),
            colour=cell(cells, "colour") or None,
            shortcut=cell(cells, "shortcut"),
            row=number,
        )
        checker.add(entry, names)
    return checker.result


def read_codebook(name: str, data: bytes) -> ParsedCodebook:
    """Entries of a codebook file (``.json`` or ``.csv``, any of the encodings of
    ``coding.importing.decode_text``), with every problem located by row."""
    source = PurePosixPath(name.replace("\\", "/")).name
    suffix = PurePosixPath(source).suffix.lower()
    try:
        if suffix == ".json":
            return _read_json(source, data)
        if suffix == ".csv":
            return _read_csv(source, data)
        raise Refused("is not a codebook file; use .json or .csv")
    except Refused as exc:
        return ParsedCodebook(problems=[Problem(source, f"{source} {exc}")])


def _tree(nodes: Iterable[Any]) -> list[tuple[tuple[str, ...], Any, list]]:
    """Nodes in tree order, each with its path: siblings by (position, id)."""
    nodes = list(nodes)
    children: dict[Any, list[Any]] = {}
    for node in nodes:
        children.setdefault(node.parent_id, []).append(node)
    for siblings in children.values():
        siblings.sort(key=lambda n: (n.position, n.pk))

    def build(parent_id: Any, path: tuple[str, ...]) -> list:
        return [((*path, node.name), node, build(node.pk, (*path, node.name))) for node in children.get(parent_id, [])]

    return build(None, ())


def export_json(nodes: Iterable[Any]) -> str:
    """The codebook in the nested JSON form, UTF-8 text ending in a newline."""

    def dump(branch: list) -> list[dict[str, Any]]:
        return [
            {
                "name": node.name,
                "description": node.description,
                "colour": node.colour,
                "shortcut": node.shortcut,
                "children": dump(children),
            }
            for _, node, children in branch
        ]

    return json.dumps(dump(_tree(nodes)), ensure_ascii=False, indent=2) + "\n"


def export_csv(nodes: Iterable[Any]) -> str:
    """The codebook as CSV (``path``, ``description``, ``colour``, ``shortcut``), parents
    before children. Callers write it as UTF-8 with a BOM, which Excel needs for Chinese."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)

    def rows(branch: list) -> None:
        for path, node, children in branch:
            writer.writerow([join_path(path), node.description, node.colour, node.shortcut])
            rows(children)

    rows(_tree(nodes))
    return out.getvalue()


EXPORT_FORMATS = ("json", "csv")


def export_file(nodes: Iterable[Any], fmt: str, stem: str) -> tuple[bytes, str, str]:
    """The codebook as a download (the codebook page's and the API's): its bytes, content type
    and file name ``<stem>-codebook.<fmt>``. CSV is UTF-8 with a BOM (Excel needs it for Chinese).
    ValueError for a format other than json or csv."""
    if fmt == "csv":
        body, content_type = export_csv(nodes).encode("utf-8-sig"), "text/csv; charset=utf-8"
    elif fmt == "json":
        body, content_type = export_json(nodes).encode("utf-8"), "application/json; charset=utf-8"
    else:
        raise ValueError("Export the codebook as json or csv.")
    return body, content_type, f"{stem}-codebook.{fmt}"
