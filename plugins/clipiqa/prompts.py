"""Antonym prompts, fixed (CLIP-IQA) or with a learned context (CLIP-IQA+, CoOp).

CLIP-IQA asks CLIP which of two opposite captions fits an image better; the
softmax of the two scaled cosine similarities is the probability of the
positive caption. CLIP-IQA+ keeps the two class phrases but surrounds them
with 16 learned word vectors (CoOp), half before and half after the phrase
("middle" class position), shared by both phrases.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from iqabench.api import IQABenchError
from iqabench_plugins.clipiqa.backbone import TextTower

#: CLIP-IQA's single pair (IceClear/CLIP-IQA, ``CLIPIQAFixed``)
GOOD_BAD: tuple[tuple[str, str], ...] = (("Good photo.", "Bad photo."),)
#: the five pairs pyiqa averages over (its variant of CLIP-IQA)
FIVE_PAIRS: tuple[tuple[str, str], ...] = (
    ("Good image", "bad image"),
    ("Sharp image", "blurry image"),
    ("sharp edges", "blurry edges"),
    ("High resolution image", "low resolution image"),
    ("Noise-free image", "noisy image"),
)
PROMPT_SETS = {"good-bad": GOOD_BAD, "five-pairs": FIVE_PAIRS}

#: CLIP-IQA+'s class phrases, positive first
COOP_CLASS_NAMES = ("Good photo.", "Bad photo.")
#: the placeholder word whose token slots the learned context vectors take
CONTEXT_PLACEHOLDER = "X"


def coop_prompt(class_name: str, n_ctx: int) -> str:
    """The text CLIP-IQA+ tokenises for a class: ``"X X ... X " + class_name + "."`` (the release's template)."""
    return " ".join([CONTEXT_PLACEHOLDER] * n_ctx) + " " + class_name + "."


def resolve_prompts(prompts: str | Sequence[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    """``"good-bad"``, ``"five-pairs"`` or an explicit list of (positive, negative) pairs."""
    if isinstance(prompts, str):
        if prompts not in PROMPT_SETS:
            raise IQABenchError(
                f"prompts={prompts!r} is not a prompt set; use {' or '.join(map(repr, PROMPT_SETS))}, "
                "or a list of [positive, negative] caption pairs."
            )
        return PROMPT_SETS[prompts]
    pairs = tuple(tuple(pair) for pair in prompts)
    if not pairs or any(len(pair) != 2 or not all(isinstance(t, str) and t.strip() for t in pair) for pair in pairs):
        raise IQABenchError(
            f"prompts={prompts!r}: an explicit prompt list must hold [positive, negative] pairs of non-empty "
            'captions, e.g. [["Good photo.", "Bad photo."]].'
        )
    return pairs  # type: ignore[return-value]


class PromptLearner(nn.Module):
    """CoOp's learnable context around fixed class phrases; its only parameter is ``context``.

    As in CLIP-IQA+'s release (IceClear/CLIP-IQA ``PromptLearner``), each
    prompt is tokenised as ``prefix + " " + class_name + "."`` with the prefix
    ``"X X ... X"`` (one X per context vector); the class phrase already ends
    in a period, so "Good photo." becomes "... Good photo.." and CLIP's BPE
    reads the phrase as "good", "photo", "..". The start token, the first
    ``len(tokens(class_name))`` tokens after the placeholders (the phrase's
    slot) and the rest (end-of-text, padding) are embedded by CLIP; the
    ``n_ctx`` placeholder slots are then filled with the learned vectors, half
    before and half after the phrase ("middle" class position). Moving the
    phrase to the middle leaves the end-of-text token where it was, so
    pooling by token id still finds it.
    """

    def __init__(
        self,
        tower: TextTower,
        tokenizer: object,
        class_names: Sequence[str] = COOP_CLASS_NAMES,
        n_ctx: int = 16,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        from open_clip.tokenizer import SimpleTokenizer

        if not isinstance(tokenizer, SimpleTokenizer):
            raise IQABenchError(
                f"prompt learning supports open_clip's CLIP BPE tokenizer, not {type(tokenizer).__name__}; "
                "choose a CLIP model such as RN50 or ViT-B-32."
            )
        if n_ctx < 2 or n_ctx % 2:
            raise IQABenchError(f"n_ctx={n_ctx}: the middle class position needs an even number of context tokens.")
        self.tower = tower  # a plain object: CLIP's weights are not parameters of this module
        self.class_names = tuple(class_names)
        self.n_ctx = n_ctx
        self.prompts = [coop_prompt(name, n_ctx) for name in self.class_names]
        token_ids = tokenizer(self.prompts)
        self.name_lengths = [len(tokenizer.encode(name)) for name in self.class_names]
        for name, prompt in zip(self.class_names, self.prompts, strict=True):
            if len(tokenizer.encode(prompt)) + 2 > tower.context_length:  # + start and end-of-text
                raise IQABenchError(
                    f"the prompt for {name!r} with {n_ctx} context tokens does not fit CLIP's "
                    f"{tower.context_length}-token context; use a shorter class phrase or fewer context tokens."
                )
        width = tower.token_embedding.weight.shape[1]
        self.register_buffer("token_ids", token_ids, persistent=False)
        with torch.no_grad():
            self.register_buffer("token_embeddings", tower.embed(token_ids), persistent=False)
        # CoOp's generic context: no word to start from, small Gaussian vectors
        init = torch.empty(n_ctx, width).normal_(0.0, 0.02, generator=generator)
        self.context = nn.Parameter(init.to(self.token_embeddings.dtype))

    def prompt_embeddings(self) -> torch.Tensor:
        """(classes, context_length, width): [start] ctx[:half] <phrase> ctx[half:] [end, padding]."""
        half = self.n_ctx // 2
        context = self.context.to(self.token_embeddings.dtype)
        prompts = []
        for row, length in zip(self.token_embeddings, self.name_lengths, strict=True):
            phrase_start = 1 + self.n_ctx
            prompts.append(
                torch.cat(
                    [
                        row[:1],
                        context[:half],
                        row[phrase_start : phrase_start + length],
                        context[half:],
                        row[phrase_start + length :],
                    ]
                )
            )
        return torch.stack(prompts)

    def forward(self) -> torch.Tensor:
        """Text features (not normalised), one row per class phrase."""
        return self.tower.encode(self.prompt_embeddings(), self.token_ids)
