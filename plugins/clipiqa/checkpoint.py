"""The CLIP-IQA+ checkpoint folder: learned context vectors plus what they were learned on.

CLIP itself stays frozen, so a checkpoint holds only the context
(``context.safetensors``, one tensor of shape (n_ctx, width)) and
``clipiqa_plus.json``: the CLIP model and weights it belongs to, the class
phrases, the settings that shaped the image features during training
(positional embedding, resize), the target the context was fitted to and the
training (or conversion) provenance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from iqabench.api import CheckpointError

CONTEXT_FILE = "context.safetensors"
CONFIG_FILE = "clipiqa_plus.json"
FORMAT = "iqabench-clipiqa-plus-context"
#: 2: prompts tokenised as the release does ("... Good photo.."), positional embedding resized along the token
#: sequence; a version-1 context was learned with other prompts and does not carry over
FORMAT_VERSION = 2
REQUIRED_KEYS = ("model_name", "pretrained", "n_ctx", "class_names", "pos_embedding")


def save_context(out_dir: str | Path, context: torch.Tensor, config: dict[str, Any]) -> Path:
    """Write the context and its config into ``out_dir``; return the folder."""
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ValueError(f"checkpoint config lacks {missing}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({"context": context.detach().float().cpu().contiguous()}, str(out_dir / CONTEXT_FILE))
    record = {"format": FORMAT, "version": FORMAT_VERSION, **config}
    (out_dir / CONFIG_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
    return out_dir


def load_context(checkpoint: str | Path) -> tuple[torch.Tensor, dict[str, Any]]:
    """Read a folder written by :func:`save_context` (the ``coop`` trainer)."""
    folder = Path(checkpoint)
    hint = "train one with the `coop` trainer (the suite's train step), then pass its folder as checkpoint=..."
    if not folder.is_dir():
        raise CheckpointError(f"clip-iqa+ checkpoint folder not found: {folder}; {hint}")
    missing = [name for name in (CONTEXT_FILE, CONFIG_FILE) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a clip-iqa+ checkpoint (missing {', '.join(missing)}); {hint}")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not valid JSON ({exc}); retrain the checkpoint.") from None
    if config.get("format") != FORMAT or config.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{folder} holds format {config.get('format')!r} v{config.get('version')}, expected {FORMAT!r} "
            f"v{FORMAT_VERSION}; retrain it with this version of iqabench."
        )
    absent = [key for key in REQUIRED_KEYS if key not in config]
    if absent:
        raise CheckpointError(f"{folder / CONFIG_FILE} lacks {', '.join(absent)}; retrain the checkpoint.")
    tensors = load_file(str(folder / CONTEXT_FILE))
    context = tensors.get("context")
    if context is None or context.ndim != 2 or context.shape[0] != config["n_ctx"]:
        raise CheckpointError(
            f"{folder / CONTEXT_FILE} does not hold a ({config['n_ctx']}, width) 'context' tensor; "
            "retrain the checkpoint."
        )
    return context, config
