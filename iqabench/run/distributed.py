"""Which process of a multi-process launch this is, how it shares work and talks to the others.

Under ``accelerate launch`` (or ``torchrun``) several processes run the same
command, one per device. Work that must happen once (taking the output
folder, creating, renaming or deleting folders, merging predictions, writing
results) happens on the main process; the others wait for it. Without a
launcher there is one process, nothing to wait for, and accelerate is not even
imported.

The processes talk over a gloo (CPU) process group of their own: object
broadcasts and gathers are small, and a process waiting for the main one
(while it trains a model that only trains in one process, or measures
efficiency on a quiet device) blocks in a socket read instead of occupying a
GPU, under a time limit long enough for such waits (:data:`WAIT_LIMIT`).

The process groups are destroyed when the interpreter exits (:func:`_tear_down`, registered with
:mod:`atexit` when they are created). Left alive, gloo's C++ threads were still running when the
interpreter's static destructors ran, and the process died with ``terminate called without an active
exception`` (SIGABRT) after its work was done, in about one launch in five on a 2-core machine; the
launcher then failed the whole launch.

Work is shared out in whole batches of the single-process run
(:func:`batches`, :func:`share`): every image is scored in exactly the batch
it would have been scored in by one process, so padding, batch-level
numerics and per-batch seeds are the same and a launch reproduces the
single-process predictions.
"""

from __future__ import annotations

import atexit
import functools
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")

#: how long a process waits for the others at a barrier before the launch fails; generous because the main
#: process may train a single-process trainer or measure efficiency while the others wait
WAIT_LIMIT = timedelta(hours=24)


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of a launch, and the ways to wait and exchange values."""

    index: int
    count: int
    barrier: Callable[[], None]
    _broadcast: Callable[[Any], Any]
    _gather: Callable[[Any], list[Any]]

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def broadcast(self, value: Any) -> Any:
        """The main process's ``value`` on every process (the others' argument is ignored)."""
        return self._broadcast(value)

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value``, in process order, on every process."""
        return self._gather(value)

    def main_only(self, work: Callable[[], T]) -> T:
        """``work()`` run by the main process alone, its result (or its error) handed to every process.

        The others wait in the exchange; were the main process to fail without it, they would wait there for
        :data:`WAIT_LIMIT`. A failure is raised in every process: the main one re-raises its own exception, the
        others an :class:`~iqabench.errors.IQABenchError` naming it.
        """
        outcome: tuple[bool, Any] | None = None
        failure: BaseException | None = None
        if self.is_main:
            try:
                outcome = (True, work())
            except Exception as exc:
                failure, outcome = exc, (False, f"{type(exc).__name__}: {exc}")
        ok, value = self.broadcast(outcome)
        if failure is not None:
            raise failure
        if not ok:
            from iqabench.errors import IQABenchError

            raise IQABenchError(f"the main process failed: {value}")
        return value


def launched_processes() -> int:
    """How many processes the launcher started (its ``WORLD_SIZE``), 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@functools.cache
def processes() -> Processes:
    """The processes of this launch; accelerate sets up the process group when there are several."""
    if launched_processes() <= 1:
        return Processes(0, 1, lambda: None, lambda value: value, lambda value: [value])
    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    # without a GPU accelerate only sets up the processes (gloo) when told they run on CPUs
    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    state = PartialState(cpu=cpu)
    if state.num_processes != launched_processes():
        from iqabench.errors import IQABenchError

        raise IQABenchError(f"the launcher started {launched_processes()} processes but accelerate sees "
                            f"{state.num_processes}; launch with `accelerate launch --multi_gpu` or `torchrun`.")
    control = dist.new_group(backend="gloo", timeout=WAIT_LIMIT)
    atexit.register(_tear_down, state, os.getpid())

    def broadcast(value: Any) -> Any:
        box = [value]
        dist.broadcast_object_list(box, src=0, group=control)
        return box[0]

    def gather(value: Any) -> list[Any]:
        values: list[Any] = [None] * state.num_processes
        dist.all_gather_object(values, value, group=control)
        return values

    return Processes(state.process_index, state.num_processes, lambda: dist.barrier(group=control), broadcast, gather)


def _tear_down(state: Any, pid: int) -> None:
    """Destroy every process group of the launch (accelerate's default one and the control group), at exit.

    No barrier first: a process whose peer has died must still exit rather than wait for it, and every exchange
    of a command has finished before a process gets here. Only the process that created the groups tears them
    down (a forked child inherits the atexit hook, not the groups).
    """
    if os.getpid() == pid:
        state.destroy_process_group()


def process_device(device: str) -> str:
    """The device of this process: under a launch a CUDA device means the GPU the launcher gave this process."""
    if launched_processes() <= 1 or not str(device).startswith("cuda"):
        return device
    from accelerate import PartialState

    processes()  # the process group first, so every process creates it at the same point
    return str(PartialState().device)


def describe_process(device: str) -> dict[str, Any]:
    """What results record about one process: its index, machine and device."""
    return {"index": processes().index, "host": socket.gethostname(), "device": device}


def batches(count: int, batch_size: int) -> list[range]:
    """The batches a single process scores ``count`` images in: consecutive runs of ``batch_size`` indices."""
    return [range(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def share(items: Sequence[T], index: int, count: int) -> list[T]:
    """Part ``index`` of ``count`` consecutive, near-equal parts of ``items`` (sizes differ by at most one)."""
    if not 0 <= index < count:
        raise ValueError(f"part {index} of {count} does not exist")
    return list(items[len(items) * index // count: len(items) * (index + 1) // count])


def quiet_other_processes() -> None:
    """Only the main process prints progress and informational messages; the others print warnings and errors."""
    if processes().is_main:
        return
    import logging

    from iqabench import progress

    progress.set_enabled(False)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
