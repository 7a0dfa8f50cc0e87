"""RALI's scoring head: PCA, cosine similarity to K prototypes, softmax, weighted score.

For image features ``x`` (the encoder's embedding, dimension D)::

    z = ((x - mean) / |scale|) @ components.T          # PCA, D -> M
    w = softmax(cos(z, prototypes) / tau)               # K weights
    score = w @ proto_scores

This is Eq. (3) of the paper with the temperature of the official inference
code (``tau = 1 / logit_scale``). :class:`PrototypeHead` is the differentiable
form used while fitting prototypes and their scores; :class:`FusedHead` is the
inference form, where PCA and the prototype similarities are folded into one
``[D, K + M]`` matrix so that scoring costs a single small matmul after the
encoder.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

HEAD_TENSORS = ("pca_mean", "pca_scale", "pca_components", "prototypes", "proto_scores", "logit_scale")
#: the official code clamps the scale away from zero the same way
MIN_LOGIT_SCALE = 1e-6


class PrototypeHead(nn.Module):
    """Holds the six tensors of a RALI head; prototypes and scores are trainable, tau optionally."""

    def __init__(self, pca_mean: torch.Tensor, pca_scale: torch.Tensor, pca_components: torch.Tensor,
                 prototypes: torch.Tensor, proto_scores: torch.Tensor, logit_scale: torch.Tensor | float,
                 *, learn_tau: bool = False) -> None:
        super().__init__()
        components = torch.as_tensor(pca_components, dtype=torch.float32)
        prototypes = torch.as_tensor(prototypes, dtype=torch.float32)
        if prototypes.shape[1] != components.shape[0]:
            raise ValueError(
                f"prototypes have dimension {prototypes.shape[1]} but the PCA outputs {components.shape[0]}"
            )
        self.register_buffer("pca_mean", torch.as_tensor(pca_mean, dtype=torch.float32).clone())
        self.register_buffer("pca_scale", torch.as_tensor(pca_scale, dtype=torch.float32).clone())
        self.register_buffer("pca_components", components.clone())
        self.prototypes = nn.Parameter(prototypes.clone())
        self.proto_scores = nn.Parameter(torch.as_tensor(proto_scores, dtype=torch.float32).clone())
        self.logit_scale = nn.Parameter(torch.as_tensor(float(logit_scale), dtype=torch.float32).reshape(()),
                                        requires_grad=learn_tau)

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], *, learn_tau: bool = False) -> PrototypeHead:
        return cls(*(tensors[name] for name in HEAD_TENSORS), learn_tau=learn_tau)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).detach().clone().contiguous() for name in HEAD_TENSORS}

    @property
    def tau(self) -> float:
        return 1.0 / float(self.logit_scale.detach().clamp(min=MIN_LOGIT_SCALE))

    @property
    def feature_dim(self) -> int:
        return int(self.pca_components.shape[1])

    @property
    def pca_dim(self) -> int:
        return int(self.pca_components.shape[0])

    @property
    def num_prototypes(self) -> int:
        return int(self.prototypes.shape[0])

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return ((features - self.pca_mean) / self.pca_scale.abs()) @ self.pca_components.T

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.project(features.float()), dim=-1)
        sim = z @ F.normalize(self.prototypes, dim=-1).T
        weights = torch.softmax(sim * self.logit_scale.clamp(min=MIN_LOGIT_SCALE), dim=-1)
        return weights @ self.proto_scores

    def fused(self) -> FusedHead:
        return FusedHead(self)


class FusedHead(nn.Module):
    """Inference form of a fixed head: one ``addmm`` gives both the M PCA coordinates and the K dot products.

    With ``W = (components / |scale|).T`` and ``b = (mean / |scale|) @ components.T``,
    ``z = x @ W - b`` and ``z @ P^T = x @ (W P^T) - b P^T`` for normalised
    prototypes ``P``; stacking ``[W P^T | W]`` yields the unnormalised cosines
    and ``z`` (whose norm completes the cosine) in one product.
    """

    def __init__(self, head: PrototypeHead) -> None:
        super().__init__()
        with torch.no_grad():
            scale = head.pca_scale.abs()
            weight = (head.pca_components / scale).T  # [D, M]
            bias = (head.pca_mean / scale) @ head.pca_components.T  # [M]
            protos = F.normalize(head.prototypes, dim=-1)  # [K, M]
            self.register_buffer("matrix", torch.cat([weight @ protos.T, weight], dim=1).contiguous())
            self.register_buffer("offset", -torch.cat([bias @ protos.T, bias]))
            self.register_buffer("scores", head.proto_scores.detach().clone())
            self.logit_scale = float(head.logit_scale.clamp(min=MIN_LOGIT_SCALE))
        self.num_prototypes = head.num_prototypes

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Scores of ``features``; differentiable with respect to them (the head's own tensors are fixed buffers)."""
        y = torch.addmm(self.offset, features.float(), self.matrix)
        dots, z = y[:, : self.num_prototypes], y[:, self.num_prototypes :]
        sim = dots / z.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return torch.softmax(sim * self.logit_scale, dim=-1) @ self.scores
