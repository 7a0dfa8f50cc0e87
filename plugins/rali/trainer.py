"""The ``rali`` trainer: contrastive alignment, compression, score definition (paper section 4).

1. Reasoning texts: one JSONL of (image, seed, text, score) lines, read with
   :func:`iqabench.reasoning.texts.read_texts`. Without a ``texts`` file the trainer
   writes one with the reasoner named by ``reasoner`` (Q-Insight in the paper)
   through :func:`iqabench.reasoning.describe.describe`, cached in the output folder; the
   reasoner runs on the trainer's device and samples when there are several seeds.
2. Contrastive alignment: the vision tower is fine-tuned with CLIP's InfoNCE
   loss against the frozen text encoder (text embeddings are computed once).
   Each step pairs every image with one of its texts, drawn among its seeds
   (seed augmentation) or always the first seed's. Identical texts of
   different images in a batch are all positives of each other (soft
   targets), so a describer that phrases two images alike is not contradicted.
   With ``align_backbone: false`` only the parameters the encoder pair adds
   to its pretrained tower (the offline pair's projection) are aligned: the
   backbone's features are computed once per image and reused by every
   epoch and by compression, so alignment costs one forward pass.
3. Compression: the aligned encoder embeds the training images; PCA D -> M;
   bucketed k-means (:mod:`bucketed_kmeans`) gives K prototypes and scores.
4. Score definition: prototypes and their scores (and tau if ``learn_tau``)
   are fitted by mean squared error between predicted and labelled scores,
   with the encoder and PCA frozen as in the official model.

Alignment, encoding and score definition run on the ``device`` the runner
passes; PCA and k-means run on the CPU (scikit-learn, numpy).

At the paper's scale (CLIP ViT-L/14-336) alignment runs by default, on a CUDA
device, under bfloat16 autocast with gradient checkpointing of the vision
tower (``precision`` and ``gradient_checkpointing``, both ``"auto"``); on the
CPU it runs in float32 without checkpointing. Under ``accelerate launch`` with
several processes, each process aligns its share of every batch on its own
GPU (DistributedDataParallel through accelerate) and the InfoNCE loss is taken
over the whole batch, image features gathered from every process with their
gradients, so the result is that of one process with the same batch; the main
process then compresses, fits the scores and saves. docs/rali.md gives the
peak memory of one alignment step at the paper's settings.

Reasoning texts longer than the text tower's window (CLIP: 77 tokens) are cut
by its tokenizer, as CLIP was trained; the trainer counts them, logs the count
and records it in the checkpoint's provenance.

Defaults and their sources: ``align_lr`` 1e-5, ``score_lr`` 3e-2, ``pca_dim``
512, ``num_buckets`` 240, ``num_prototypes`` 250, the CLIP ViT-L/14-336
backbone and seeds-as-augmentation are the paper's (sections 4, 5.1);
``tau`` 0.07 and a fixed tau are the official inference code's defaults;
epochs, batch sizes, AdamW/Adam and MSE are this implementation's choices.
"""

from __future__ import annotations

import hashlib
import logging
import random
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from iqabench.api import (
    IQABenchError,
    ReasoningText,
    Trainer,
    TrainingSet,
    accepted_options,
    check_options,
    iterate_batches,
    progress_bar,
    read_texts,
)
from iqabench_plugins.rali.bucketed_kmeans import bucketed_kmeans
from iqabench_plugins.rali.checkpoint import save_checkpoint
from iqabench_plugins.rali.encoders import (
    ENCODER_KINDS,
    ImageTextEncoder,
    build_encoder,
)
from iqabench_plugins.rali.head import PrototypeHead

#: the PCA's per-feature scale: "none" (sklearn's PCA, scale 1: the paper's "PCA") or "std" (features divided by
#: their standard deviation first: the official loader's branch for a pca.pkl that has ``var_``)
PCA_SCALES = ("none", "std")

log = logging.getLogger(__name__)

