"""Randomly initialised Qwen2.5-VL models built entirely in code: tiny, or at released size.

Tests, the offline smoke suite and the speed benchmarks need a Qwen2.5-VL that
runs in milliseconds on a CPU without downloading anything. This module builds
one: a byte-level tokenizer (256 byte tokens plus Qwen's special tokens, no
merges, so it never needs files and never produces an unknown token), a
Qwen2.5-VL processor around it, and a 2-layer model of about 0.3 M parameters.

The same builders make the released 7B architecture with random weights
(``random_init=True`` of the reasoning scorers), for timing on a GPU without
the weights: the tokenizer is then padded with multi-byte tokens up to the
real vocabulary size, so the embedding and output layers have their real
shapes and every generated id decodes.

It is the same architecture, processor class and chat format as the real
7B checkpoints, so every plugin runs its real code path on it; only the weights
differ. Its outputs are random bytes: scores parsed from them are meaningless,
and the plugins flag the checkpoint ``tiny-random`` as random weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iqabench.api import lazy_module

torch = lazy_module("torch")  # imported on first use: listing models loads no torch

#: the checkpoint value that means "build the tiny random model" instead of loading one
TINY_CHECKPOINT = "tiny-random"

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# A simplified Qwen2-VL chat template: same markers and default system message as
# the real one, so prompts have the real structure.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: the tiny model's ``Qwen2_5_VLConfig`` keywords (vocabulary: the byte-level tokenizer's 263 tokens)
TINY_ARCHITECTURE: dict[str, Any] = {
    "tie_word_embeddings": True,
    "text_config": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        # mrope sections sum to head_dim / 2 = 64 / 4 / 2 = 8
        rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]},
    ),
    "vision_config": dict(
        depth=2,
        hidden_size=64,
        intermediate_size=128,
        num_heads=4,
        out_hidden_size=64,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=56,
        fullatt_block_indexes=[1],
    ),
}



def build_byte_tokenizer(vocab_size: int | None = None):
    """A byte-level fast tokenizer with Qwen's special tokens; left padding for batched generation.

    With ``vocab_size``, multi-byte filler tokens (never produced by encoding: there are no merges) sit between
    the 256 bytes and the special tokens, so ``len(tokenizer) == vocab_size`` and any id a model of that
    vocabulary generates decodes to bytes.
    """
    from itertools import product

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(ByteLevel.alphabet())
    vocab = {char: index for index, char in enumerate(alphabet)}
    if vocab_size is not None:
        regular = vocab_size - len(SPECIAL_TOKENS)
        if regular < len(alphabet):
            raise ValueError(f"vocab_size {vocab_size} is below the {len(alphabet) + len(SPECIAL_TOKENS)} byte and "
                             "special tokens of the byte-level tokenizer.")
        fillers = ("".join(chars) for length in (2, 3) for chars in product(alphabet, repeat=length))
        while len(vocab) < regular:
            vocab[next(fillers)] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def build_byte_processor(min_pixels: int = 56 * 56, max_pixels: int = 64 * 64, vocab_size: int | None = None,
                         **image_processor: Any):
    """A Qwen2.5-VL processor around the byte-level tokenizer; ``image_processor``: Qwen2VLImageProcessor keywords."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    images = Qwen2VLImageProcessor(size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, **image_processor)
    return Qwen2_5_VLProcessor(
        image_processor=images,
        tokenizer=build_byte_tokenizer(vocab_size),
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=CHAT_TEMPLATE,
    )


def build_random_qwen25vl(
    architecture: dict[str, Any],
    tokenizer,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
    seed: int = 0,
):
    """A randomly initialised Qwen2.5-VL, in eval mode, built directly on ``device`` in ``dtype``.

    ``architecture``: ``Qwen2_5_VLConfig`` keywords without special-token ids, which come from ``tokenizer``
    (its length is the vocabulary size unless the architecture sets one). Building on the device avoids
    holding a 7B model in host memory first.
    """
    dtype = torch.float32 if dtype is None else dtype
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    token_id = tokenizer.convert_tokens_to_ids
    special = {"eos_token_id": token_id("<|im_end|>"), "pad_token_id": token_id("<|endoftext|>"), "bos_token_id": None}
    text_config = {"vocab_size": len(tokenizer), **architecture["text_config"], **special}
    config = Qwen2_5_VLConfig(
        **{**architecture, "text_config": text_config},
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
    )
    if text_config["vocab_size"] < len(tokenizer):
        raise ValueError(f"vocab_size {text_config['vocab_size']} is smaller than the tokenizer ({len(tokenizer)}).")
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype, **extra)
    model.generation_config.eos_token_id = special["eos_token_id"]
    model.generation_config.pad_token_id = special["pad_token_id"]
    model.generation_config.bos_token_id = None
    return model.eval()


def build_tiny_qwen25vl(seed: int = 0):
    """``(model, processor)``: a randomly initialised 2-layer Qwen2.5-VL, in eval mode, float32."""
    processor = build_byte_processor()
    return build_random_qwen25vl(TINY_ARCHITECTURE, processor.tokenizer, seed=seed), processor


def save_tiny_qwen25vl(directory: str | Path, seed: int = 0) -> Path:
    """Write the tiny model and processor as a checkpoint folder that ``from_pretrained`` loads."""
    directory = Path(directory)
    model, processor = build_tiny_qwen25vl(seed=seed)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
