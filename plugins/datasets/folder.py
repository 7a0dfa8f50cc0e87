"""``folder``: a folder of images and a CSV or JSON file of their scores, your own data without a plugin.

The case most users have: photos (or a generator's outputs) rated by people,
the ratings in a spreadsheet. Point a suite's test set at the folder::

    test:
      - {dataset: folder, root: my_photos, label: "My photos", options: {labels: ratings.csv}}

The labels file is found by itself when the folder holds exactly one ``.csv``,
``.json`` or ``.jsonl`` file. Its columns are found by their usual names
(case-insensitive): the image from ``image``, ``file``, ``filename``,
``image_name`` or ``path``, the score from ``mos``, ``score``, ``dmos`` or
``quality``, the split from ``split``; options name other columns. A ``dmos``
column is read as lower-is-better unless ``direction`` says otherwise. Image
paths are relative to the folder. Every row is checked: a missing column, an
empty cell, a score that is not a number and an image listed twice are errors
naming the file and the line.

A JSON file is a list of objects (one per image, the same column rules), an
object mapping each image to its score (``{"a.jpg": 3.2, ...}``), or JSON lines.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Literal

from iqabench.api import Dataset, DatasetIndex, IQABenchError, build_index

IMAGE_COLUMNS = ("image", "file", "filename", "image_name", "path")
SCORE_COLUMNS = ("mos", "score", "dmos", "quality")
SPLIT_COLUMN = "split"
LABEL_SUFFIXES = (".csv", ".json", ".jsonl")


class FolderDataset(Dataset):
    """A folder of images and a CSV or JSON file of their scores (columns found by name; options to choose)."""

    name = "folder"
    title = "Folder"
    default_dir = "folder"
    homepage = "your own folder of images (docs/datasets.md, 'Your own images')"
    expected_files = ("one .csv, .json or .jsonl file of scores (or the file named by the `labels` option)",
                      "the images it names, at paths relative to the folder")

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        labels: str | None = None,
        image_column: str | None = None,
        score_column: str | None = None,
        split_column: str | None = None,
        direction: Literal["higher_better", "lower_better"] | None = None,
        score_range: tuple[float, float] | None = None,
        allow_outside_root: bool = False,
    ) -> None:
        """Options (``-o key=value`` or a suite's ``options:``).

        ``labels``: the scores file, relative to the folder or absolute (default: the only ``.csv``, ``.json``
        or ``.jsonl`` file in it). ``image_column``, ``score_column``, ``split_column``: the column names
        (default: found by their usual names; no split column means every image is tested). ``direction``:
        ``higher_better`` or ``lower_better`` (default: lower for a ``dmos`` column, else higher).
        ``score_range``: the scale as documented, e.g. ``[0, 100]``: scores are then rescaled to [1, 5] from it
        instead of from the lowest and highest score found.
        """
        super().__init__(root, allow_outside_root=allow_outside_root)
        if direction not in (None, "higher_better", "lower_better"):
            raise IQABenchError(f"folder dataset: direction is higher_better or lower_better, not {direction!r}.")
        if score_range is not None and not float(score_range[0]) < float(score_range[1]):
            raise IQABenchError(f"folder dataset: score_range [{score_range[0]}, {score_range[1]}] is empty.")
        self.labels = labels
        self.image_column = image_column
        self.score_column = score_column
        self.split_column = split_column
        self.direction = direction
        self.score_range = score_range

    def labels_file(self) -> Path:
        """The scores file: the one named by ``labels``, else the only candidate in the folder."""
        root = self.root
        if not root.is_dir():
            raise self.missing_error(f"the folder {root} does not exist")
        if self.labels is not None:
            path = Path(os.path.expanduser(self.labels))
            path = path if path.is_absolute() else root / path
            if not path.is_file():
                raise self.missing_error(f"the labels file {path} does not exist")
            return path
        found = sorted(p for p in root.iterdir() if p.suffix.lower() in LABEL_SUFFIXES and p.is_file())
        if not found:
            raise self.missing_error(f"no .csv, .json or .jsonl file of scores in {root}")
        if len(found) > 1:
            raise IQABenchError(
                f"folder dataset at {root}: several files could hold the scores ({', '.join(p.name for p in found)}); "
                "name one with the option labels (-o labels=NAME, or `options: {labels: NAME}` in a suite)."
            )
        return found[0]

    def load(self) -> DatasetIndex:
        path = self.labels_file()
        table = read_table(path)
        columns = sorted({column for _, row in table for column in row})
        image = pick_column(path, columns, self.image_column, IMAGE_COLUMNS, "image", "image_column")
        score = pick_column(path, columns, self.score_column, SCORE_COLUMNS, "score", "score_column")
        split = pick_column(path, columns, self.split_column, (SPLIT_COLUMN,), "split", "split_column",
                            required=self.split_column is not None)
        direction = self.direction or ("lower_better" if score.lower() == "dmos" else "higher_better")
        rows: list[dict[str, Any]] = []
        seen: dict[str, str] = {}
        for where, row in table:
            source = f"{path.name}, {where}"
            name = _cell(row, image, source)
            if name in seen:
                raise IQABenchError(f"{source} lists {name!r} again (first at {seen[name]}); each image is rated once.")
            seen[name] = where
            value = _cell(row, score, source)
            try:
                mos = float(value)
            except ValueError:
                raise IQABenchError(f"{source}: the score {value!r} of {name!r} is not a number.") from None
            record: dict[str, Any] = {"image": name, "mos_raw": mos, "source": source}
            if split is not None:
                record["split"] = _cell(row, split, source)
            rows.append(record)
        label_file = os.path.relpath(path, self.root) if path.is_relative_to(self.root) else str(path)
        return build_index(
            self.name, self.root, rows, direction=direction, label_files=[label_file],
            nominal_range=self.score_range, rescale_range=self.score_range,
            split_source=f"the column {split!r} of {label_file}" if split is not None else None,
            notes=[f"columns: image {image!r}, score {score!r} ({direction})"],
            allow_outside_root=self.allow_outside_root,
        )


def read_table(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(where, row)`` of every row of a CSV (delimiter sniffed: comma, semicolon, tab), JSON or JSON-lines file."""
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".csv":
        try:
            dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(text.splitlines(), dialect=dialect)
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        return [(f"line {reader.line_num}", row) for row in reader if any((v or "").strip() for v in row.values())]
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append((f"line {number}", _json_object(json.loads(line), path, f"line {number}")))
        return rows
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IQABenchError(f"{path} is not valid JSON: {exc}.") from None
    if isinstance(content, dict):  # {"a.jpg": 3.2, ...}
        return [(f"entry {name!r}", {"image": name, "score": value}) for name, value in content.items()]
    if isinstance(content, list):
        return [(f"record {i}", _json_object(item, path, f"record {i}")) for i, item in enumerate(content)]
    raise IQABenchError(f"{path} holds a JSON {type(content).__name__}; expected a list of objects or an object "
                        "mapping each image to its score.")


def _json_object(item: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise IQABenchError(f"{path}, {where}: expected an object with an image and a score, found {item!r}.")
    return item


def pick_column(path: Path, columns: list[str], chosen: str | None, defaults: tuple[str, ...], what: str,
                option: str, required: bool = True) -> str | None:
    """The column named by the option (exactly, or ignoring case), else the first default present."""
    by_lower = {column.lower(): column for column in columns}
    if chosen is not None:
        column = chosen if chosen in columns else by_lower.get(chosen.lower())
        if column is None:
            raise IQABenchError(
                f"{path} has no column {chosen!r} (option {option}); its columns: {', '.join(columns)}."
            )
        return column
    for name in defaults:
        if name in by_lower:
            return by_lower[name]
    if not required:
        return None
    raise IQABenchError(
        f"{path}: no {what} column found (looked for {', '.join(defaults)}); its columns: {', '.join(columns)}. "
        f"Name it with the option {option}."
    )


def _cell(row: dict[str, Any], column: str, source: str) -> str:
    value = row.get(column)
    text = "" if value is None else str(value).strip()
    if not text:
        raise IQABenchError(f"{source}: the {column!r} cell is empty.")
    return text
