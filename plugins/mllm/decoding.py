"""How completions are drawn: named presets, every field explicit, and the configuration ``generate`` really used.

A reasoning model's score depends on its decoding, so the decoding recorded
with the results must be the one that ran. transformers makes that harder
than it looks: ``generate(generation_config=...)`` fills fields from the
checkpoint's ``generation_config.json`` (in 5.x every field left ``None``; in
4.50-4.57 every field left at its global default when the file was written by
transformers >= 4.50). Qwen2.5-VL checkpoints ship such a file (sampling
settings, a repetition penalty), so a "greedy" benchmark could run with the
checkpoint's penalty or even sample, while its results said greedy. Three
guards close that gap:

1. :meth:`Decoding.generation_config` sets every field that changes which
   tokens come out (the "off" value of those not used, e.g. no repetition
   penalty), never leaving one to a default;
2. the scorer replaces the model's own ``generation_config`` with that one,
   so no transformers version has a checkpoint value to fall back on (the
   checkpoint's values are kept in the record, to show what was ignored);
3. :func:`effective_decoding` resolves the configuration with transformers'
   own resolution step (the one ``generate`` runs first), compares it with
   what was asked and raises on any difference; the resolved values are what
   the results record.

The decodings the releases use are named presets (:data:`PRESETS`). Options
given explicitly (``do_sample``, ``temperature``, ...) override the preset's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from iqabench.api import IQABenchError, did_you_mean

#: the fields that decide which tokens ``generate`` emits, each with its "off" value (transformers' global
#: default); every one is set explicitly and recorded
NEUTRAL_FIELDS: dict[str, Any] = {
    "num_beams": 1,
    "num_beam_groups": 1,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "length_penalty": 1.0,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "diversity_penalty": 0.0,
    "renormalize_logits": False,
    "remove_invalid_values": False,
}
#: fields whose "off" value is None: the model's generation_config must not hold one (guard 2 ensures it)
UNSET_FIELDS = ("min_p", "bad_words_ids", "suppress_tokens", "begin_suppress_tokens", "sequence_bias",
                "forced_bos_token_id", "forced_eos_token_id", "exponential_decay_length_penalty",
                "guidance_scale", "watermarking_config", "penalty_alpha", "dola_layers", "constraints",
                "force_words_ids", "stop_strings")
#: what greedy decoding passes for the sampling fields: transformers' neutral values, which it does not warn about
GREEDY_SAMPLING_FIELDS = {"temperature": 1.0, "top_p": 1.0, "top_k": 50}
#: recorded from the resolved configuration
RECORDED_FIELDS = ("do_sample", "temperature", "top_p", "top_k", "max_new_tokens", "min_new_tokens",
                   "num_return_sequences", *NEUTRAL_FIELDS, *UNSET_FIELDS)


@dataclass(frozen=True)
class Preset:
    """A named decoding; ``None`` sampling fields are not set by it (greedy)."""

    name: str
    #: where the values come from (file of the release, or iqabench's reason)
    source: str
    do_sample: bool
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    #: completions per image whose parsed ratings are averaged
    num_samples: int = 1
    max_new_tokens: int | None = None


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("greedy", "iqabench's default: reproducible, one completion per image", do_sample=False),
        Preset(
            "q-insight-demo",
            "bytedance/Q-Insight src/eval/demo_score.py: GenerationConfig(do_sample=True, temperature=1.0, "
            "top_k=50, top_p=0.95, max_new_tokens=1024), one completion per image",
            do_sample=True, temperature=1.0, top_p=0.95, top_k=50, max_new_tokens=1024,
        ),
        Preset(
            "visualquality-r1",
            "TianheWu/VisualQuality-R1 README, batch rating with transformers: generate(do_sample=True, top_k=50, "
            "top_p=1, max_new_tokens=512), temperature not given (1.0 here); one completion per image",
            do_sample=True, temperature=1.0, top_p=1.0, top_k=50, max_new_tokens=512,
        ),
        Preset(
            "visualquality-r1-vllm",
            "TianheWu/VisualQuality-R1 README, vLLM script: SamplingParams(temperature=0.1, top_k=50, top_p=1.0, "
            "max_tokens=512), one completion per image",
            do_sample=True, temperature=0.1, top_p=1.0, top_k=50, max_new_tokens=512,
        ),
    )
}


@dataclass(frozen=True)
class Decoding:
    """How completions are drawn; recorded with every result because scores depend on it.

    Greedy (``do_sample=False``) draws one completion per image. Sampling
    draws ``num_samples`` completions per image at ``temperature`` /
    ``top_p`` / ``top_k``; the scorer averages the ratings it can parse.

    ``min_new_tokens`` suppresses the end-of-sequence token until that many
    tokens are generated; equal to ``max_new_tokens`` it fixes the length,
    which benchmarks need to compare generation cost across models and runs.
    """

    max_new_tokens: int
    min_new_tokens: int | None = None
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    num_samples: int = 1
    #: the preset the values started from
    preset: str = "greedy"

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise IQABenchError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}.")
        if self.min_new_tokens is not None and not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise IQABenchError(
                f"min_new_tokens must be between 0 and max_new_tokens ({self.max_new_tokens}), got "
                f"{self.min_new_tokens}; set both to the same value for a fixed generated length."
            )
        if self.num_samples < 1:
            raise IQABenchError(f"num_samples must be at least 1, got {self.num_samples}.")
        if self.num_samples > 1 and not self.do_sample:
            raise IQABenchError(
                f"num_samples={self.num_samples} with greedy decoding would repeat one completion; "
                "pass -o do_sample=true (or a sampling preset, -o decoding=q-insight-demo) to average sampled "
                "ratings, or keep num_samples=1."
            )
        if self.do_sample and self.temperature <= 0:
            raise IQABenchError(f"temperature must be positive when sampling, got {self.temperature}.")
        if self.do_sample and not 0 < self.top_p <= 1:
            raise IQABenchError(f"top_p must be in (0, 1] when sampling, got {self.top_p}.")
        if self.do_sample and self.top_k < 0:
            raise IQABenchError(f"top_k must be 0 (off) or positive when sampling, got {self.top_k}.")

    @property
    def mode(self) -> str:
        return "sampling" if self.do_sample else "greedy"

    def sampling_fields(self) -> dict[str, Any]:
        """temperature, top_p, top_k as passed: the neutral values when greedy (they do not act then)."""
        if not self.do_sample:
            return dict(GREEDY_SAMPLING_FIELDS)
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}

    def generation_config(self, *, eos_token_id: Any, pad_token_id: int | None, bos_token_id: int | None):
        """A ``GenerationConfig`` with every token-deciding field set (guard 1)."""
        from transformers import GenerationConfig

        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            min_new_tokens=self.min_new_tokens or 0,
            do_sample=self.do_sample,
            num_return_sequences=self.num_samples,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            **self.sampling_fields(),
            **NEUTRAL_FIELDS,
        )

    def vllm_sampling(self) -> dict[str, Any]:
        """vLLM ``SamplingParams`` keywords for the same decoding, every penalty and filter set (off).

        vLLM reads greedy as temperature 0 and "no top-k" as -1 (transformers: 0).
        """
        return {
            "n": self.num_samples,
            "max_tokens": self.max_new_tokens,
            "min_tokens": self.min_new_tokens or 0,
            "temperature": self.temperature if self.do_sample else 0.0,
            "top_p": self.top_p if self.do_sample else 1.0,
            "top_k": self.top_k if self.do_sample and self.top_k > 0 else -1,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
        }

    def requested(self) -> dict[str, Any]:
        """The values :func:`effective_decoding` must find, field by field."""
        return {
            "do_sample": self.do_sample,
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens or 0,
            "num_return_sequences": self.num_samples,
            **self.sampling_fields(),
            **NEUTRAL_FIELDS,
            **dict.fromkeys(UNSET_FIELDS),
        }

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if not self.do_sample:  # these do not act in greedy decoding; recording them would mislead
            for key in ("temperature", "top_p", "top_k"):
                record[key] = None
        record["mode"] = self.mode
        record["preset_source"] = PRESETS[self.preset].source
        return record


def resolve_decoding(
    preset: str,
    *,
    sampling_defaults: str,
    max_new_tokens: int | None,
    min_new_tokens: int | None,
    do_sample: bool | None,
    temperature: float | None,
    top_p: float | None,
    top_k: int | None,
    num_samples: int | None,
) -> Decoding:
    """The decoding of ``preset`` with the options given explicitly (not None) on top.

    ``sampling_defaults`` is the model's own release preset: it supplies the
    sampling values (and ``max_new_tokens``) a greedy preset leaves open, so
    ``-o do_sample=true`` samples as the release does.
    """
    for name in (preset, sampling_defaults):
        if name not in PRESETS:
            raise IQABenchError(f"unknown decoding preset {name!r}; choose one of {', '.join(PRESETS)}."
                                + did_you_mean(name, PRESETS))
    chosen, release = PRESETS[preset], PRESETS[sampling_defaults]
    sampling = do_sample if do_sample is not None else chosen.do_sample
    if not sampling:
        given = [f"{k}={v}" for k, v in (("temperature", temperature), ("top_p", top_p),
                                         ("top_k", top_k)) if v is not None]
        if given:
            raise IQABenchError(
                f"{', '.join(given)} has no effect with greedy decoding (preset {preset!r}); pass -o do_sample=true "
                "or a sampling preset (-o decoding=NAME, one of "
                f"{', '.join(p for p in PRESETS if PRESETS[p].do_sample)})."
            )

    def pick(explicit: Any, field: str) -> Any:
        if explicit is not None:
            return explicit
        value = getattr(chosen, field)
        return value if value is not None else getattr(release, field)

    return Decoding(
        max_new_tokens=pick(max_new_tokens, "max_new_tokens"),
        min_new_tokens=min_new_tokens,
        do_sample=sampling,
        temperature=pick(temperature, "temperature"),
        top_p=pick(top_p, "top_p"),
        top_k=pick(top_k, "top_k"),
        num_samples=num_samples if num_samples is not None else chosen.num_samples,
        preset=preset,
    )


def checkpoint_decoding(generation_config) -> dict[str, Any]:
    """The token-deciding values a checkpoint's ``generation_config.json`` sets (what guard 2 ignores)."""
    record = {}
    for field in ("do_sample", "temperature", "top_p", "top_k", *NEUTRAL_FIELDS, *UNSET_FIELDS):
        value = getattr(generation_config, field, None)
        if value is not None:
            record[field] = value
    return record


