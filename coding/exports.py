"""Tables as they are on screen, and as CSV and XLSX files with the same rows and columns.

A ``Table`` wraps the DataFrame a dashboard shows: the template renders ``table.rows`` (counts
as they are, shares as percentages to one decimal) and the downloads write the frame itself,
so a file always holds what the screen shows, with exact counts and unrounded shares (in XLSX
formatted as percentages, the value still exact). Also the full reference list for
``manage.py export_references``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from django.db.models import QuerySet
from django.http import HttpResponse
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from coding.models import Reference
from coding.stats import CodebookNode, Table3Column

FORMATS = ("csv", "xlsx")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
PERCENT_FORMAT = "0.0%"
XLSX_CELL_LIMIT = 32_767  # Excel refuses longer cell text


@dataclass
class Cell:
    text: str
    numeric: bool = False


@dataclass
class Table:
    """A table on screen and in files. ``shares`` names the columns that hold fractions,
    shown as percentages; ``decimals`` columns of coefficients shown to that many decimals
    (files keep the exact value); ``level`` (when the frame has it) indents sub-node rows on
    screen."""

    name: str
    frame: pd.DataFrame
    shares: frozenset[str] = field(default_factory=frozenset)
    hidden: frozenset[str] = field(default_factory=lambda: frozenset({"node_id"}))
    decimals: dict[str, int] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in self.hidden]

    @property
    def headers(self) -> list[Cell]:
        numeric = {
            c
            for c in self.columns
            if c in self.shares or c in self.decimals or pd.api.types.is_numeric_dtype(self.frame[c])
        }
        return [Cell(c, numeric=c in numeric) for c in self.columns]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Display rows: ``cells`` (text, numeric) and ``level`` (None in tables without one)."""
        columns = self.columns
        result = []
        for record in self.frame.to_dict("records"):
            cells = [self._cell(column, record[column]) for column in columns]
            result.append({"cells": cells, "level": record.get("level")})
        return result

    def _cell(self, column: str, value: Any) -> Cell:
        if column in self.shares:
            return Cell(percent(value), numeric=True)
        if column in self.decimals:
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            return Cell("—" if missing else f"{value:.{self.decimals[column]}f}", numeric=True)
        if isinstance(value, bool) or value is None:
            return Cell("" if value is None else str(value))
        if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
            return Cell(f"{value:,}" if isinstance(value, int) else f"{value:g}", numeric=True)
        return Cell("" if isinstance(value, float) else str(value))

    @property
    def export_frame(self) -> pd.DataFrame:
        return self.frame[self.columns]


