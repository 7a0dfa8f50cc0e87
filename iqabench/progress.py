"""One progress display, owned by iqabench.

Long steps (scoring a test set, training, exporting texts) show one bar each
through :func:`bar`; ``--no-progress`` turns them all off, plugins' included.
The progress bars of dependencies (model loading, dataset mapping, shard
writing) are switched off by :func:`quiet_dependencies`, so a terminal shows
what iqabench is doing, not fifteen bars from libraries.
"""

from __future__ import annotations

import os
from typing import Any

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Show (or hide) every iqabench progress bar in this process."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


def bar(
    *, total: int | None = None, desc: str = "", unit: str = "it", enabled: bool | None = None, initial: int = 0
) -> Any:
    """A progress bar for ``total`` steps; hidden when progress is off or ``enabled`` is False.

    With ``unit="B"`` it counts bytes and shows them as kB, MB, GB (powers of 1000, as the Hub does).
    """
    from tqdm.auto import tqdm

    show = _enabled if enabled is None else (enabled and _enabled)
    scaled = {"unit_scale": True} if unit == "B" else {}
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not show, dynamic_ncols=True, **scaled)


def quiet_dependencies() -> None:
    """Turn off the progress bars of huggingface_hub, transformers and datasets (set before they are imported)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
