"""Tokens of the GRPO training prompts with a real Qwen2.5-VL processor, and the longest prompt per image size.

    python benchmarks/qwen_prompt_tokens.py [CHECKPOINT]   # default Qwen/Qwen2.5-VL-7B-Instruct (needs the hub)

Prints each preset's text tokens per task (the image placeholder excluded) and, for the image sizes the protocol
suites feed the Q-Insight family, the whole prompt's length against the preset's ``max_prompt_length``.
tests/test_rl_presets.py pins the text counts (161 score, 203 degradation for Q-Insight's prompts), measured
offline with Qwen's BPE vocabulary; this script recomputes them with the checkpoint's own tokenizer.
"""

from __future__ import annotations

import sys

import iqabench  # noqa: F401  (the torchvision shim)
from iqabench_plugins.rl.grpo import GRPO, PRESETS, resized_size, text_tokens, visual_tokens

SIZES = {"KonIQ 1024x768": ((1024, 768), None), "KonIQ 512x384": ((512, 384), None),
         "SPAQ 4000x3000": ((4000, 3000), None), "SPAQ 4000x3000, shorter side 512": ((4000, 3000), (512, None)),
         "KADID-10k 512x384": ((512, 384), None), "PIPAL 288x288": ((288, 288), None)}


def main(checkpoint: str = "Qwen/Qwen2.5-VL-7B-Instruct") -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(checkpoint)
    for preset in PRESETS:
        grpo = GRPO(preset=preset)
        tasks = ("score", "degradation") if grpo.prompt == "q-insight" else ("score",)
        text = {task: text_tokens(processor, grpo.prompt, task) for task in tasks}
        print(f"{preset}: text tokens {text}, max_prompt_length {grpo.max_prompt_length or 'none'}")
        for name, (size, resize) in SIZES.items():
            tokens = visual_tokens(*resized_size(size, resize), grpo.min_pixels, grpo.max_pixels)
            longest = max(text.values()) + tokens
            fits = "fits" if not grpo.max_prompt_length or longest <= grpo.max_prompt_length else "TOO LONG"
            print(f"  {name}: {tokens} visual tokens, longest prompt {longest} ({fits})")


if __name__ == "__main__":
    main(*sys.argv[1:])
