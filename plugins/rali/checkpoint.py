"""RALI checkpoints: iqabench's pickle-free layout, and the official release read on explicit opt-in.

iqabench layout (what the trainer and ``iqabench convert rali-official`` write)::

    DIR/config.json        format, encoder spec, dims, tau, provenance
    DIR/head.safetensors   pca_mean, pca_scale, pca_components, prototypes, proto_scores, logit_scale
    DIR/encoder/           the vision side (an HF CLIP folder, open_clip or EfficientNet weights as safetensors)

Official release (ByteDance/Q-Insight on the hub, ``RALI/``)::

    DIR/best/       HF CLIP folder with its preprocessor config
    DIR/ckpt.pt     {"state_dict": {"clip.*", "scorer.pca_scale", "scorer.pca_components",
                     "scorer.prototypes", "scorer.proto_scores", "scorer.logit_scale"}}
    DIR/pca.pkl     joblib pickle: mean_ (the PCA mean), components_, var_ (scale = sqrt(var_))
    DIR/basis.npz   vectors, scores (initial prototypes; ckpt.pt's values win)

As in the official loader, ``ckpt.pt``'s values override the pickle's and the
basis file's, and its ``clip.*`` weights replace those in ``best/``; the PCA
mean exists only in ``pca.pkl``. Reading ``pca.pkl`` means unpickling, so it
needs ``trust_pickle=True``; ``ckpt.pt`` is tried with
``torch.load(weights_only=True)`` first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from iqabench_plugins.rali.encoders import (
    HFClipEncoder,
    ImageTextEncoder,
    load_saved_encoder,
)
from iqabench_plugins.rali.head import HEAD_TENSORS, PrototypeHead
from safetensors.torch import load_file, save_file

from iqabench.errors import CheckpointError

FORMAT = "iqabench-rali"
FORMAT_VERSION = 1
IQABENCH_FILES = ("config.json", "head.safetensors", "encoder/")
OFFICIAL_FILES = ("best/", "ckpt.pt", "pca.pkl", "basis.npz")
#: the official code's default temperature (CLIP_IQA_Proto, tau=0.07) when ckpt.pt holds none
OFFICIAL_DEFAULT_TAU = 0.07


@dataclass
class LoadedCheckpoint:
    encoder: ImageTextEncoder
    head: PrototypeHead
    layout: str
    config: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(out_dir: Path, encoder: ImageTextEncoder, head: PrototypeHead, provenance: dict[str, Any]) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = encoder.save(out_dir / "encoder")
    save_file(head.tensors(), str(out_dir / "head.safetensors"))
    config = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "encoder": spec,
        "feature_dim": head.feature_dim,
        "pca_dim": head.pca_dim,
        "num_prototypes": head.num_prototypes,
        "tau": head.tau,
        "provenance": provenance,
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))


def detect_layout(folder: Path) -> str:
    """``"iqabench"`` or ``"official"``; anything else is a :class:`CheckpointError` listing both layouts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(
            f"RALI checkpoint folder not found: {folder}. Pass -o checkpoint=DIR with an iqabench RALI checkpoint "
            f"({', '.join(IQABENCH_FILES)}) or the official release ({', '.join(OFFICIAL_FILES)})."
        )
    config = folder / "config.json"
    if config.exists():
        try:
            if json.loads(config.read_text()).get("format") == FORMAT:
                missing = [f for f in IQABENCH_FILES if not (folder / f.rstrip("/")).exists()]
                if missing:
                    raise CheckpointError(f"RALI checkpoint {folder} is incomplete: missing {', '.join(missing)}.")
                return "iqabench"
        except json.JSONDecodeError:
            pass
    present = [f for f in OFFICIAL_FILES if (folder / f.rstrip("/")).exists()]
    if present:
        missing = [f for f in ("best/", "ckpt.pt") if f not in present]
        if missing:
            raise CheckpointError(
                f"{folder} looks like the official RALI release but lacks {', '.join(missing)}; "
                f"the release holds {', '.join(OFFICIAL_FILES)} (ByteDance/Q-Insight on the hub, folder RALI/)."
            )
        return "official"
    raise CheckpointError(
        f"{folder} is not a RALI checkpoint. Expected either the iqabench layout ({', '.join(IQABENCH_FILES)}) "
        f"or the official release ({', '.join(OFFICIAL_FILES)})."
    )


def resolve_folder(checkpoint: str | Path, subfolder: str | None = None) -> Path:
    """A local folder as given; else a hub repository id (``owner/name``) fetched with huggingface_hub.

    Only ``subfolder`` is downloaded from the hub: the official release is
    ``checkpoint=ByteDance/Q-Insight, subfolder=RALI`` in a repository that also
    holds Q-Insight's 7B weights.
    """
    path = Path(checkpoint).expanduser()
    name = str(checkpoint)
    if path.exists() or name.count("/") != 1 or name.startswith((".", "/", "~")):
        return path / subfolder if subfolder else path
    from huggingface_hub import snapshot_download

    try:
        root = Path(snapshot_download(name, allow_patterns=[f"{subfolder}/*"] if subfolder else None))
    except Exception as exc:  # network, auth, offline mode, no such repository
        include = f" --include '{subfolder}/*'" if subfolder else ""
        raise CheckpointError(
            f"RALI checkpoint {name!r} is neither a local folder nor fetchable from the hub "
            f"({type(exc).__name__}: {exc}). Download it elsewhere with `huggingface-cli download {name}{include} "
            f"--local-dir DIR` and pass -o checkpoint=DIR{' -o subfolder=' + subfolder if subfolder else ''}."
        ) from None
    return root / subfolder if subfolder else root


