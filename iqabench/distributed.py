"""Which process of a multi-process launch this is, and waiting for the others.

Under ``accelerate launch`` (or ``torchrun``) several processes run the same
command. Work that must happen once (creating, renaming or deleting folders,
writing a marker) happens on the main process, and the others wait for it at
a barrier. Without a launcher there is one process and nothing to wait for;
accelerate is then not even imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of a launch."""

    index: int
    count: int
    barrier: Callable[[], None]

    @property
    def is_main(self) -> bool:
        return self.index == 0


def launched_processes() -> int:
    """How many processes the launcher started (its ``WORLD_SIZE``), 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def processes() -> Processes:
    """The processes of this launch; accelerate sets up the process group when there are several."""
    if launched_processes() <= 1:
        return Processes(0, 1, lambda: None)
    from accelerate import PartialState

    state = PartialState()
    return Processes(state.process_index, state.num_processes, state.wait_for_everyone)
