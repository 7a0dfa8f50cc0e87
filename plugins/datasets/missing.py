"""Reporting image files that a label file names but the disk lacks.

Missing images are listed at load time and kept in the index: the runner
counts them as unscored, so a partial download shows in the leaderboard
instead of silently shrinking the test set.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from iqabench.dataset import DatasetIndex

from iqabench_plugins.datasets.files import ImageFinder

#: how many missing names a warning spells out before giving only the count
SHOWN = 5


class MissingImagesWarning(UserWarning):
    """Some images named in a dataset's labels are not on disk."""


def describe_missing(title: str, root: Path, missing: Sequence[str], total: int) -> str:
    shown = ", ".join(missing[:SHOWN])
    more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
    return (
        f"{title}: {len(missing)} of {total} image files are missing under {root}: {shown}{more}. "
        "They stay in the index and count as unscored; complete the download to score them."
    )


def report_missing(title: str, root: Path, index: DatasetIndex, finder: ImageFinder) -> list[str]:
    """The index's images that ``finder`` does not see on disk, noted in the provenance and warned about."""
    missing = [r.image for r in index.records if not finder.exists(r.image)]
    if missing:
        message = describe_missing(title, root, missing, len(index.records))
        index.provenance.notes.append(message)
        warnings.warn(message, MissingImagesWarning, stacklevel=3)
    return missing