def percent(value: Any) -> str:
    """A fraction as a percentage to one decimal ("26.4%"); "—" where there is no whole."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value * 100:.1f}%"


# --- files -----------------------------------------------------------------------------------


def to_csv(table: Table) -> bytes:
    """UTF-8 with a byte-order mark, which Excel needs to read Chinese."""
    buffer = io.StringIO()
    table.export_frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8-sig")


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value)[:XLSX_CELL_LIMIT]
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _text_cell(sheet, value: Any, *, number_format: str | None = None, bold: bool = False) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=_xlsx_value(value))
    if isinstance(cell.value, str) and cell.value.startswith("="):
        cell.data_type = "s"  # text that starts with "=" stays text, never a formula
    if number_format:
        cell.number_format = number_format
    if bold:
        cell.font = Font(bold=True)
    return cell


def to_xlsx(tables: Sequence[Table]) -> bytes:
    """One sheet per table, a bold header row, share columns formatted as percentages."""
    book = Workbook(write_only=True)
    for table in tables:
        sheet = book.create_sheet(title=_sheet_title(table.name))
        frame = table.export_frame
        sheet.append([_text_cell(sheet, str(c), bold=True) for c in frame.columns])
        formats = [
            PERCENT_FORMAT if c in table.shares else _decimals_format(table.decimals.get(c)) for c in frame.columns
        ]
        for record in frame.itertuples(index=False):
            sheet.append([_text_cell(sheet, v, number_format=f) for v, f in zip(record, formats, strict=True)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _decimals_format(decimals: int | None) -> str | None:
    if decimals is None:
        return None
    return "0." + "0" * decimals if decimals else "0"


def _sheet_title(name: str) -> str:
    for char in "[]:*?/\\":
        name = name.replace(char, " ")
    return name[:31] or "Sheet"


def table3_xlsx(columns: Sequence[Table3Column], *, title: str) -> bytes:
    """The study's Table 3 layout: per tree node three columns (node, references, share), the
    tree node with its share of all references on top, its sub-nodes below with their shares
    within it; exact counts and fractions, shown as percentages."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title="Table 3")
    sheet.append([_text_cell(sheet, title, bold=True)])
    header: list[Any] = []
    for column in columns:
        header += [
            _text_cell(sheet, column.tree, bold=True),
            _text_cell(sheet, column.references, bold=True),
            _text_cell(sheet, column.share, number_format=PERCENT_FORMAT, bold=True),
        ]
    sheet.append(header)
    sheet.append([_text_cell(sheet, h, bold=True) for _ in columns for h in ("Node", "References", "Share")])
    for i in range(max((len(c.subs) for c in columns), default=0)):
        row: list[Any] = []
        for column in columns:
            if i < len(column.subs):
                name, refs, share, _ = column.subs[i]
                row += [
                    _text_cell(sheet, name),
                    _text_cell(sheet, refs),
                    _text_cell(sheet, share, number_format=PERCENT_FORMAT),
                ]
            else:
                row += [None, None, None]
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def file_response(content: bytes, *, filename: str, fmt: str) -> HttpResponse:
    response = HttpResponse(content, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response


def table_response(table: Table, *, filename: str, fmt: str) -> HttpResponse:
    content = to_csv(table) if fmt == "csv" else to_xlsx([table])
    return file_response(content, filename=filename, fmt=fmt)


# --- the full reference list -------------------------------------------------------------------

REFERENCE_COLUMNS = [
    "label",
    "policy",
    "policy_title",
    "clause",
    "node",
    "layer",
    "start",
    "end",
    "text",
    "memo",
    "created",
]


def reference_rows(references: QuerySet[Reference], nodes: Iterable[CodebookNode]) -> Iterator[list[Any]]:
    """One row per reference (columns ``REFERENCE_COLUMNS``), in policy and text order, read
    in chunks from one query: ``layer`` is the coder's username or "consensus", ``node`` the
    node's path, offsets are code points."""
    paths = {n.id: n.path for n in nodes}
    rows = references.order_by("policy__number", "start", "end", "id").values_list(
        "policy__number",
        "policy__title",
        "clause__number",
        "node_id",
        "consensus",
        "coder__username",
        "start",
        "end",
        "text",
        "memo",
        "created_at",
    )
    for number, title, clause, node_id, consensus, username, start, end, text, memo, created in rows.iterator(
        chunk_size=5000
    ):
        yield [
            f"{number}-{clause}",
            number,
            title,
            clause,
            paths.get(node_id, ""),
            "consensus" if consensus else username,
            start,
            end,
            text,
            memo,
            created.isoformat(),
        ]


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """CSV text one row at a time (to stream or write): the header first, led by a byte-order
    mark (which Excel needs to read Chinese), then one string per row, lines ending in "\\n"."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    yield "\ufeff" + buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        yield buffer.getvalue()


def write_references(rows: Iterable[list[Any]], path: Path) -> int:
    """Write the reference rows to ``path`` as CSV or XLSX (by its suffix); returns the count."""
    fmt = path.suffix.lower().lstrip(".")
    count = 0
    if fmt == "csv":
        lines = csv_lines(REFERENCE_COLUMNS, rows)
        with path.open("w", encoding="utf-8", newline="") as handle:  # the first line holds the BOM
            handle.write(next(lines))
            for line in lines:
                handle.write(line)
                count += 1
        return count
    if fmt != "xlsx":
        raise ValueError(f"{path.name}: write .csv or .xlsx.")
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title="References")
    sheet.append([_text_cell(sheet, c, bold=True) for c in REFERENCE_COLUMNS])
    for row in rows:
        sheet.append([_text_cell(sheet, v) for v in row])
        count += 1
    book.save(path)
    return count
