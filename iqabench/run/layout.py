"""Where everything a run produces lives, in one object.

::

    OUT/
      suite.yaml                     the suite as run
      checkpoints/<model>/           trained checkpoints (renamed into place when training ends)
      predictions/<model>/<test>.csv + .meta.json
      predictions/<model>/<test>.shard-<i>-of-<n>.jsonl
                                     process i's finished batches while the pair is scored (merged, then removed)
      test_sets/<test>.csv           each image's distortion type and level, where the dataset records them
      efficiency/<model>.json
      failures/<model>/<what>.txt    tracebacks of what failed (a test set, "training", "efficiency")
      results.json, leaderboard.md, run.log
      logs/process-<i>.log           the log of process i > 0 of a multi-process launch
      .iqabench.lock                 held while a run writes here

``<model>`` and ``<test>`` are slugs: file-name-safe forms of the leaderboard
labels (:func:`slug`). Nothing else in iqabench spells out these paths.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from iqabench import locks
from iqabench.errors import IQABenchError
from iqabench.run.predictions import PredictionStore, ShardJournal


def slug(text: str) -> str:
    """A file-name-safe key; '+' is spelled out so that CLIP-IQA and CLIP-IQA+ stay apart."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.replace("+", "-plus")).strip("-").lower() or "x"


def shard_name(index: int, count: int) -> str:
    """How files written by process ``index`` of ``count`` are told apart."""
    return f"shard-{index}-of-{count}"


#: the lock and its note (:meth:`RunLayout.lock`): present in a folder from the moment a run takes it
LOCK_FILES = (".iqabench.lock", ".iqabench.lock.json")


class RunLockedError(IQABenchError):
    """Another process is writing into the same output folder."""


class RunLayout:
    """The paths of one output folder."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def leaderboard(self) -> Path:
        return self.root / "leaderboard.md"

    @property
    def log(self) -> Path:
        return self.root / "run.log"

    @property
    def suite_copy(self) -> Path:
        return self.root / "suite.yaml"

    def checkpoint(self, model: str) -> Path:
        return self.root / "checkpoints" / model

    def predictions(self, model: str, test: str) -> PredictionStore:
        return PredictionStore(self.root / "predictions" / model, test)

    def test_labels(self, test: str) -> Path:
        """The distortion type and level of each image of a test set (:mod:`iqabench.reports.groups`)."""
        return self.root / "test_sets" / f"{test}.csv"

    def journal(self, model: str, test: str, index: int, count: int) -> ShardJournal:
        """Where process ``index`` of ``count`` appends its finished batches of a pair."""
        return ShardJournal(self.root / "predictions" / model / f"{test}.{shard_name(index, count)}.jsonl")

    def journals(self, model: str, test: str) -> list[ShardJournal]:
        """Every journal of a pair on disk, whatever the number of processes that wrote it."""
        folder = self.root / "predictions" / model
        pattern = re.compile(re.escape(test) + r"\.shard-\d+-of-\d+\.jsonl")
        paths = sorted(folder.glob(f"{test}.shard-*-of-*.jsonl")) if folder.is_dir() else []
        return [ShardJournal(path) for path in paths if pattern.fullmatch(path.name)]

    def process_log(self, index: int) -> Path:
        """The log of one process: ``run.log`` for the main one."""
        return self.log if index == 0 else self.root / "logs" / f"process-{index}.log"

    def efficiency(self, model: str) -> Path:
        return self.root / "efficiency" / f"{model}.json"

    def failure(self, model: str, what: str) -> Path:
        return self.root / "failures" / model / f"{what}.txt"

    def record_failure(self, model: str, what: str, exc: BaseException) -> Path:
        """Keep the traceback of something that failed, for the leaderboard to point at."""
        path = self.failure(model, what)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return path

    def failure_summary(self, model: str, what: str) -> str | None:
        """The last line of a recorded traceback (the exception and its message), or ``None``."""
        path = self.failure(model, what)
        if not path.exists():
            return None
        lines = path.read_text().strip().splitlines()
        return lines[-1] if lines else "failed"

    def check_ours(self, suite_name: str) -> None:
        """Refuse a folder that this suite's runs did not make: a run writes only into a new or empty folder, or
        one holding a run of the same suite (its ``suite.yaml``), so a wrong ``--out`` overwrites nothing."""
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise IQABenchError(f"--out {self.root} is not a folder; give a new folder, or one of an earlier run of "
                                f"the suite {suite_name!r}.")
        if not any(entry.name not in LOCK_FILES for entry in self.root.iterdir()):
            return
        try:
            found = yaml.safe_load(self.suite_copy.read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError):
            found = None
        held = found.get("name") if isinstance(found, dict) else None
        if held != suite_name:
            what = f"a run of the suite {held!r}" if held else "files that are not an iqabench run"
            raise IQABenchError(
                f"{self.root} holds {what}, and a run of {suite_name!r} writes only into a new or empty folder or "
                "one of its own earlier runs (with their suite.yaml), so nothing else is overwritten. Choose another "
                "--out."
            )

    @contextmanager
    def lock(self, command: str = "") -> Iterator[None]:
        """Hold the folder for the duration of a run, or say which process holds it.

        An OS file lock (``flock`` through the ``filelock`` package): the kernel
        releases it when its process dies, however it dies, so a lock is never
        left stale. A note beside it names the holder for the refusal message.
        """
        self.root.mkdir(parents=True, exist_ok=True)

        def refusal(who: str) -> RunLockedError:
            return RunLockedError(f"{self.root} is in use by {who}. Wait for it to finish, or write to another --out "
                                  "folder.")

        with locks.held(self.root / LOCK_FILES[0], self.root / LOCK_FILES[1], command, refusal):
            yield
