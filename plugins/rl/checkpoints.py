"""What a trainer checks about its base checkpoint, and what it writes beside its own.

Checking the architecture before training turns "wrong folder" into a one-line
error instead of a crash minutes into the first rollout. Every checkpoint the
trainers write carries ``iqabench_provenance.json``: the trainer's settings,
the datasets and their counts, the seed, the base checkpoint and the versions
of the libraries that produced it.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iqabench.api import CheckpointError, TrainingSet, atomic_write_text, package_versions

#: the base model of Q-Insight, VisualQuality-R1 and RACT (paper, section 5.1)
DEFAULT_BASE_CHECKPOINT = "Qwen/Qwen2.5-VL-7B-Instruct"
#: ``config.json`` model types of the Qwen2.5-VL family that the trainers' prompts and processors fit
QWEN_VL_MODEL_TYPES = ("qwen2_5_vl", "qwen2_vl")
PROVENANCE_FILE = "iqabench_provenance.json"
_VERSIONED = ("iqabench", "torch", "transformers", "trl", "peft", "accelerate", "deepspeed")


def check_qwen_vl_checkpoint(checkpoint: str) -> str:
    """Return the checkpoint's model type; raise unless it is a Qwen2.5-VL family model.

    A local folder is read directly; anything else is a hub id resolved through
    transformers (so it honours HF_HUB_OFFLINE and the local cache).
    """
    folder = Path(checkpoint).expanduser()
    if folder.is_dir():
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise CheckpointError(
                f"checkpoint folder {folder} has no config.json; point `checkpoint` at a folder written by "
                "save_pretrained (a Qwen2.5-VL model) or a hub id such as " + DEFAULT_BASE_CHECKPOINT + "."
            )
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    else:
        from transformers import AutoConfig

        try:
            model_type = AutoConfig.from_pretrained(checkpoint).model_type
        except OSError as exc:
            raise CheckpointError(
                f"cannot read the configuration of checkpoint {checkpoint!r}: it is neither a local folder nor a "
                f"reachable hub id ({exc}). Download it first or give a local folder."
            ) from None
    if model_type not in QWEN_VL_MODEL_TYPES:
        raise CheckpointError(
            f"checkpoint {checkpoint!r} is a {model_type!r} model, but this trainer trains the Qwen2.5-VL family "
            f"(model_type {' or '.join(repr(t) for t in QWEN_VL_MODEL_TYPES)}). Use a Qwen2.5-VL checkpoint such as "
            f"{DEFAULT_BASE_CHECKPOINT}."
        )
    return model_type


def datasets_provenance(datasets: Sequence[TrainingSet]) -> list[dict[str, Any]]:
    return [{"name": d.name, "root": str(d.root), "records": len(d.records)} for d in datasets]


def write_provenance(folder: Path, provenance: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    versions = {"python": platform.python_version(), **package_versions(_VERSIONED)}
    record = {**provenance, "versions": versions}
    atomic_write_text(folder / PROVENANCE_FILE, json.dumps(record, indent=2, default=str))
