"""The output file of ``iqabench score --output``: CSV or JSON lines, written batch by batch, resumable.

One row per image: ``image`` (the path as found), ``score`` (empty / null
when there is none) and ``error`` (why not). The format follows the suffix:
``.csv`` or ``.jsonl``.

Beside it, ``<output>.meta.json`` records the settings the scores depend on
(model, options, precision, resize) and, after every batch, how many bytes
and rows of the output are complete and their SHA-256, so a re-run can trust
exactly those:

* bytes after the recorded end (a batch whose write was cut by a kill) are
  cut off and those images scored again;
* a recorded part that no longer matches its checksum (the file was cut
  short, emptied or edited) is an error: nothing is overwritten, the message
  says how to start over (``--force``);
* other settings than the recorded ones are an error too, so one file never
  mixes scores of two models or two option sets;
* an existing output without its record was not written by this command and
  is not touched.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from iqabench import locks
from iqabench.errors import IQABenchError
from iqabench.files import atomic_write_json, read_json

FORMAT = "iqabench-scores"
VERSION = 1
SUFFIXES = (".csv", ".jsonl")
FIELDS = ("image", "score", "error")

Row = tuple[str, "float | None", "str | None"]


class OutputInUseError(IQABenchError):
    """Another process is writing the same ``--output`` file."""


def _checked(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise IQABenchError(f"--output {path}: name it *.csv or *.jsonl (the suffix sets the format).")
    return path


def held(path: str | os.PathLike, command: str = "") -> AbstractContextManager[None]:
    """Hold the output ``path`` for this process (:func:`iqabench.locks.held`): a second ``iqabench score
    --output`` on the same file stops before reading or writing it, and names the holder."""
    path = _checked(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return locks.held(path.with_name(f".{path.name}.lock"), path.with_name(f".{path.name}.lock.json"), command,
                      lambda who: OutputInUseError(f"{path} is being written by {who}. Wait for it to finish, or "
                                                   "choose another --output."))


class ScoresFile:
    """An output being written; :attr:`done` holds the images already in it. Open it while :func:`held`."""

    def __init__(self, path: str | os.PathLike, settings: dict[str, Any], *, force: bool = False) -> None:
        self.path = _checked(path)
        self.meta_path = self.path.with_name(self.path.name + ".meta.json")
        self.csv = self.path.suffix.lower() == ".csv"
        self.settings = json.loads(json.dumps(settings, default=str))  # as it will read back
        self._open(force)

    def _open(self, force: bool) -> None:
        if force:
            self.path.unlink(missing_ok=True)
            self.meta_path.unlink(missing_ok=True)
        self.done: set[str] = set()
        self.rows = 0
        self.size = 0
        self.cut_bytes = 0
        self._digest = hashlib.sha256()
        if self.path.exists():
            self._resume()
        else:
            self._record()  # the record first: an output never exists without one
            self.path.write_bytes(b"")
        if self.csv and self.size == 0:
            self._append(_csv_text([FIELDS]).encode("utf-8"), rows=0)

    def _resume(self) -> None:
        meta = read_json(self.meta_path)
        if meta.get("format") != FORMAT:
            raise IQABenchError(
                f"{self.path} exists but was not written by `iqabench score` (no {self.meta_path.name} next to it); "
                "it is left untouched. Choose another --output."
            )
        before = meta.get("settings", {})
        if before != self.settings:
            keys = sorted(key for key in {*before, *self.settings} if before.get(key) != self.settings.get(key))
            changed = "; ".join(f"{key}: {before.get(key)!r} then, {self.settings.get(key)!r} now" for key in keys)
            raise IQABenchError(
                f"{self.path} holds scores made with other settings ({changed}). Choose another --output, or pass "
                "--force to start it over."
            )
        data = self.path.read_bytes()
        size = int(meta.get("bytes", -1))
        if len(data) < size or hashlib.sha256(data[:size]).hexdigest() != meta.get("sha256"):
            raise IQABenchError(
                f"{self.path} no longer matches its record in {self.meta_path.name} (cut short, emptied or edited "
                "after it was written), so its scores cannot be trusted for a resume. It is left untouched: move it "
                "away, or pass --force to start it over."
            )
        if len(data) > size:
            with self.path.open("r+b") as handle:
                handle.truncate(size)
            self.cut_bytes = len(data) - size
        self._digest.update(data[:size])
        self.size, self.rows = size, int(meta["rows"])
        self.done = {row[0] for row in self._parse(data[:size].decode("utf-8"))}

    def _parse(self, text: str) -> list[Row]:
        if self.csv:
            rows = list(csv.reader(io.StringIO(text)))[1:]
            return [(image, float(score) if score else None, error or None) for image, score, error in rows]
        return [(r["image"], r["score"], r["error"]) for r in map(json.loads, text.splitlines()) if r]

    def write(self, rows: Iterable[Row]) -> None:
        """Append rows, durably, then record the new end: a kill loses at most the rows of this call."""
        rows = list(rows)
        if not rows:
            return
        if self.csv:
            text = _csv_text([(image, "" if score is None else repr(score), error or "")
                              for image, score, error in rows])
        else:
            text = "".join(json.dumps({"image": image, "score": score, "error": error}, ensure_ascii=False) + "\n"
                           for image, score, error in rows)
        self._append(text.encode("utf-8"), rows=len(rows))
        self.done.update(image for image, _, _ in rows)

    def _append(self, data: bytes, *, rows: int) -> None:
        with self.path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self._digest.update(data)
        self.size += len(data)
        self.rows += rows
        self._record()

    def _record(self) -> None:
        atomic_write_json(self.meta_path, {
            "format": FORMAT, "version": VERSION, "settings": self.settings, "rows": self.rows,
            "bytes": self.size, "sha256": self._digest.hexdigest(),
        })

    def read(self) -> list[Row]:
        """Every row written so far."""
        return self._parse(self.path.read_text(encoding="utf-8"))


def _csv_text(rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
