"""Per-(model, test set) prediction files that a resume can trust.

While a pair is being scored, each process appends its finished batches to a
journal of its own (:class:`ShardJournal`); when every batch is in, the main
process merges the journals in test-set order into the pair's files.

Each pair has ``<test>.csv`` (image, prediction, mos, mos_raw, error, and text
when the model wrote any: a reasoning model's answer) and
``<test>.meta.json`` (the fingerprint of everything that determines the
predictions, plus timing and memory). Both are written atomically (temporary
file + rename), the old CSV is removed before the new meta is written, and the
CSV is written last: a CSV therefore only exists next to the meta it belongs
to, and a pair counts as finished only if its meta matches the current
settings and the CSV matches the checksum the meta records. A kill at any
moment, or a file cut or edited afterwards, leaves nothing a resume would
wrongly trust.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from iqabench.files import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class Prediction:
    image: str
    prediction: float | None
    mos: float
    mos_raw: float
    error: str | None = None
    #: what the model wrote for the image (a reasoning model's answer), when it writes anything
    text: str | None = None


class PredictionStore:
    """The prediction files of one (model, test set) pair.

    The meta file records the CSV's row count, the SHA-256 of its bytes and of
    its ordered image list, so a resume can tell a complete file from one that
    was cut, emptied or edited (:meth:`problem`).
    """

    FIELDS = ("image", "prediction", "mos", "mos_raw", "error")

    def __init__(self, directory: Path, key: str) -> None:
        self.csv_path = directory / f"{key}.csv"
        self.meta_path = directory / f"{key}.meta.json"

    def meta(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None

    def problem(self, fingerprint: str, images: list[str]) -> str | None:
        """Why these files cannot be reused for ``fingerprint`` and ``images`` (in order), or ``None``."""
        meta = self.meta()
        if meta is None:
            return "not scored yet"
        if meta.get("fingerprint") != fingerprint:
            return "the settings changed since it was scored"
        if not self.csv_path.exists():
            return "its predictions file is missing"
        if "csv_sha256" not in meta:
            return "it was written without a checksum (an older iqabench)"
        data = self.csv_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta["csv_sha256"]:
            return f"{self.csv_path.name} does not match its checksum (cut, emptied or edited)"
        if meta.get("images_sha256") != _images_digest(images) or meta.get("count") != len(images):
            return "its image list differs from the test set's"
        return None

    def damage(self) -> str | None:
        """What is wrong with the files on their own terms (missing, or not matching the checksum), or ``None``."""
        meta = self.meta()
        if meta is None or not self.csv_path.exists():
            return f"{self.meta_path.name if meta is None else self.csv_path.name} is missing"
        if hashlib.sha256(self.csv_path.read_bytes()).hexdigest() != meta.get("csv_sha256"):
            return f"{self.csv_path.name} does not match its checksum (cut, emptied or edited)"
        return None

    def clear(self) -> None:
        """Remove the files, so predictions made with other settings are never reported for these."""
        self.csv_path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)

    def write(self, rows: list[Prediction], meta: dict[str, Any]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        texts = any(row.text for row in rows)  # the column only for models that write text
        writer.writerow(self.FIELDS + (("text",) if texts else ()))
        for row in rows:
            writer.writerow(
                [row.image, "" if row.prediction is None else repr(row.prediction), repr(row.mos), repr(row.mos_raw),
                 row.error or ""] + ([row.text or ""] if texts else [])
            )
        text = buffer.getvalue()
        meta = {
            **meta,
            "count": len(rows),
            "images_sha256": _images_digest([row.image for row in rows]),
            "csv_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        }
        self.csv_path.unlink(missing_ok=True)
        atomic_write_json(self.meta_path, meta)
        atomic_write_text(self.csv_path, text)

    def read(self) -> list[Prediction]:
        with self.csv_path.open(newline="", encoding="utf-8") as handle:
            return [
                Prediction(
                    image=row["image"],
                    prediction=float(row["prediction"]) if row["prediction"] != "" else None,
                    mos=float(row["mos"]),
                    mos_raw=float(row["mos_raw"]),
                    error=row["error"] or None,
                    text=row.get("text") or None,
                )
                for row in csv.DictReader(handle)
            ]


def _images_digest(images: list[str]) -> str:
    return hashlib.sha256("\n".join(images).encode("utf-8")).hexdigest()


class ShardJournal:
    """The batches one process has scored for a pair so far: append-only, durable batch by batch, checkable.

    JSON lines: a header with the settings the predictions depend on (the
    pair's fingerprint, the batch size, the test set's image list), then one
    line per finished batch with its number, its rows and the SHA-256 of both.
    Every line is flushed to disk before the next batch starts, so a killed
    process loses only the batch it was scoring. A line cut short by the kill,
    or altered afterwards, fails its checksum and its batch is scored again; a
    journal written with other settings is not used at all.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = None

    def read(self, header: dict[str, Any]) -> dict[int, list[Prediction]]:
        """The intact batches of this journal by batch number, or none if it was written with other settings."""
        lines = self._complete_lines()
        if not lines or _loads(lines[0]) != header:
            return {}
        found = {}
        for line in lines[1:]:
            entry = _loads(line)
            if (not isinstance(entry, dict)
                    or entry.get("sha256") != _batch_digest(entry.get("batch"), entry.get("rows"))):
                continue
            try:
                found[int(entry["batch"])] = [Prediction(*row) for row in entry["rows"]]
            except (TypeError, ValueError):
                continue
        return found

    def open(self, header: dict[str, Any]) -> None:
        """Append from now on; a journal with other settings, or none, starts afresh with ``header``."""
        lines = self._complete_lines()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if lines and _loads(lines[0]) == header:
            intact = sum(len(line) for line in lines)
            with self.path.open("r+b") as handle:  # drop a last line cut short by a kill
                handle.truncate(intact)
            self._handle = self.path.open("ab")
        else:
            self._handle = self.path.open("wb")
            self._write_line(header)

    def append(self, batch: int, rows: list[Prediction]) -> None:
        encoded = [list(astuple(row)) for row in rows]
        self._write_line({"batch": batch, "rows": encoded, "sha256": _batch_digest(batch, encoded)})

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _write_line(self, value: dict[str, Any]) -> None:
        assert self._handle is not None, "open the journal first"
        self._handle.write(json.dumps(value).encode("utf-8") + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def _complete_lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except OSError:
            return []
        return [line + b"\n" for line in data.split(b"\n")[:-1]]


def journal_header(fingerprint: str, batch_size: int, images: list[str]) -> dict[str, Any]:
    """What a journal's batches depend on: the pair's settings, and which images batch ``b`` holds."""
    return {"fingerprint": fingerprint, "batch_size": batch_size, "count": len(images),
            "images_sha256": _images_digest(images)}


def _batch_digest(batch: Any, rows: Any) -> str:
    return hashlib.sha256(json.dumps([batch, rows]).encode("utf-8")).hexdigest()


def _loads(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None
