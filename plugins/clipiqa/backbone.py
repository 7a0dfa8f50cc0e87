"""The frozen CLIP that CLIP-IQA and CLIP-IQA+ stand on, loaded through open_clip.

Two things here go beyond ``open_clip.create_model``:

* the ResNet towers' attention pool is made resolution-free. OpenAI's
  ModifiedResNet ends in a QKV attention pool whose positional embedding is
  sized for the training grid (7x7 for RN50 at 224 px), so a 1024x768 KonIQ
  image does not fit it. CLIP-IQA scores images at full resolution and simply
  leaves the positional embedding out (its default); the alternative it
  offers is to interpolate the embedding bicubically to the image's grid.
  :class:`ResolutionFreeAttentionPool` does either and is swapped in for
  open_clip's pool, sharing its parameters, so weights and state-dict keys are
  untouched.
* prompts given as embeddings rather than token ids (:func:`encode_prompt_embeddings`),
  which CoOp needs because its context words are learned vectors with no token.

Weights come from an open_clip pretrained tag (downloaded to the Hugging Face
cache) or a local file; offline failures say which file is needed and how to
pass it.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from iqabench.api import IQABenchError, hub_offline_reason

#: the normalisation CLIP was trained with (OpenAI CLIP mean and std)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def torch_dtype(name: str) -> torch.dtype:
    if name not in TORCH_DTYPES:
        raise IQABenchError(f"unknown dtype {name!r}; use one of {', '.join(TORCH_DTYPES)}.")
    return TORCH_DTYPES[name]


def brings_own_weights(model_name: str) -> bool:
    """``hf-hub:`` and ``local-dir:`` models carry their weights; open_clip ignores ``pretrained`` for them."""
    return model_name.startswith(("hf-hub:", "local-dir:"))


def load_clip(model_name: str, pretrained: str | None, *, device: str = "cpu", precision: str = "fp32") -> nn.Module:
    """Build an open_clip model in eval mode with every parameter frozen.

    ``pretrained`` is an open_clip tag (``"openai"``), a path to a weights file
    (``.bin``, ``.pt``, ``.safetensors``), or ``None`` for random weights
    (only meaningful for tests with tiny configurations). ``precision="fp16"`` is open_clip's half precision:
    convolution, linear and attention weights and the projections in float16, layer norms computed in float32,
    embeddings and batch norms in float32, as OpenAI's ``clip.build_model`` (``convert_weights``) leaves them.
    """
    import open_clip

    if brings_own_weights(model_name):
        pretrained = None
    elif model_name not in open_clip.list_models():
        raise IQABenchError(
            f"open_clip has no model {model_name!r}; pick one of `open_clip.list_models()` "
            "(CLIP-IQA uses 'RN50'), or register a config with open_clip.add_model_config()."
        )
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained) if pretrained else {}
    if pretrained and not tag_cfg and not os.path.isfile(pretrained):
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise IQABenchError(
            f"pretrained={pretrained!r} is neither an open_clip tag of {model_name!r} "
            f"(tags: {', '.join(tags) or 'none'}) nor an existing weights file; pass a tag or the path of a local "
            "weights file."
        )
    if pretrained and os.path.isfile(pretrained):
        openai_cfg = open_clip.get_pretrained_cfg(model_name, "openai")
        if openai_cfg.get("quick_gelu") and "quickgelu" not in model_name:
            warnings.warn(
                f"{model_name!r} with a local weights file is built with GELU; OpenAI's weights were trained with "
                f"QuickGELU, so for them use model_name={model_name + '-quickgelu'!r}.",
                UserWarning,
                stacklevel=2,
            )
    if tag_cfg:
        _weights_obtainable(model_name, pretrained, tag_cfg)
    try:
        model = open_clip.create_model(
            model_name,
            pretrained=pretrained,
            device=device,
            precision=precision,
            # OpenAI's text transformers use QuickGELU; the tag says so, the bare config does not
            force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
        )
    except RuntimeError as exc:
        if not tag_cfg:
            raise
        raise IQABenchError(missing_weights_message(model_name, pretrained, tag_cfg, exc)) from None
    model.eval()
    model.requires_grad_(False)
    return model


def _weights_obtainable(model_name: str, tag: str, tag_cfg: dict[str, Any]) -> None:
    """Refuse at once when a tag's weights are neither in the local caches nor downloadable now (offline mode, no
    network), instead of after the hub client's retries."""
    from huggingface_hub import try_to_load_from_cache
    from open_clip import pretrained as released

    hub = tag_cfg.get("hf_hub")
    if hub:
        repo, filename = os.path.split(hub)  # "org/name/" means open_clip's default file name, as open_clip reads it
        filename = filename or released.HF_WEIGHTS_NAME
        names = {filename, os.path.splitext(filename)[0] + ".safetensors"}
        if filename == released.HF_WEIGHTS_NAME:
            names.add(released.HF_SAFE_WEIGHTS_NAME)
        if any(isinstance(try_to_load_from_cache(repo, name), str) for name in names):
            return
    url = tag_cfg.get("url")
    if url and os.path.isfile(os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url))):
        return
    reason = hub_offline_reason()
    if reason is not None:
        raise IQABenchError(missing_weights_message(model_name, tag, tag_cfg, f"not in the local cache, and {reason}"))


