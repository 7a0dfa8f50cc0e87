"""The ``rali`` trainer: contrastive alignment, compression, score definition (paper section 4).

1. Reasoning texts: one JSONL of (image, seed, text, score) lines, read with
   :func:`iqabench.texts.read_texts`. Without a ``texts`` file the trainer
   writes one with the reasoner named by ``reasoner`` (Q-Insight in the paper)
   through :func:`iqabench.describe.describe`, cached in the output folder; the
   reasoner runs on the trainer's device and samples when there are several seeds.
2. Contrastive alignment: the vision tower is fine-tuned with CLIP's InfoNCE
   loss against the frozen text encoder (text embeddings are computed once).
   Each step pairs every image with one of its texts, drawn among its seeds
   (seed augmentation) or always the first seed's. Identical texts of
   different images in a batch are all positives of each other (soft
   targets), so a describer that phrases two images alike is not contradicted.
3. Compression: the aligned encoder embeds the training images; PCA D -> M;
   bucketed k-means (:mod:`bucketed_kmeans`) gives K prototypes and scores.
4. Score definition: prototypes and their scores (and tau if ``learn_tau``)
   are fitted by mean squared error between predicted and labelled scores,
   with the encoder and PCA frozen as in the official model.

Alignment, encoding and score definition run on the ``device`` the runner
passes; PCA and k-means run on the CPU (scikit-learn, numpy).

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from iqabench_plugins.rali.bucketed_kmeans import bucketed_kmeans
from iqabench_plugins.rali.checkpoint import save_checkpoint
from iqabench_plugins.rali.encoders import (
    ENCODER_KINDS,
    ImageTextEncoder,
    build_encoder,
)
from iqabench_plugins.rali.head import PrototypeHead
from torch.nn import functional as F

from iqabench.errors import IQABenchError
from iqabench.loader import iterate_batches
from iqabench.options import accepted_options, check_options
from iqabench.texts import ReasoningText, read_texts
from iqabench.trainer import Trainer, TrainingSet

log = logging.getLogger(__name__)

TEXTS_CACHE = "texts.jsonl"


class RALITrainer(Trainer):
    """Trains a RALI checkpoint from image-text-score triplets; every Table 4 ablation is a switch."""

    name = "rali"
    model = "rali"

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

    # ----------------------------------------------------------------- pipeline

    def train(self, model_options: dict[str, Any], datasets: Sequence[TrainingSet], out_dir: Path, *,
              seed: int = 0, device: str = "cpu") -> dict[str, Any]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not datasets or not any(d.records for d in datasets):
            raise IQABenchError("rali trainer: no training records; the suite's train datasets are empty.")
        torch.manual_seed(seed)
        notes: list[str] = []
        # the full pair is kept (text tower lazily for the offline pair) so the saved encoder can be re-aligned
        encoder = build_encoder(self.encoder, self.backbone, self.pretrained, with_text=True, seed=seed).to(device)
        texts_info: dict[str, Any] = {"used": False}
        if self.contrastive_alignment:
            texts_path = self._texts_file(datasets, out_dir, device)
            pairs = match_texts(read_texts(texts_path), datasets)
            texts_info = {"used": True, "file": str(texts_path), "sha256": _sha256(texts_path),
                          "images_with_text": len(pairs), "texts": sum(len(t) for t in pairs.values())}
            align(encoder, pairs, lr=self.align_lr, projection_lr=self.projection_lr, epochs=self.align_epochs, batch_size=self.align_batch_size,
                  seed_augmentation=self.seed_augmentation, seed=seed, device=device, num_workers=self.num_workers)
        paths, labels = [], []
        for dataset in datasets:
            for record in dataset.records:
                paths.append(dataset.root / record.image)
                labels.append(record.mos)
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
        notes = notes if notes is not None else []
        x = features.double().numpy()
        dim = x.shape[1]
        if self.pca:
            from sklearn.decomposition import PCA

            m = self.pca_dim
            if m > min(dim, len(x)):
                m = min(dim, len(x))
                notes.append(f"pca_dim {self.pca_dim} exceeds min(feature dim {dim}, samples {len(x)}); clamped to {m}")
                warnings.warn(f"rali: pca_dim {self.pca_dim} clamped to {m}", stacklevel=2)
            fitted = PCA(n_components=m, svd_solver="full", random_state=seed).fit(x)
            mean, components = fitted.mean_, fitted.components_
        else:  # the raw features, as in the official code's identity fallback
            mean, components = np.zeros(dim), np.eye(dim)
        scale = np.ones(dim)
        projected = ((x - mean) / scale) @ components.T
        clusters = bucketed_kmeans(projected, labels, num_buckets=self.num_buckets if self.bucketed else 1,
                                   num_clusters=self.num_prototypes, seed=seed)
        head = PrototypeHead(torch.as_tensor(mean), torch.as_tensor(scale), torch.as_tensor(components),
                             torch.as_tensor(clusters.centroids), torch.as_tensor(clusters.scores),
                             1.0 / self.tau, learn_tau=self.learn_tau).to(device)
        if self.score_definition:
            define_scores(head, features.float().to(device), torch.as_tensor(labels, dtype=torch.float32, device=device),
                          lr=self.score_lr, epochs=self.score_epochs, batch_size=self.score_batch_size, seed=seed)
        return head

    def _texts_file(self, datasets: Sequence[TrainingSet], out_dir: Path, device: str) -> Path:
        if self.texts is not None:
            return Path(self.texts)
        from iqabench.describe import ImageToDescribe, describe
        from iqabench.registry import default_registry

        path = out_dir / TEXTS_CACHE
        reasoner_cls = default_registry().model(self.reasoner)
        reasoner = reasoner_cls(**reasoner_options(reasoner_cls, self.reasoner_options, self.seeds, device))
        for dataset in datasets:
            images = [ImageToDescribe(r.image, dataset.root / r.image, r.mos) for r in dataset.records]
            describe(reasoner, images, self.seeds, path, dataset=dataset.name, batch_size=self.batch_size,
                     num_workers=self.num_workers, progress=False)
        del reasoner
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


def align(encoder: ImageTextEncoder, pairs: dict[Path, list[str]], *, lr: float, epochs: int, batch_size: int,
          seed_augmentation: bool, seed: int, device: str, num_workers: int = 0, projection_lr: float = 1e-3) -> None:
    """Fine-tune the vision side with InfoNCE against frozen text embeddings.

    Parameters the encoder pair adds from scratch (the offline pair's projection)
    learn at ``projection_lr``: at the pretrained tower's 1e-5 they would barely move.
    """
    paths = sorted(pairs)
    distinct = sorted({t for texts in pairs.values() for t in texts})
    text_id = {t: i for i, t in enumerate(distinct)}
    with torch.no_grad():
        text_emb = torch.cat([F.normalize(encoder.encode_text(distinct[i:i + 64]).float(), dim=-1)
                              for i in range(0, len(distinct), 64)])
    logit_scale = encoder.contrastive_logit_scale
    params = [p for p in encoder.vision_parameters()]
    for p in encoder.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    added = {id(p) for p in encoder.added_parameters()}
    optimizer = torch.optim.AdamW([
        {"params": [p for p in params if id(p) not in added], "lr": lr},
        {"params": [p for p in params if id(p) in added], "lr": projection_lr},
    ])
    rng = random.Random(seed)
    transform = encoder.image_transform()
    encoder.train()
    for _ in range(epochs):
        order = paths[:]
        rng.shuffle(order)
        for batch in iterate_batches(order, transform, batch_size=batch_size, num_workers=num_workers):
            ready = [item for item in batch if item.error is None]
            if len(ready) < 2:  # InfoNCE needs negatives
                continue
            ids = torch.tensor([text_id[rng.choice(pairs[order[item.index]]) if seed_augmentation
                                       else pairs[order[item.index]][0]] for item in ready], device=device)
            images = F.normalize(encoder.encode_image(torch.stack([item.item for item in ready]).to(device)).float(),
                                 dim=-1)
            texts = text_emb[ids]
            logits = logit_scale * images @ texts.T
            same = (ids[:, None] == ids[None, :]).float()
            targets = same / same.sum(dim=1, keepdim=True)
            loss = (torch.sum(-targets * F.log_softmax(logits, dim=1), dim=1).mean()
                    + torch.sum(-targets * F.log_softmax(logits.T, dim=1), dim=1).mean()) / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    encoder.eval()
    for p in params:
        p.requires_grad_(False)


@torch.no_grad()
def encode_images(encoder: ImageTextEncoder, paths: Sequence[Path], *, batch_size: int, device: str,
                  num_workers: int = 0) -> tuple[torch.Tensor, list[int]]:
    """Features of the readable images and their indices."""
    encoder.eval()
    chunks, kept = [], []
    for batch in iterate_batches(paths, encoder.image_transform(), batch_size=batch_size, num_workers=num_workers):
        ready = [item for item in batch if item.error is None]
        if ready:
            chunks.append(encoder.encode_image(torch.stack([i.item for i in ready]).to(device)).float().cpu())
            kept.extend(item.index for item in ready)
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
    for _ in range(epochs):
        for batch in torch.randperm(len(features), generator=generator).to(features.device).split(batch_size):
            loss = F.mse_loss(head(features[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
