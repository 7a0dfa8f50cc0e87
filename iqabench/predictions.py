"""Per-(model, test set) prediction files that a resume can trust.

Each pair has ``<test>.csv`` (image, prediction, mos, mos_raw, error) and
``<test>.meta.json`` (the fingerprint of everything that determines the
predictions, plus timing and memory). Both are written atomically (temporary
file + rename), the old CSV is removed before the new meta is written, and the
CSV is written last: a CSV therefore only exists next to the meta it belongs
to, and a pair counts as finished only if its meta matches the current
settings. A kill at any moment leaves nothing a resume would wrongly trust.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


@dataclass(frozen=True)
class Prediction:
    image: str
    prediction: float | None
    mos: float
    mos_raw: float
    error: str | None = None


class PredictionStore:
    """The prediction files of one (model, test set) pair."""

    FIELDS = ("image", "prediction", "mos", "mos_raw", "error")

    def __init__(self, directory: Path, key: str) -> None:
        self.csv_path = directory / f"{key}.csv"
        self.meta_path = directory / f"{key}.meta.json"

    def meta(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None

    def is_complete(self, fingerprint: str) -> bool:
        meta = self.meta()
        return self.csv_path.exists() and meta is not None and meta.get("fingerprint") == fingerprint

    def write(self, rows: list[Prediction], meta: dict[str, Any]) -> None:
        self.csv_path.unlink(missing_ok=True)
        atomic_write_json(self.meta_path, meta)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.FIELDS)
        for row in rows:
            writer.writerow(
                [row.image, "" if row.prediction is None else repr(row.prediction), repr(row.mos), repr(row.mos_raw),
                 row.error or ""]
            )
        atomic_write_text(self.csv_path, buffer.getvalue())

    def read(self) -> list[Prediction]:
        with self.csv_path.open(newline="", encoding="utf-8") as handle:
            return [
                Prediction(
                    image=row["image"],
                    prediction=float(row["prediction"]) if row["prediction"] != "" else None,
                    mos=float(row["mos"]),
                    mos_raw=float(row["mos_raw"]),
                    error=row["error"] or None,
                )
                for row in csv.DictReader(handle)
            ]