def effective_decoding(model, config) -> dict[str, Any]:
    """The configuration ``model.generate(generation_config=config)`` runs with, as transformers resolves it.

    The token-deciding fields that are set; a field left out is unset (None).
    """
    prepare = getattr(model, "_prepare_generation_config", None)
    if prepare is None:  # a transformers without the step: the passed config is all generate has (guard 2)
        resolved, how = config, "as passed (this transformers has no _prepare_generation_config to ask)"
    else:
        resolved, how = prepare(config)[0], "resolved by transformers' _prepare_generation_config"
    record = {field: _plain(getattr(resolved, field, None)) for field in RECORDED_FIELDS}
    return {**{k: v for k, v in record.items() if v is not None}, "how": how}  # absent: not set (None)


def check_effective(decoding: Decoding, effective: dict[str, Any]) -> None:
    """Raise when transformers resolved a token-deciding field to another value than the one asked for."""
    wrong = {
        field: (wanted, effective.get(field))
        for field, wanted in decoding.requested().items()
        if effective.get(field) != _plain(wanted)
    }
    if wrong:
        detail = "; ".join(f"{field}: asked {wanted!r}, resolved {got!r}" for field, (wanted, got) in wrong.items())
        raise IQABenchError(
            f"transformers would not decode as asked ({detail}). The results would record a decoding that did not "
            "run; this transformers version resolves generation settings differently. Report it with `pip show "
            "transformers`, or use another transformers version."
        )


def _plain(value: Any) -> Any:
    """JSON-friendly: tuples as lists, so that recorded and requested values compare equal."""
    if isinstance(value, tuple):
        return list(value)
    return value
