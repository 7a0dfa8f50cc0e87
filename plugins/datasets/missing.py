"""Reporting image files that a label file names but the disk lacks.

Missing images are listed at load time and kept in the index: the runner
counts them as unscored, so a partial download shows in the leaderboard
instead of silently shrinking the test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
