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

As in the official loader (``ClipScorer``: ``load_state_dict(strict=True)``),
``ckpt.pt`` must hold the whole fine-tuned CLIP (``clip.*``) and the five
``scorer.*`` tensors; they override ``best/``'s weights and the pickle's and
basis file's values, and the PCA mean exists only in ``pca.pkl``. A ``ckpt.pt``
that lacks any of them is refused with the list of what is missing, as the
official loader refuses it, unless ``partial_checkpoint=True`` explicitly asks
to take the missing parts from ``best/``, ``pca.pkl`` and ``basis.npz`` (the
parts and where each came from are recorded).

Reading ``pca.pkl`` means unpickling, so it needs ``trust_pickle=True``;
``ckpt.pt`` is read with ``torch.load(weights_only=True)`` and fully unpickled
only when that fails and ``trust_pickle=True``. A file that is not what it
should be is a :class:`CheckpointError`, never a traceback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from iqabench.api import CheckpointError
from iqabench_plugins.rali.encoders import (
    HFClipEncoder,
    ImageTextEncoder,
    load_clip_model,
    load_saved_encoder,
)
from iqabench_plugins.rali.head import HEAD_TENSORS, PrototypeHead

FORMAT = "iqabench-rali"
FORMAT_VERSION = 1
IQABENCH_FILES = ("config.json", "head.safetensors", "encoder/")
OFFICIAL_FILES = ("best/", "ckpt.pt", "pca.pkl", "basis.npz")
#: the official code's default temperature (CLIP_IQA_Proto, tau=0.07) when ckpt.pt holds none
OFFICIAL_DEFAULT_TAU = 0.07
#: the scorer tensors ckpt.pt holds (PrototypeScorer's parameters; its PCA mean is not one)
SCORER_KEYS = ("pca_scale", "pca_components", "prototypes", "proto_scores", "logit_scale")
#: how to convert once, for messages
CONVERT_HINT = "`iqabench convert rali-official {folder} OUT --trust-pickle`"


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


def load_checkpoint(folder: str | Path, *, trust_pickle: bool = False,
                    partial_checkpoint: bool = False) -> LoadedCheckpoint:
    folder = Path(folder)
    layout = detect_layout(folder)
    if layout == "official":
        official = read_official(folder, trust_pickle=trust_pickle, partial_checkpoint=partial_checkpoint)
        config = {"encoder": official.encoder.spec(), "source": "official release", "parts": official.parts}
        return LoadedCheckpoint(official.encoder, official.head, layout, config)
    config = json.loads((folder / "config.json").read_text())
    encoder = _damage_is_one_error(folder / "encoder", lambda: load_saved_encoder(
        folder / "encoder", config.get("encoder") or {}, with_text=False))
    tensors = _damage_is_one_error(folder / "head.safetensors", lambda: load_file(str(folder / "head.safetensors")))
    missing = [name for name in HEAD_TENSORS if name not in tensors]
    if missing:
        raise CheckpointError(f"{folder / 'head.safetensors'} lacks {', '.join(missing)}; it is not a RALI head.")
    try:
        head = PrototypeHead.from_tensors(tensors)
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{folder / 'head.safetensors'}: the head tensors do not fit together ({exc}); the "
                              "checkpoint is damaged: train or convert it again.") from None
    if head.feature_dim != encoder.feature_dim:
        raise CheckpointError(
            f"{folder}: the head expects {head.feature_dim}-d features but the encoder in encoder/ gives "
            f"{encoder.feature_dim}-d ones; head.safetensors and encoder/ come from different checkpoints."
        )
    return LoadedCheckpoint(encoder, head, layout, config)


def _damage_is_one_error(path: Path, load: Callable[[], Any]) -> Any:
    """``load()``, with whatever a cut or foreign file makes the loading library raise turned into one clear
    :class:`CheckpointError` naming ``path``."""
    try:
        return load()
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors, transformers and torch each raise their own kinds
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise CheckpointError(f"{path} cannot be loaded ({type(exc).__name__}: {first}); the checkpoint is cut or "
                              "damaged: copy, train or convert it again.") from None


