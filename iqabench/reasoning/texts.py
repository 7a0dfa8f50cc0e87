"""The reasoning-texts file: one JSON line per (image, seed).

This is the hand-over between a reasoner (Q-Insight, any generative model
plugin, or the synthetic dataset's describer) and trainers that learn from
quality texts (RALI, RACT). Any tool can write it; iqabench appends to it line
by line, so an interrupted export resumes where it stopped. A last line cut
short by a kill is dropped on reopening rather than trusted.

Fields: ``image`` (path relative to the dataset root, or as given on the
command line), ``seed``, ``text`` (the reasoning), ``score`` (the parsed score
or null), ``gt`` (ground truth on [1, 5] or null), ``dataset``, ``model`` and
``error`` (null, or why no score could be parsed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from iqabench.errors import IQABenchError


@dataclass(frozen=True)
class ReasoningText:
    image: str
    seed: int
    text: str
    score: float | None = None
    gt: float | None = None
    dataset: str | None = None
    model: str | None = None
    error: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.image, self.seed)


def read_texts(path: str | os.PathLike) -> list[ReasoningText]:
    """All complete lines of a texts file; a malformed line is an error naming its number."""
    path = Path(path)
    if not path.exists():
        raise IQABenchError(
            f"reasoning-texts file not found: {path}. Write one with `iqabench describe MODEL --dataset NAME "
            f"--seeds 0,1,2 --out {path}`."
        )
    texts = []
    for number, line in enumerate(_complete_lines(path), start=1):
        try:
            row = json.loads(line)
            texts.append(
                ReasoningText(
                    image=str(row["image"]),
                    seed=int(row.get("seed", 0)),
                    text=str(row["text"]),
                    score=None if row.get("score") is None else float(row["score"]),
                    gt=None if row.get("gt") is None else float(row["gt"]),
                    dataset=row.get("dataset"),
                    model=row.get("model"),
                    error=row.get("error"),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IQABenchError(
                f"{path}, line {number}: not a reasoning-text record ({exc}); each line must be a JSON object "
                'with at least "image" and "text".'
            ) from None
    return texts


def _complete_lines(path: Path) -> Iterator[str]:
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            if line.endswith("\n") and line.strip():
                yield line


class TextsWriter:
    """Appends records to a texts file, durable line by line; knows which keys are already there."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_partial_last_line()
        self.done: set[tuple[str, int]] = {t.key for t in read_texts(self.path)} if self.path.exists() else set()
        self._handle = self.path.open("a", encoding="utf-8")

    def _drop_partial_last_line(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as handle:
                handle.truncate(cut)

    def write(self, records: Iterable[ReasoningText]) -> None:
        for record in records:
            self._handle.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
            self.done.add(record.key)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> TextsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