TEXTS_CACHE = "texts.jsonl"
PRECISIONS = ("auto", "bf16", "fp32")


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: bfloat16 autocast on a CUDA device that supports it, float32 elsewhere."""
    if precision not in PRECISIONS:
        raise IQABenchError(f"rali trainer: precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.")
    if precision != "auto":
        return precision
    on_cuda = str(device).startswith("cuda") and torch.cuda.is_available()
    return "bf16" if on_cuda and torch.cuda.is_bf16_supported() else "fp32"


def resolve_gradient_checkpointing(setting: bool | str, device: str) -> bool:
    """``auto``: on for CUDA devices (ViT-L/14-336 at batch 32 does not fit a 24 GB card without it), off on the CPU."""
    if setting == "auto":
        return str(device).startswith("cuda")
    if not isinstance(setting, bool):
        raise IQABenchError(f"rali trainer: gradient_checkpointing must be true, false or auto, not {setting!r}.")
    return setting


class RALITrainer(Trainer):
    """Trains a RALI checkpoint from image-text-score triplets; every Table 4 ablation is a switch."""

    name = "rali"
    model = "rali"
    #: alignment runs under accelerate in every process (DDP); describing and fitting run on the main one
    uses_all_processes = True

    def __init__(
        self,
        *,
        texts: str | None = None,
        reasoner: str = "q-insight",
        reasoner_options: dict[str, Any] | None = None,
        seeds: Sequence[int] = (0, 1, 2),
        encoder: str = "hf-clip",
        backbone: str | None = None,
        pretrained: str | None = None,
        align_lr: float = 1e-5,
        projection_lr: float = 1e-3,
        align_epochs: int = 3,
        align_batch_size: int = 32,
        pca_dim: int = 512,
        pca_scale: str = "none",
        num_buckets: int = 240,
        num_prototypes: int = 250,
        score_lr: float = 3e-2,
        score_epochs: int = 50,
        score_batch_size: int = 64,
        tau: float = 0.07,
        learn_tau: bool = False,
        contrastive_alignment: bool = True,
        pca: bool = True,
        bucketed: bool = True,
        seed_augmentation: bool = True,
        score_definition: bool = True,
        batch_size: int = 32,
        num_workers: int = 0,
        precision: str = "auto",
        gradient_checkpointing: bool | str = "auto",
        align_backbone: bool = True,
    ) -> None:
        if encoder not in ENCODER_KINDS:
            raise IQABenchError(f"rali trainer: encoder must be one of {', '.join(ENCODER_KINDS)}, not {encoder!r}.")
        self.texts = texts
        self.reasoner = reasoner
        self.reasoner_options = dict(reasoner_options or {})
        self.seeds = tuple(int(s) for s in seeds)
        self.encoder = encoder
        self.backbone = backbone
        self.pretrained = pretrained
        self.align_lr = align_lr
        self.projection_lr = projection_lr
        self.align_epochs = align_epochs
        self.align_batch_size = align_batch_size
        if pca_scale not in PCA_SCALES:
            raise IQABenchError(f"pca_scale {pca_scale!r} is not one of {', '.join(PCA_SCALES)}.")
        self.pca_scale = pca_scale
        self.pca_dim = pca_dim
        self.num_buckets = num_buckets
        self.num_prototypes = num_prototypes
        self.score_lr = score_lr
        self.score_epochs = score_epochs
        self.score_batch_size = score_batch_size
        self.tau = tau
        self.learn_tau = learn_tau
        self.contrastive_alignment = contrastive_alignment
        self.pca = pca
        self.bucketed = bucketed
        self.seed_augmentation = seed_augmentation
        self.score_definition = score_definition
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.precision = precision
        self.gradient_checkpointing = gradient_checkpointing
        self.align_backbone = align_backbone

    # ----------------------------------------------------------------- pipeline

    def train(self, model_options: dict[str, Any], datasets: Sequence[TrainingSet], out_dir: Path, *,
              seed: int = 0, device: str = "cpu") -> dict[str, Any]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not datasets or not any(d.records for d in datasets):
            raise IQABenchError("rali trainer: no training records; the suite's train datasets are empty.")
        from accelerate import PartialState

        state = PartialState()
        if state.num_processes > 1:  # under accelerate launch every process trains on its own device
            device = str(state.device)
        precision = resolve_precision(self.precision, device)
        checkpointing = resolve_gradient_checkpointing(self.gradient_checkpointing, device)
        torch.manual_seed(seed)
        notes: list[str] = []
        # the full pair is kept (text tower lazily for the offline pair) so the saved encoder can be re-aligned
        encoder = build_encoder(self.encoder, self.backbone, self.pretrained, with_text=True, seed=seed).to(device)
        if not self.align_backbone and not encoder.added_parameters():
            raise IQABenchError(
                f"rali trainer: align_backbone: false aligns only the parameters an encoder pair adds to its "
                f"pretrained tower, and the {self.encoder} pair adds none; leave align_backbone at true."
            )
        texts_info: dict[str, Any] = {"used": False}
        alignment: dict[str, Any] = {"ran": False}
        pairs: dict[Path, list[str]] = {}
        if self.contrastive_alignment:
            texts_path = self._texts_file(datasets, out_dir, device)
            pairs = match_texts(read_texts(texts_path), datasets)
            distinct = sorted({t for texts in pairs.values() for t in texts})
            truncated, window = count_truncated(encoder, distinct)
            texts_info = {"used": True, "file": str(texts_path), "sha256": _sha256(texts_path),
                          "images_with_text": len(pairs), "texts": sum(len(t) for t in pairs.values()),
                          "distinct_texts": len(distinct), "truncated": truncated, "token_window": window}
            if truncated:
                log.warning("rali trainer: %d of %d distinct reasoning texts exceed the text tower's %s-token window "
                            "and are cut to it (as CLIP was trained)", truncated, len(distinct), window)
        paths, labels = [], []
        for dataset in datasets:
            for record in dataset.records:
                paths.append(dataset.root / record.image)
                labels.append(record.mos)
        if not self.align_backbone:
            # the backbone stays as pretrained: its features are computed once, alignment trains the added
            # projection on them (main process only: it is cheap), and they are reused for compression
            if state.num_processes > 1:
                state.wait_for_everyone()
                if not state.is_main_process:
                    return {"checkpoint": str(out_dir)}
            base, kept = encode_images(encoder, paths, batch_size=self.batch_size, device=device,
                                       num_workers=self.num_workers, forward=encoder.backbone_features)
            if self.contrastive_alignment:
                alignment = {"ran": True, "tuned": "added parameters (the backbone stays as pretrained)",
                             "precision": "fp32", "processes": 1, "batch_size": self.align_batch_size}
                kept_paths = [paths[i] for i in kept]
                align_added(encoder, {path: pairs[path] for path in kept_paths if path in pairs},
                            dict(zip(kept_paths, base, strict=True)), lr=self.projection_lr, epochs=self.align_epochs,
                            batch_size=self.align_batch_size, seed_augmentation=self.seed_augmentation, seed=seed,
                            device=device)
            with torch.no_grad():
                features = torch.cat([encoder.project(chunk.to(device)).float().cpu()
                                      for chunk in base.split(self.batch_size)])
        else:
            if self.contrastive_alignment:
                if checkpointing and not enable_gradient_checkpointing(encoder):
                    notes.append(f"gradient checkpointing is not available for the {self.encoder} vision tower; "
                                 "alignment ran without it")
                    checkpointing = False
                alignment = {"ran": True, "tuned": "the whole vision side", "precision": precision,
                             "gradient_checkpointing": checkpointing, "processes": state.num_processes,
                             "batch_size": self.align_batch_size}
                align(encoder, pairs, lr=self.align_lr, projection_lr=self.projection_lr, epochs=self.align_epochs,
                      batch_size=self.align_batch_size, seed_augmentation=self.seed_augmentation, seed=seed,
                      device=device, num_workers=self.num_workers, precision=precision)
            if state.num_processes > 1:
                state.wait_for_everyone()
                if not state.is_main_process:  # the main process compresses, fits and saves
                    return {"checkpoint": str(out_dir)}
            features, kept = encode_images(encoder, paths, batch_size=self.batch_size, device=device,
                                           num_workers=self.num_workers)
        if len(kept) < len(paths):
            notes.append(f"{len(paths) - len(kept)} training images could not be read and were left out")
        labels_array = np.asarray(labels, dtype=np.float64)[kept]
        head = self.fit_head(features, labels_array, seed=seed, notes=notes, device=device).cpu()
        provenance = {
            "trainer": "rali",
            "options": self.config(),
            "model_options": dict(model_options),
            "seed": seed,
            "training_data": [{"dataset": d.name, "root": str(d.root), "records": len(d.records)} for d in datasets],
            "texts": texts_info,
            "alignment": alignment,
            "notes": notes,
        }
        for note in notes:
            log.warning("rali trainer: %s", note)
        encoder.cpu()
        save_checkpoint(out_dir, encoder, head, provenance)
        return {"checkpoint": str(out_dir)}

    def fit_head(self, features: torch.Tensor, labels: np.ndarray, *, seed: int = 0,
                 notes: list[str] | None = None, device: str = "cpu") -> PrototypeHead:
        """Compression (PCA, bucketed k-means, on the CPU) and score definition (on ``device``) on fixed features.

        The returned head lives on ``device``.
        """
        collected = notes is not None  # train() logs what it collects; a direct call gets a warning instead
        notes = notes if collected else []
        x = features.double().numpy()
        dim = x.shape[1]
        if self.pca:
            from sklearn.decomposition import PCA

            m = self.pca_dim
            if m > min(dim, len(x)):
                m = min(dim, len(x))
                notes.append(f"pca_dim {self.pca_dim} exceeds min(feature dim {dim}, samples {len(x)}); clamped to {m}")
                if not collected:
                    warnings.warn(f"rali: pca_dim {self.pca_dim} clamped to {m}", stacklevel=2)
            fitted = PCA(n_components=m, svd_solver="full", random_state=seed).fit(x)
            mean, components = fitted.mean_, fitted.components_
        else:  # the raw features, as in the official code's identity fallback
            mean, components = np.zeros(dim), np.eye(dim)
        scale = np.ones(dim)
        if self.pca and self.pca_scale == "std":  # the official loader's var_ branch: standardised features
            scale = np.sqrt(x.var(axis=0))
            scale[scale < 1e-10] = 1.0
            fitted = PCA(n_components=m, svd_solver="full", random_state=seed).fit(x / scale)
            mean, components = fitted.mean_ * scale, fitted.components_
        projected = ((x - mean) / scale) @ components.T
        clusters = bucketed_kmeans(projected, labels, num_buckets=self.num_buckets if self.bucketed else 1,
                                   num_clusters=self.num_prototypes, seed=seed)
        head = PrototypeHead(torch.as_tensor(mean), torch.as_tensor(scale), torch.as_tensor(components),
                             torch.as_tensor(clusters.centroids), torch.as_tensor(clusters.scores),
                             1.0 / self.tau, learn_tau=self.learn_tau).to(device)
        if self.score_definition:
            define_scores(head, features.float().to(device),
                          torch.as_tensor(labels, dtype=torch.float32, device=device),
                          lr=self.score_lr, epochs=self.score_epochs, batch_size=self.score_batch_size, seed=seed)
        return head

    def _texts_file(self, datasets: Sequence[TrainingSet], out_dir: Path, device: str) -> Path:
        if self.texts is not None:
            return Path(self.texts)
        from accelerate import PartialState

        from iqabench.api import ImageToDescribe, default_registry, describe

        state = PartialState()
        path = out_dir / TEXTS_CACHE
        if state.is_main_process:  # under accelerate launch the others wait for the main process's file
            reasoner_cls = default_registry().model(self.reasoner)
            reasoner = reasoner_cls(**reasoner_options(reasoner_cls, self.reasoner_options, self.seeds, device))
            for dataset in datasets:
                images = [ImageToDescribe(r.image, dataset.root / r.image, r.mos) for r in dataset.records]
                describe(reasoner, images, self.seeds, path, dataset=dataset.name, batch_size=self.batch_size,
                         num_workers=self.num_workers)
            del reasoner
        state.wait_for_everyone()
        return path


# --------------------------------------------------------------------------- steps


def reasoner_options(reasoner_cls: type, options: dict[str, Any], seeds: Sequence[int], device: str) -> dict[str, Any]:
    """The reasoner runs on the trainer's device and, with several seeds, samples.

    Greedy decoding (a reasoning model's benchmark default) would write the
    same text for every seed and void seed augmentation, so sampling is
    switched on unless ``options`` (the suite's ``reasoner_options``) says otherwise.
    """
    check_options(reasoner_cls, options, f"reasoner {reasoner_cls.name!r} (trainer option reasoner_options)")
    defaults: dict[str, Any] = {"device": device}
    if len(seeds) > 1 and "do_sample" in accepted_options(reasoner_cls):
        defaults["do_sample"] = True
    return {**defaults, **options}


def match_texts(texts: Sequence[ReasoningText], datasets: Sequence[TrainingSet]) -> dict[Path, list[str]]:
    """Texts per training image path, in seed order.

    A text names its image by the path relative to the dataset root; with
    several training datasets its ``dataset`` field must say which. Failed or
    empty texts are skipped.
    """
    index = {(d.name, r.image): d.root / r.image for d in datasets for r in d.records}
    by_image: dict[Path, list[tuple[int, str]]] = {}
    for text in texts:
        if text.error is not None or not text.text.strip():
            continue
        if text.dataset is None and len(datasets) > 1:
            raise IQABenchError(
                f"reasoning text for {text.image!r} names no dataset, but RALI trains on several "
                f"({', '.join(d.name for d in datasets)}); write the `dataset` field in the texts file."
            )
        path = index.get((text.dataset or datasets[0].name, text.image))
        if path is not None:
            by_image.setdefault(path, []).append((text.seed, text.text))
    if not by_image:
        raise IQABenchError(
            "no reasoning text matches a training image; texts name images by their path relative to the dataset "
            "root (as in the dataset's records), with the dataset's name in `dataset`."
        )
    return {path: [t for _, t in sorted(pairs, key=lambda p: p[0])] for path, pairs in by_image.items()}


def count_truncated(encoder: ImageTextEncoder, texts: Sequence[str]) -> tuple[int, int | None]:
    """How many ``texts`` the encoder's tokenizer cuts, and its window in tokens (start and end tokens included)."""
    if encoder.kind == "hf-clip":
        tokenizer, window = encoder.processor.tokenizer, int(encoder.config.text_config.max_position_embeddings)
        lengths = [len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]
    elif encoder.kind == "open-clip":
        tokenizer = encoder.tokenizer
        window = int(getattr(tokenizer, "context_length", 77))
        if not hasattr(tokenizer, "encode"):
            return 0, window
        lengths = [len(tokenizer.encode(text)) + 2 for text in texts]
    elif encoder.kind == "efficientnet-minilm":
        model = encoder._text()
        window = int(model.max_seq_length)
        lengths = [len(ids) for ids in model.tokenizer(list(texts), truncation=False)["input_ids"]]
    else:
        return 0, None
    return sum(length > window for length in lengths), window


def enable_gradient_checkpointing(encoder: ImageTextEncoder) -> bool:
    """Recompute the vision tower's blocks in the backward pass instead of storing their activations.

    transformers towers: the ``GradientCheckpointingLayer`` blocks (what
    ``PreTrainedModel.gradient_checkpointing_enable`` switches on); open_clip
    towers: their own ``set_grad_checkpointing``. Returns False for a tower
    with neither (EfficientNet-Lite0, a small convolutional net).
    """
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
    except ImportError:  # transformers before 4.52 has no such layers: no checkpointing for its towers
        layers = []
    else:
        layers = [m for m in encoder.modules() if isinstance(m, GradientCheckpointingLayer)]
    if layers:
        checkpoint = partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
        for layer in layers:
            layer.gradient_checkpointing = True
            layer._gradient_checkpointing_func = checkpoint
        return True
    visual = getattr(encoder, "visual", None)
    if visual is not None and hasattr(visual, "set_grad_checkpointing"):
        try:
            visual.set_grad_checkpointing(True)
        except (AssertionError, NotImplementedError):  # open_clip's ResNet towers do not support it
            return False
        return True
    return False


class _ImageTower(torch.nn.Module):
    """The encoder's image forward as a module's ``forward``, so DistributedDataParallel syncs its gradients."""

    def __init__(self, encoder: ImageTextEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode_image(pixels)


def alignment_optimizer(encoder: ImageTextEncoder, lr: float, projection_lr: float) -> torch.optim.Optimizer:
    """AdamW over the vision parameters, the rest frozen; parameters the pair adds from scratch at ``projection_lr``."""
    params = list(encoder.vision_parameters())
    for p in encoder.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    added = {id(p) for p in encoder.added_parameters()}
    return torch.optim.AdamW([
        {"params": [p for p in params if id(p) not in added], "lr": lr},
        {"params": [p for p in params if id(p) in added], "lr": projection_lr},
    ])


def gather_rows(local: torch.Tensor, *, with_grad: bool) -> torch.Tensor:
    """Rows of ``local`` from every process, in rank order (uneven counts allowed).

    With ``with_grad`` the gather is differentiable: the backward pass sends
    each process the gradient its rows received on every process.
    """
    import torch.distributed as dist

    world = dist.get_world_size()
    count = torch.tensor([local.shape[0]], device=local.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    longest = max(int(c.item()) for c in counts)
    padding = [0, 0] * (local.dim() - 1) + [0, longest - local.shape[0]]
    padded = F.pad(local, padding)
    if with_grad:
        from torch.distributed.nn.functional import all_gather

        parts = all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
    return torch.cat([part[: int(c.item())] for part, c in zip(parts, counts, strict=True)])


def contrastive_loss(image_features: torch.Tensor, ids: torch.Tensor, text_emb: torch.Tensor,
                     logit_scale: float) -> torch.Tensor:
    """Symmetric InfoNCE of normalised image features against the texts ``ids`` name; equal ids are all positives."""
    images = F.normalize(image_features.float(), dim=-1)
    logits = logit_scale * images @ text_emb[ids].T
    same = (ids[:, None] == ids[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    return (torch.sum(-targets * F.log_softmax(logits, dim=1), dim=1).mean()
            + torch.sum(-targets * F.log_softmax(logits.T, dim=1), dim=1).mean()) / 2


def alignment_step(tower: torch.nn.Module, optimizer: torch.optim.Optimizer, pixels: torch.Tensor, ids: torch.Tensor,
                   text_emb: torch.Tensor, logit_scale: float, *, precision: str = "fp32",
                   distributed: bool = False) -> torch.Tensor:
    """One optimiser step of contrastive alignment on this process's images; returns the (detached) loss.

    Under bf16 the forward pass runs in ``torch.autocast`` (weights and
    optimiser state stay float32); the loss is computed in float32. With
    ``distributed`` the loss covers the images of every process.
    """
    # before the forward pass: last step's gradients are not held with its activations
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(pixels.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        features = tower(pixels)
    if distributed:
        features, ids = gather_rows(features, with_grad=True), gather_rows(ids, with_grad=False)
    loss = contrastive_loss(features, ids, text_emb, logit_scale)
    loss.backward()
    optimizer.step()
    return loss.detach()


def align(encoder: ImageTextEncoder, pairs: dict[Path, list[str]], *, lr: float, epochs: int, batch_size: int,
          seed_augmentation: bool, seed: int, device: str, num_workers: int = 0, projection_lr: float = 1e-3,
          precision: str = "fp32") -> None:
    """Fine-tune the vision side with InfoNCE against frozen text embeddings.

    Parameters the encoder pair adds from scratch (the offline pair's projection)
    learn at ``projection_lr``: at the pretrained tower's 1e-5 they would barely move.
    ``batch_size`` is the whole batch; under ``accelerate launch`` every process
    takes every n-th of its images, and a last batch smaller than the number of
    processes is dropped.
    """
    from accelerate import Accelerator, PartialState

    state = PartialState()
    world, rank = state.num_processes, state.process_index
    paths = sorted(pairs)
    distinct = sorted({t for texts in pairs.values() for t in texts})
    text_id = {t: i for i, t in enumerate(distinct)}
    with torch.no_grad():
        text_emb = torch.cat([F.normalize(encoder.encode_text(distinct[i:i + 64]).float(), dim=-1)
                              for i in range(0, len(distinct), 64)])
    logit_scale = encoder.contrastive_logit_scale
    optimizer = alignment_optimizer(encoder, lr, projection_lr)
    tower: torch.nn.Module = _ImageTower(encoder)
    if world > 1:
        tower = Accelerator().prepare_model(tower)
    rng = random.Random(seed)
    transform = encoder.image_transform()
    encoder.train()
    per_epoch = len(range(0, len(paths), batch_size))
    bar = progress_bar(total=epochs * per_epoch, desc="rali: contrastive alignment", unit="batch",
                       enabled=rank == 0)
    for _ in range(epochs):
        order = paths[:]
        rng.shuffle(order)
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        # every process draws the same texts for the whole batch, then keeps its share: every world-th image
        ids = [[text_id[rng.choice(pairs[path]) if seed_augmentation else pairs[path][0]] for path in batch]
               for batch in batches]
        # a batch too small for negatives (or for an image per process) is dropped, with its texts
        kept = [i for i, batch in enumerate(batches) if len(batch) >= max(2, world)]
        batches, ids = [batches[i] for i in kept], [ids[i] for i in kept]
        shares = [list(range(rank, len(batch), world)) for batch in batches]
        mine = [batch[i] for batch, share in zip(batches, shares, strict=True) for i in share]
        loaded = (item for chunk in iterate_batches(mine, transform, batch_size=max(map(len, shares), default=1),
                                                    num_workers=num_workers) for item in chunk)
        for batch, batch_ids, share in zip(batches, ids, shares, strict=True):
            items = [next(loaded) for _ in share]
            failed = [(i, item) for i, item in zip(share, items, strict=True) if item.error is not None]
            if failed and world > 1:
                raise IQABenchError(f"training image {batch[failed[0][0]]} cannot be read ({failed[0][1].error}); "
                                    "remove it from the training set.")
            ready = [(i, item) for i, item in zip(share, items, strict=True) if item.error is None]
            if len(ready) < 2 and world == 1:
                continue
            pixels = torch.stack([item.item for _, item in ready]).to(device)
            local_ids = torch.tensor([batch_ids[i] for i, _ in ready], device=device)
            alignment_step(tower, optimizer, pixels, local_ids, text_emb.to(device), logit_scale,
                           precision=precision, distributed=world > 1)
            bar.update(1)
        bar.update(per_epoch - len(batches))  # batches too small to hold negatives were skipped
    bar.close()
    encoder.eval()
    for p in encoder.vision_parameters():
        p.requires_grad_(False)


def align_added(encoder: ImageTextEncoder, pairs: dict[Path, list[str]], features: dict[Path, torch.Tensor], *,
                lr: float, epochs: int, batch_size: int, seed_augmentation: bool, seed: int, device: str) -> None:
    """Contrastive alignment of the parameters the pair adds (:meth:`ImageTextEncoder.project`) on fixed
    backbone ``features``: the loss, batches and texts of :func:`align` in one process, without a pass through
    the backbone per step.
    """
    paths = sorted(pairs)
    distinct = sorted({t for texts in pairs.values() for t in texts})
    text_id = {t: i for i, t in enumerate(distinct)}
    with torch.no_grad():
        text_emb = torch.cat([F.normalize(encoder.encode_text(distinct[i:i + 64]).float(), dim=-1)
                              for i in range(0, len(distinct), 64)]).to(device)
    params = encoder.added_parameters()
    for p in encoder.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr)
    rng = random.Random(seed)
    bar = progress_bar(total=epochs, desc="rali: contrastive alignment", unit="epoch")
    for _ in range(epochs):
        order = paths[:]
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            ids = [text_id[rng.choice(pairs[path]) if seed_augmentation else pairs[path][0]] for path in batch]
            if len(batch) < 2:  # no negatives
                continue
            optimizer.zero_grad(set_to_none=True)
            projected = encoder.project(torch.stack([features[path] for path in batch]).to(device))
            loss = contrastive_loss(projected, torch.tensor(ids, device=device), text_emb,
                                    encoder.contrastive_logit_scale)
            loss.backward()
            optimizer.step()
        bar.update(1)
    bar.close()
    for p in params:
        p.requires_grad_(False)


@torch.no_grad()
def encode_images(encoder: ImageTextEncoder, paths: Sequence[Path], *, batch_size: int, device: str,
                  num_workers: int = 0, forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  ) -> tuple[torch.Tensor, list[int]]:
    """Features (``forward``, default the encoder's image features) of the readable images, and their indices."""
    encoder.eval()
    forward = forward or encoder.encode_image
    chunks, kept = [], []
    bar = progress_bar(total=len(paths), desc="rali: image features", unit="img")
    for batch in iterate_batches(paths, encoder.image_transform(), batch_size=batch_size, num_workers=num_workers):
        ready = [item for item in batch if item.error is None]
        if ready:
            chunks.append(forward(torch.stack([i.item for i in ready]).to(device)).float().cpu())
            kept.extend(item.index for item in ready)
        bar.update(len(batch))
    bar.close()
    if not chunks:
        raise IQABenchError("rali trainer: none of the training images could be read.")
    return torch.cat(chunks), kept


def define_scores(head: PrototypeHead, features: torch.Tensor, labels: torch.Tensor, *, lr: float, epochs: int,
                  batch_size: int, seed: int) -> None:
    """Fit prototypes and their scores (and tau when learnable) to the labels by MSE, on the head's device.

    The batch order comes from a CPU generator, so it is the same on every device.
    """
    params = [p for p in head.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    bar = progress_bar(total=epochs, desc="rali: score definition", unit="epoch")
    for _ in range(epochs):
        for batch in torch.randperm(len(features), generator=generator).to(features.device).split(batch_size):
            loss = F.mse_loss(head(features[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        bar.update(1)
    bar.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
