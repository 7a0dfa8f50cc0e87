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


class PluginError(IQABenchError):
    """A plugin, or a class it registers, that does not follow the plugin contract."""


class NotDifferentiableError(IQABenchError):
    """A loss (or a reward with gradients) asked of a model whose scores have no gradient."""

    def __init__(self, model: str, differentiable: list[str] | None = None) -> None:
        names = (f" Differentiable models: {', '.join(differentiable)}." if differentiable
                 else " `iqabench list models --json` marks the differentiable ones.")
        super().__init__(
            f"model {model!r} is not differentiable with these options (its scores do not come from a "
            f"computation torch can differentiate), so it cannot be a loss.{names} It can still score images as a "
            "metric or a reward: create_model(name) without as_loss."
        )


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
