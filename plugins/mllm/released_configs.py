"""The released configuration of Qwen2.5-VL-7B-Instruct, the base of Q-Insight, RACT and VisualQuality-R1.

Kept in one place because two things need it without the hub: the
``random_init`` option of the reasoning scorers (the real architecture with
random weights, for timing) and :func:`released_parameters`, which counts the
released parameters on the meta device for the efficiency study.

Values are those of ``config.json`` and ``preprocessor_config.json`` of
Qwen/Qwen2.5-VL-7B-Instruct, written in transformers' ``Qwen2_5_VLConfig``
keywords. The special-token ids are left out: they come from the tokenizer the
model is built with.
"""

from __future__ import annotations

from typing import Any

#: where the numbers come from, recorded with every model built from them
QWEN25_VL_7B_SOURCE = "Qwen/Qwen2.5-VL-7B-Instruct config.json (Q-Insight's base; same architecture)"

#: ``Qwen2_5_VLConfig(**QWEN25_VL_7B_INSTRUCT)`` is the released architecture: 8,292,166,656 parameters
QWEN25_VL_7B_INSTRUCT: dict[str, Any] = {
    "tie_word_embeddings": False,
    "text_config": {
        "vocab_size": 152064,
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "hidden_act": "silu",
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1.0e-6,
        "tie_word_embeddings": False,
        # head_dim 128: the mrope sections (temporal, height, width) sum to 64 rotary frequencies
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    },
    "vision_config": {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "hidden_act": "silu",
    },
}

#: ``Qwen2VLImageProcessor`` keywords of the release; ``min_pixels``/``max_pixels`` are the scorers' options
QWEN25_VL_7B_IMAGE_PROCESSOR: dict[str, Any] = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}


def released_parameters() -> int:
    """Parameters of Qwen2.5-VL-7B-Instruct, counted from :data:`QWEN25_VL_7B_INSTRUCT` on the meta device."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from iqabench.api import parameters_on_meta

    return parameters_on_meta(lambda: Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**QWEN25_VL_7B_INSTRUCT)))