def missing_weights_message(model_name: str, tag: str, tag_cfg: dict[str, Any], exc: Exception) -> str:
    where = []
    if tag_cfg.get("hf_hub"):
        repo = tag_cfg["hf_hub"].rstrip("/")
        where.append(f"the Hugging Face repo {repo} (file open_clip_pytorch_model.bin)")
    if tag_cfg.get("url"):
        where.append(tag_cfg["url"])
    suggested = model_name if not tag_cfg.get("quick_gelu") or "quickgelu" in model_name else model_name + "-quickgelu"
    return (
        f"could not get the CLIP weights for model {model_name!r}, tag {tag!r} ({exc}). "
        f"They are at {' or '.join(where) or 'the location open_clip lists for this tag'}. "
        f"Download the file on a machine with internet, then pass it as a local file: "
        f"model_name={suggested!r}, pretrained='/path/to/the/file'."
    )


def is_resnet_tower(model: nn.Module) -> bool:
    from open_clip.modified_resnet import ModifiedResNet

    return isinstance(model.visual, ModifiedResNet)


def tower_image_size(model: nn.Module) -> tuple[int, int] | None:
    """The input size a fixed-resolution tower was built for, when it says."""
    size = getattr(model.visual, "image_size", None)
    if size is None:
        return None
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class ResolutionFreeAttentionPool(nn.Module):
    """CLIP's ResNet attention pool for any feature-map size.

    The pool attends from the mean feature to all positions; its positional
    embedding is either left out (``use_positional_embedding=False``, CLIP-IQA's
    default) or resampled as CLIP-IQA's release does: the (1 + h*w, C)
    embedding of the training grid, class row first, treated as a one-channel
    image and resized bicubically to (1 + H*W, C), which interpolates along
    the flattened (row-major) token sequence. Only the first (mean) token's
    output is used, so only it is a query.
    """

    def __init__(self, pool: nn.Module, use_positional_embedding: bool) -> None:
        super().__init__()
        # the same Parameter objects under the same names: state-dict keys stay open_clip's
        self.positional_embedding = pool.positional_embedding
        self.k_proj, self.q_proj, self.v_proj, self.c_proj = pool.k_proj, pool.q_proj, pool.v_proj, pool.c_proj
        self.num_heads = pool.num_heads
        self.use_positional_embedding = use_positional_embedding

    def positional_embedding_for(self, height: int, width: int) -> torch.Tensor:
        """The (1 + height*width, C) embedding for a height x width feature map."""
        embedding = self.positional_embedding
        tokens = 1 + height * width
        if tokens == embedding.shape[0]:
            return embedding
        resized = F.interpolate(embedding[None, None].float(), size=(tokens, embedding.shape[1]), mode="bicubic")
        return resized[0, 0].to(embedding.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        tokens = x.flatten(2).permute(2, 0, 1)  # (HW, N, C)
        tokens = torch.cat([tokens.mean(dim=0, keepdim=True), tokens], dim=0)
        if self.use_positional_embedding:
            tokens = tokens + self.positional_embedding_for(height, width)[:, None, :].to(tokens.dtype)
        pooled, _ = F.multi_head_attention_forward(
            query=tokens[:1],
            key=tokens,
            value=tokens,
            embed_dim_to_check=tokens.shape[-1],
            num_heads=self.num_heads,
            q_proj_weight=self.q_proj.weight,
            k_proj_weight=self.k_proj.weight,
            v_proj_weight=self.v_proj.weight,
            in_proj_weight=None,
            in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None,
            bias_v=None,
            add_zero_attn=False,
            dropout_p=0.0,
            out_proj_weight=self.c_proj.weight,
            out_proj_bias=self.c_proj.bias,
            use_separate_proj_weight=True,
            training=False,
            need_weights=False,
        )
        return pooled[0]


def make_resolution_free(model: nn.Module, use_positional_embedding: bool) -> None:
    """Swap a ResNet tower's attention pool for :class:`ResolutionFreeAttentionPool`, in place."""
    pool = model.visual.attnpool
    if isinstance(pool, ResolutionFreeAttentionPool):
        pool.use_positional_embedding = use_positional_embedding
    else:
        model.visual.attnpool = ResolutionFreeAttentionPool(pool, use_positional_embedding)


class TextTower:
    """The parts of open_clip's own text transformer that turn embeddings into a text feature.

    open_clip keeps them on the CLIP model itself (``CLIP``) or on its ``text``
    module (``CustomTextCLIP`` with a ``TextTransformer``). Hugging Face text
    encoders and CoCa's appended class token are not supported: CoOp splices
    learned vectors into the token embeddings, which needs this exact pipeline.
    """

    def __init__(self, model: nn.Module) -> None:
        from open_clip.transformer import TextTransformer

        owner = model if hasattr(model, "token_embedding") else getattr(model, "text", None)
        supported = owner is model or (
            isinstance(owner, TextTransformer) and owner.cls_emb is None and not owner.use_pad_mask
        )
        if not supported:
            raise IQABenchError(
                f"prompt learning needs open_clip's own text transformer, but this model's text tower is "
                f"{type(owner).__name__}; choose a CLIP model such as RN50 or ViT-B-32."
            )
        self.token_embedding = owner.token_embedding
        self.positional_embedding = owner.positional_embedding
        self.transformer = owner.transformer
        self.ln_final = owner.ln_final
        self.text_projection = owner.text_projection
        self.attn_mask = owner.attn_mask
        self.pool_type = owner.text_pool_type if owner is model else owner.pool_type
        self.eos_id = owner.text_eos_id if owner is model else owner.eos_id
        self.context_length = owner.context_length

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(token_ids)

    def encode(self, embeddings: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """Text features (not normalised) of prompts given as token embeddings.

        ``token_ids`` locate the pooled (end-of-text) position, exactly as
        open_clip's ``encode_text`` does from the ids it embeds. With CLIP's
        causal mask nothing after that position reaches it, so the padding
        beyond the longest prompt is cut off: the same features at a quarter
        of the cost for short prompts (21 of 77 tokens for CLIP-IQA+), which
        is most of the time of a CoOp step.
        """
        from open_clip.transformer import text_global_pool

        cast_dtype = self.transformer.get_cast_dtype()
        length = embeddings.shape[1]
        if self.attn_mask is not None and self.pool_type in ("argmax", "eos"):
            if self.pool_type == "argmax":
                ends = token_ids.argmax(dim=-1)
            else:
                ends = (token_ids == self.eos_id).int().argmax(dim=-1)
            length = int(ends.max()) + 1
        embeddings, token_ids = embeddings[:, :length], token_ids[:, :length]
        x = embeddings.to(cast_dtype) + self.positional_embedding[:length].to(cast_dtype)
        attn_mask = self.attn_mask[:length, :length].to(x.device) if self.attn_mask is not None else None
        x = self.transformer(x, attn_mask=attn_mask)
        x = self.ln_final(x)
        x = text_global_pool(x, token_ids, self.pool_type, eos_token_id=self.eos_id)
        if self.text_projection is not None:
            x = self.text_projection(x) if isinstance(self.text_projection, nn.Linear) else x @ self.text_projection
        return x