def load_checkpoint(folder: str | Path, *, trust_pickle: bool = False) -> LoadedCheckpoint:
    folder = Path(folder)
    layout = detect_layout(folder)
    if layout == "official":
        encoder, head = read_official(folder, trust_pickle=trust_pickle, with_text=False)
        return LoadedCheckpoint(encoder, head, layout, {"encoder": encoder.spec(), "source": "official release"})
    config = json.loads((folder / "config.json").read_text())
    encoder = load_saved_encoder(folder / "encoder", config["encoder"], with_text=False)
    tensors = load_file(str(folder / "head.safetensors"))
    missing = [name for name in HEAD_TENSORS if name not in tensors]
    if missing:
        raise CheckpointError(f"{folder / 'head.safetensors'} lacks {', '.join(missing)}; it is not a RALI head.")
    return LoadedCheckpoint(encoder, PrototypeHead.from_tensors(tensors), layout, config)


# --------------------------------------------------------------------------- official release


def _load_ckpt_state(path: Path, trust_pickle: bool) -> dict[str, torch.Tensor]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not trust_pickle:
            raise CheckpointError(
                f"{path} cannot be read with torch.load(weights_only=True) ({type(exc).__name__}); reading it needs "
                "full unpickling, which can run arbitrary code. If you trust the file, pass -o trust_pickle=true, "
                "or convert it once: `iqabench convert rali-official SRC OUT`."
            ) from None
        payload = torch.load(path, map_location="cpu", weights_only=False)
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state_dict; expected the official RALI ckpt.pt.")
    return state


def _load_pca_pickle(path: Path, trust_pickle: bool) -> Any:
    if not trust_pickle:
        raise CheckpointError(
            f"{path} is a joblib pickle, and unpickling can run arbitrary code. If you trust the official release, "
            "pass -o trust_pickle=true, or convert it once into a pickle-free checkpoint: "
            f"`iqabench convert rali-official {path.parent} OUT` and use -o checkpoint=OUT."
        )
    import joblib

    return joblib.load(path)


def read_official(folder: Path, *, trust_pickle: bool, with_text: bool = False) -> tuple[HFClipEncoder, PrototypeHead]:
    """Build the encoder and head exactly as the official ``ClipScorer`` does."""
    folder = Path(folder)
    state = _load_ckpt_state(folder / "ckpt.pt", trust_pickle)
    encoder = HFClipEncoder.from_pretrained(str(folder / "best"), with_text=with_text)
    clip_state = {k[len("clip."):]: v for k, v in state.items() if k.startswith("clip.")}
    if clip_state:
        own = {f"vision_model.{k}": v for k, v in encoder.vision_model.state_dict().items()}
        own.update({f"visual_projection.{k}": v for k, v in encoder.visual_projection.state_dict().items()})
        wanted = {k: v for k, v in clip_state.items() if k in own}
        absent = sorted(set(own) - set(wanted))
        if absent:
            raise CheckpointError(f"{folder / 'ckpt.pt'}: clip.* weights lack {absent[:3]}...; not the RALI release?")
        encoder.vision_model.load_state_dict({k[len("vision_model."):]: v for k, v in wanted.items()
                                              if k.startswith("vision_model.")})
        encoder.visual_projection.load_state_dict({k[len("visual_projection."):]: v for k, v in wanted.items()
                                                   if k.startswith("visual_projection.")})
        if with_text:
            encoder.text_model.load_state_dict({k[len("text_model."):]: v for k, v in clip_state.items()
                                                if k.startswith("text_model.")})
            encoder.text_projection.load_state_dict({k[len("text_projection."):]: v for k, v in clip_state.items()
                                                     if k.startswith("text_projection.")})
            if "logit_scale" in clip_state:
                encoder.contrastive_logit_scale = float(clip_state["logit_scale"].exp())
    dim = encoder.feature_dim
    mean, scale, components = np.zeros(dim), np.ones(dim), np.eye(dim)
    if (folder / "pca.pkl").exists():
        pca = _load_pca_pickle(folder / "pca.pkl", trust_pickle)
        mean = np.asarray(getattr(pca, "mean_", mean), dtype=np.float64)
        if hasattr(pca, "var_"):
            scale = np.sqrt(np.asarray(pca.var_, dtype=np.float64))
            scale[scale < 1e-10] = 1.0
        components = np.asarray(getattr(pca, "components_", components), dtype=np.float64)
    prototypes = scores = None
    if (folder / "basis.npz").exists():
        with np.load(folder / "basis.npz", allow_pickle=False) as basis:
            prototypes, scores = basis["vectors"], basis["scores"]
    tensors = {
        "pca_mean": torch.as_tensor(mean, dtype=torch.float32),
        "pca_scale": state.get("scorer.pca_scale", torch.as_tensor(scale, dtype=torch.float32)),
        "pca_components": state.get("scorer.pca_components", torch.as_tensor(components, dtype=torch.float32)),
        "prototypes": state.get("scorer.prototypes", None if prototypes is None else torch.as_tensor(prototypes)),
        "proto_scores": state.get("scorer.proto_scores", None if scores is None else torch.as_tensor(scores)),
        "logit_scale": state.get("scorer.logit_scale", torch.tensor(1.0 / OFFICIAL_DEFAULT_TAU)),
    }
    if tensors["prototypes"] is None or tensors["proto_scores"] is None:
        raise CheckpointError(f"{folder}: neither ckpt.pt nor basis.npz holds the prototypes and their scores.")
    if math.isclose(float(tensors["logit_scale"]), 0.0):
        raise CheckpointError(f"{folder / 'ckpt.pt'}: scorer.logit_scale is 0, so tau = 1/logit_scale is undefined.")
    return encoder, PrototypeHead.from_tensors({k: torch.as_tensor(v).float() for k, v in tensors.items()})