# --------------------------------------------------------------------------- official release


@dataclass
class OfficialRelease:
    encoder: HFClipEncoder
    head: PrototypeHead
    #: where each part came from: "ckpt.pt", "best/", "pca.pkl", "basis.npz" or a default
    parts: dict[str, str]


def _load_ckpt_state(path: Path, trust_pickle: bool) -> dict[str, torch.Tensor]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not trust_pickle:
            raise CheckpointError(
                f"{path} cannot be read with torch.load(weights_only=True) ({_weights_only_reason(exc)}); reading it "
                "needs full unpickling, which can run arbitrary code. "
                "If you trust the file, pass -o trust_pickle=true, or convert the release once into a pickle-free "
                f"checkpoint ({CONVERT_HINT.format(folder=path.parent)}, which unpickles it once) and score that."
            ) from None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # not a torch file at all: truncated, another format, garbage
            raise CheckpointError(
                f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); "
                "expected the official RALI ckpt.pt (a dict with a state_dict)."
            ) from None
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state_dict of tensors; expected the official RALI ckpt.pt.")
    return state


def _weights_only_reason(exc: Exception) -> str:
    """The telling line of torch's long weights_only refusal (the unsupported global), else the exception type."""
    for line in str(exc).splitlines():
        if "Unsupported global" in line or "Unsupported operand" in line:
            return line.strip().split(". ")[0]
    return type(exc).__name__


def pca_scale_kind(scale: torch.Tensor) -> str:
    """``"ones (plain PCA)"`` when every PCA scale is 1, else ``"per-feature (standardised PCA)"``."""
    return "ones (plain PCA)" if bool(torch.all(scale == 1)) else "per-feature (standardised PCA)"


def _load_pca_pickle(path: Path, trust_pickle: bool) -> Any:
    if not trust_pickle:
        raise CheckpointError(
            f"{path} is a joblib pickle, and unpickling can run arbitrary code. If you trust the official release, "
            "pass -o trust_pickle=true, or convert it once into a pickle-free checkpoint "
            f"({CONVERT_HINT.format(folder=path.parent)}, which unpickles it once) and use -o checkpoint=OUT."
        )
    import joblib

    try:
        pca = joblib.load(path)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a joblib pickle "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}); "
            "expected the official RALI pca.pkl (a fitted sklearn PCA)."
        ) from None
    if not hasattr(pca, "components_") or not hasattr(pca, "mean_"):
        raise CheckpointError(f"{path} holds a {type(pca).__name__}, not a fitted PCA (no mean_ / components_).")
    return pca


def _missing_parts(folder: Path, state: dict[str, torch.Tensor], clip_keys: set[str]) -> list[str]:
    """What the official strict loader would miss in ckpt.pt, and the PCA mean if pca.pkl is absent."""
    missing = []
    absent_clip = sorted(k for k in clip_keys if f"clip.{k}" not in state)
    if absent_clip:
        missing.append(f"{len(absent_clip)} of {len(clip_keys)} clip.* tensors (e.g. clip.{absent_clip[0]})")
    absent_scorer = [f"scorer.{k}" for k in SCORER_KEYS if f"scorer.{k}" not in state]
    if absent_scorer:
        missing.append(", ".join(absent_scorer))
    if not (folder / "pca.pkl").exists():
        missing.append("pca.pkl (the PCA mean exists only there)")
    return missing


