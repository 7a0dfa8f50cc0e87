"""The contract of checkpoint converters (``iqabench convert NAME SRC OUT``).

Converters turn a third-party release (often pickled) into a checkpoint that
iqabench loads without pickle. Reading a pickle can run arbitrary code, so a
converter that has to unpickle says so (:attr:`Converter.reads_pickle`): the
command then refuses to run it without ``--trust-pickle``, the same explicit
opt-in as ``-o trust_pickle=true`` when scoring, and the converter receives
that choice so that it refuses too when called from Python.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar


class Converter(ABC):
    """Base class of converters."""

    #: registry name, e.g. ``"rali-official"``
    name: ClassVar[str]
    #: True when the release can only be read by unpickling (e.g. a joblib/sklearn file): needs ``--trust-pickle``
    reads_pickle: ClassVar[bool] = False
    #: what is unpickled, for the refusal message and ``--help`` (e.g. "pca.pkl, a joblib pickle of an sklearn PCA")
    pickled_files: ClassVar[str] = ""

    @abstractmethod
    def convert(self, source: Path, out: Path, *, trust_pickle: bool = False) -> Path:
        """Read ``source`` and write a pickle-free checkpoint folder ``out``; return ``out``.

        ``trust_pickle`` is the user's explicit permission to unpickle what
        cannot be read otherwise; without it a converter never unpickles.
        """
