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
  is not touched;
* ``<output>.images.tsv`` holds, line by line with the rows, each image's size
  and modification time when its score was written: an image changed in place
  since (re-encoded, edited) makes the re-run an error naming it, rather than
  keep a score of the old file beside scores of new ones.
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
VERSION = 2  # 2: the image states beside the rows (a version-1 file resumes without them)
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
        self.states_path = self.path.with_name(self.path.name + ".images.tsv")
        self.csv = self.path.suffix.lower() == ".csv"
        self.settings = json.loads(json.dumps(settings, default=str))  # as it will read back
        self._open(force)

    def _open(self, force: bool) -> None:
        if force:
            self.path.unlink(missing_ok=True)
            self.meta_path.unlink(missing_ok=True)
            self.states_path.unlink(missing_ok=True)
        self.done: set[str] = set()
        self.rows = 0
        self.size = 0
        self.cut_bytes = 0
        self.version = VERSION
        self._digest = hashlib.sha256()
        if self.path.exists():
            self._resume()
        else:
            self._record()  # the record first: an output never exists without one
            self.states_path.write_bytes(b"")
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
        images = [row[0] for row in self._parse(data[:size].decode("utf-8"))]
        self.version = int(meta.get("version", 1))
        if self.version >= 2:
            self._check_states(images)
        self.done = set(images)

    def _check_states(self, images: list[str]) -> None:
        """Refuse a resume where an image already scored has changed since; keep the states of the rows kept."""
        try:
            lines = self.states_path.read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        if len(lines) < len(images):
            raise IQABenchError(
                f"{self.states_path} (the state of each image when its score was written) is missing or cut short, "
                f"so {self.path} cannot be resumed safely. It is left untouched: move it away, or pass --force to "
                "start it over."
            )
        lines = lines[: len(images)]  # beyond: a batch whose write was cut by a kill, scored again
        changed = [image for image, then in zip(images, lines) if _state(image) not in (then, None)]
        if changed:
            raise IQABenchError(
                f"{len(changed)} of the {len(images)} images already scored in {self.path} changed since their "
                f"scores were written (size or modification time), the first {changed[0]}: those scores describe "
                "the old files. Pass --force to score every image again, or choose another --output."
            )
        self.states_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")

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
        if self.version >= 2:
            with self.states_path.open("a", encoding="utf-8") as handle:  # before the rows: a kill leaves extra lines
                handle.write("".join(f"{_state(image) or 'missing'}\n" for image, _, _ in rows))
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
            "format": FORMAT, "version": self.version, "settings": self.settings, "rows": self.rows,
            "bytes": self.size, "sha256": self._digest.hexdigest(),
        })

    def read(self) -> list[Row]:
        """Every row written so far."""
        return self._parse(self.path.read_text(encoding="utf-8"))


def _state(image: str) -> str | None:
    """An image file's size and modification time (None: not there now, so nothing of it can be stale)."""
    try:
        info = os.stat(image)
    except OSError:
        return None
    return f"{info.st_size}\t{info.st_mtime_ns}"


def _csv_text(rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