def read_official(folder: Path, *, trust_pickle: bool, with_text: bool = False,
                  partial_checkpoint: bool = False) -> OfficialRelease:
    """Build the encoder and head exactly as the official ``ClipScorer`` does (see the module docstring)."""
    folder = Path(folder)
    ckpt = folder / "ckpt.pt"
    state = _load_ckpt_state(ckpt, trust_pickle)
    clip = load_clip_model(str(folder / "best"))
    own_keys = set(clip.state_dict())
    missing = _missing_parts(folder, state, own_keys)
    if missing and not partial_checkpoint:
        raise CheckpointError(
            f"{folder} is incomplete: missing {'; '.join(missing)}. The official loader (strict) refuses such a "
            "release: ckpt.pt must hold the fine-tuned CLIP and the scorer tensors. To score anyway with the CLIP of "
            "best/ and the values of pca.pkl / basis.npz in place of the missing ones, pass "
            "-o partial_checkpoint=true (the parts used are recorded)."
        )
    parts: dict[str, str] = {}
    prefix = len("clip.")
    clip_state = {k[prefix:]: v for k, v in state.items() if k.startswith("clip.") and k[prefix:] in own_keys}
    clip.load_state_dict(clip_state, strict=False)
    parts["clip"] = "ckpt.pt" if len(clip_state) == len(own_keys) else (
        f"ckpt.pt ({len(clip_state)} of {len(own_keys)} tensors), best/ (the rest)" if clip_state else "best/")
    encoder = HFClipEncoder.from_model(clip, str(folder / "best"), with_text=with_text)

    dim = encoder.feature_dim
    mean, scale, components = np.zeros(dim), np.ones(dim), np.eye(dim)
    parts.update(pca_mean="identity (no pca.pkl)", pca_scale="identity", pca_components="identity")
    if (folder / "pca.pkl").exists():
        pca = _load_pca_pickle(folder / "pca.pkl", trust_pickle)
        mean = np.asarray(pca.mean_, dtype=np.float64)
        components = np.asarray(pca.components_, dtype=np.float64)
        parts.update(pca_mean="pca.pkl", pca_components="pca.pkl", pca_scale="pca.pkl" if hasattr(pca, "var_") else "1")
        if hasattr(pca, "var_"):
            scale = np.sqrt(np.asarray(pca.var_, dtype=np.float64))
            scale[scale < 1e-10] = 1.0
    prototypes = scores = None
    if (folder / "basis.npz").exists():
        with np.load(folder / "basis.npz", allow_pickle=False) as basis:
            prototypes, scores = basis["vectors"], basis["scores"]
        parts.update(prototypes="basis.npz", proto_scores="basis.npz")
    defaults = {
        "pca_scale": torch.as_tensor(scale, dtype=torch.float32),
        "pca_components": torch.as_tensor(components, dtype=torch.float32),
        "prototypes": None if prototypes is None else torch.as_tensor(prototypes),
        "proto_scores": None if scores is None else torch.as_tensor(scores),
        "logit_scale": torch.tensor(1.0 / OFFICIAL_DEFAULT_TAU),
    }
    parts.setdefault("logit_scale", f"default (tau {OFFICIAL_DEFAULT_TAU})")
    tensors = {"pca_mean": torch.as_tensor(mean, dtype=torch.float32)}
    for key in SCORER_KEYS:
        if f"scorer.{key}" in state:
            tensors[key] = state[f"scorer.{key}"]
            parts[key] = "ckpt.pt"
        else:
            tensors[key] = defaults[key]
    if tensors["prototypes"] is None or tensors["proto_scores"] is None:
        raise CheckpointError(f"{folder}: neither ckpt.pt nor basis.npz holds the prototypes and their scores.")
    # what the authors' PCA did, read from the values the official scorer uses (ckpt.pt overrides pca.pkl):
    # all ones is a plain PCA (sklearn's PCA has no var_); per-feature values are standardised features
    parts["pca_scale_kind"] = pca_scale_kind(torch.as_tensor(tensors["pca_scale"]))
    if math.isclose(float(tensors["logit_scale"]), 0.0):
        raise CheckpointError(f"{ckpt}: scorer.logit_scale is 0, so tau = 1/logit_scale is undefined.")
    try:
        head = PrototypeHead.from_tensors({k: torch.as_tensor(v).float() for k, v in tensors.items()})
    except (ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: the head tensors do not fit together ({exc}).") from None
    if head.feature_dim != dim:
        raise CheckpointError(
            f"{folder}: the PCA expects {head.feature_dim}-d features but the CLIP in best/ gives {dim}-d ones."
        )
    return OfficialRelease(encoder, head, parts)
