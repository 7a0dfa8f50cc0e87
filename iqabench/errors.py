"""Exceptions whose messages are meant for the person at the terminal.

Each says what is wrong and what to do about it; the CLI prints them without a
traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.5) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(str(name), list(choices), n=n, cutoff=cutoff)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class IQABenchError(Exception):
    """Base class of every error the CLI reports as a plain message."""


class UnknownNameError(IQABenchError, KeyError):
    """A model, dataset, trainer or option name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateNameError(IQABenchError):
    """Two plugins registered the same name."""


class SuiteError(IQABenchError):
    """A suite file that does not follow the schema."""


class DatasetNotFoundError(IQABenchError):
    """A dataset root or label file that is missing."""


class ImageLoadError(IQABenchError):
    """An image that cannot be read or decoded."""


class CheckpointError(IQABenchError):
    """A checkpoint folder that is missing, incomplete or of the wrong kind."""


class DownloadError(IQABenchError):
    """A dataset download that cannot go on: offline, no access, a full disk, terms not accepted."""


class SourceChangedError(DownloadError):
    """What a source served is not what iqabench expects: a checksum or a count differs, a file is gone."""


class UnsafeArchiveError(DownloadError):
    """An archive member that would land outside the folder it is unpacked into (``../``, absolute, a link)."""
