"""Holding a file or folder for one process at a time, with the holder named to whoever else tries.

An OS file lock (``flock``, through the ``filelock`` package): the kernel
releases it when its process dies, however it dies, so a lock is never left
stale. A note beside the lock names the holder (process, machine, start,
command) for the refusal message. ``iqabench run`` holds its output folder this
way, ``iqabench score --output`` its output file.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from iqabench.files import atomic_write_json


@contextmanager
def held(lock_path: Path, note_path: Path, command: str, refusal: Callable[[str], Exception]) -> Iterator[None]:
    """Hold ``lock_path`` for the ``with`` block; if another process holds it, raise ``refusal(who holds it)``."""
    from filelock import FileLock, Timeout

    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:
            holder = json.loads(note_path.read_text())
            who = (f"process {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
                   f" ({holder.get('command') or 'iqabench'})")
        except (OSError, ValueError):
            who = "another process"
        raise refusal(who) from None
    try:
        atomic_write_json(note_path, {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                      "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        yield
    finally:
        note_path.unlink(missing_ok=True)
        lock.release()
