"""The contract of checkpoint converters (``iqabench convert NAME SRC OUT``).

Converters turn a third-party release (often pickled) into a checkpoint that
iqabench loads without pickle. Running one is the explicit opt-in to reading
the release's pickles once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar


class Converter(ABC):
    """Base class of converters."""

    #: registry name, e.g. ``"rali-official"``
    name: ClassVar[str]

    @abstractmethod
    def convert(self, source: Path, out: Path) -> Path:
        """Read ``source`` and write a pickle-free checkpoint folder ``out``; return ``out``."""
