"""Per-(model, test set) prediction files that a resume can trust.

Each pair has ``<test>.csv`` (image, prediction, mos, mos_raw, error) and
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
from dataclasses import dataclass
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

    def clear(self) -> None:
        """Remove the files, so predictions made with other settings are never reported for these."""
        self.csv_path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)

    def write(self, rows: list[Prediction], meta: dict[str, Any]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.FIELDS)
        for row in rows:
            writer.writerow(
                [row.image, "" if row.prediction is None else repr(row.prediction), repr(row.mos), repr(row.mos_raw),
                 row.error or ""]
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
                )
                for row in csv.DictReader(handle)
            ]


def _images_digest(images: list[str]) -> str:
    return hashlib.sha256("\n".join(images).encode("utf-8")).hexdigest()
