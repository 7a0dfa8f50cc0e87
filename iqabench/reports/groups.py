"""Results per distortion type: on which kinds of degradation a model follows the MOS and on which it fails.

Synthetic-distortion datasets (KADID-10k, TID2013, CSIQ, PIPAL, the ``synthetic`` set) record each image's
distortion type and level (:attr:`iqabench.contracts.dataset.Record.distortion`). A run keeps them beside its
predictions in ``test_sets/<test>.csv`` (image, type, level: labels only, nothing of the images), so that the
per-type numbers can be recomputed from the run folder alone, as a merge of partial runs does. For each
(model, test set), SRCC and PLCC are computed over the scored images of each type, with the suite's
``correlation``; images the dataset gives no type (a pristine reference) belong to no group.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from iqabench.contracts.dataset import Record
from iqabench.files import atomic_write_text
from iqabench.reports import metrics
from iqabench.reports.schema import GroupResult
from iqabench.run.predictions import Prediction

FIELDS = ("image", "distortion", "level")


def write_test_labels(path: Path, records: Sequence[Record]) -> bool:
    """Write each record's distortion type and level to ``path``; False (nothing written) when none has one."""
    if not any(r.distortion for r in records):
        path.unlink(missing_ok=True)
        return False
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for record in records:
        kind = (record.distortion or {}).get("type")
        level = (record.distortion or {}).get("level")
        writer.writerow([record.image, "" if kind is None else kind, "" if level is None else level])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buffer.getvalue())
    return True


def read_test_labels(path: Path) -> list[tuple[str, str | None, int | None]] | None:
    """``(image, type, level)`` per row of a test set, in its order; None when the run recorded none."""
    if not path.exists():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        return [(row["image"], row["distortion"] or None, int(row["level"]) if row["level"] else None)
                for row in csv.DictReader(handle)]


def group_results(rows: Sequence[Prediction], labels: Sequence[tuple[str, str | None, int | None]] | None, *,
                  sign: float, fit: str) -> list[GroupResult]:
    """SRCC and PLCC per distortion type, in the order the types first appear in the test set.

    Empty when there are no labels or they do not list the prediction file's images in its order (labels of
    another version of the data).
    """
    if not labels or [image for image, _, _ in labels] != [r.image for r in rows]:
        return []
    members: dict[str, list[Prediction]] = {}
    for row, (_, kind, _) in zip(rows, labels):
        if kind is not None:
            members.setdefault(kind, []).append(row)
    out = []
    for kind, chosen in members.items():
        scored = [r for r in chosen if r.prediction is not None]
        pred = [sign * r.prediction for r in scored]
        mos = [r.mos for r in scored]
        out.append(GroupResult(name=kind, count=len(chosen), scored=len(scored),
                               srcc=metrics.srcc(pred, mos).to_dict(), plcc=metrics.plcc(pred, mos, fit=fit).to_dict()))
    return out
