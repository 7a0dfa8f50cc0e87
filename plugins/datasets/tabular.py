"""Reading the label files' formats (csv, xlsx, whitespace text) without pandas.

pandas costs about a second to import on a small machine, more than parsing a
10k-row csv; the standard ``csv`` module and openpyxl in read-only mode keep
indexing a dataset well under the 2-second budget.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from iqabench.api import IQABenchError


def read_csv_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a csv file with a header; the ``required`` columns must be present."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = columns
        missing = [c for c in required if c not in columns]
        if missing:
            raise IQABenchError(
                f"{path} lacks the column(s) {', '.join(missing)}; it has {', '.join(columns) or 'no header'}. "
                "Is this the file as distributed by the dataset's authors?"
            )
        return [(reader.line_num, row) for row in reader]


def read_xlsx_table(path: Path, sheet: str | None, required: tuple[str, ...]) -> list[tuple[int, dict[str, Any]]]:
    """``(row number, row)`` of a worksheet under the first row that holds every ``required`` header.

    The header row is searched rather than assumed because official workbooks
    put titles above it (CSIQ's header is on row 4, after an empty column).
    ``sheet=None`` reads the first worksheet.
    """
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise IQABenchError(f"{path} has no sheet {sheet!r}; its sheets are {', '.join(workbook.sheetnames)}.")
        worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        rows = enumerate(worksheet.iter_rows(values_only=True), 1)
        positions: dict[str, int] | None = None
        for _, cells in rows:
            names = [str(c).strip() if c is not None else "" for c in cells]
            if all(r in names for r in required):
                positions = {name: i for i, name in enumerate(names) if name}
                break
        if positions is None:
            raise IQABenchError(
                f"no header row with the columns {', '.join(required)} in sheet {worksheet.title!r} of {path}; "
                "is this the workbook as distributed by the dataset's authors?"
            )
        table = []
        for number, cells in rows:
            if cells is None or all(c is None for c in cells):
                continue
            table.append((number, {name: cells[i] if i < len(cells) else None for name, i in positions.items()}))
        return table
    finally:
        workbook.close()


def to_float(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise IQABenchError(f"{where}: expected a number, found {value!r}.") from None


def first_existing(root: Path, candidates: tuple[str, ...]) -> Path | None:
    """The first of ``candidates`` (relative to ``root``) that is a file."""
    for candidate in candidates:
        if (root / candidate).is_file():
            return root / candidate
    return None
