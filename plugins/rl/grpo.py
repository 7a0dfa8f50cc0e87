"""The ``grpo`` trainer: Q-Insight's multi-task GRPO of a Qwen2.5-VL model, through trl.

Two tasks, as Q-Insight trains them (paper section 5.1): score regression
(each training image with Q-Insight's system prompt and score question, or
VisualQuality-R1's question) and degradation perception (images with a known
distortion, asked for its class and severity; :mod:`.degradation`). trl samples
``num_generations`` completions per prompt and the rewards of
:mod:`iqabench_plugins.rl.rewards` score them against the prompt's label.
``preset`` picks a release's recipe; every option it sets can still be given
explicitly (docs/fidelity.md has each value and its source):

* ``q-insight`` (default; the paper's and Q-Insight's release): Q-Insight's
  rewards and prompts, 8 generations, KL beta 1e-3, AdamW at 1e-6 decaying
  linearly to 1e-9, 10 epochs, 128 completions per optimiser step, prompts of
  at most 1,024 tokens (the release cuts longer ones and then trains on
  misaligned tokens, so a longer prompt is refused here);
* ``visualquality-r1`` (TianheWu/VisualQuality-R1's ``grpo_jsonl.py`` and run
  scripts): its fidelity and format rewards and prompt, 6 generations, KL beta
  0.04, 48 completions (8 images) per GPU batch, 384 per optimiser step,
  linear decay to 0, every GPU batch drawn from one dataset and its images
  compared only with each other (its ``RepeatRandomSampler``), no prompt limit.

Both releases add the plain k3 KL per token (trl's ``use_bias_correction_kl``
off), average the loss per sequence then over the batch, and sample rollouts at
temperature 1 with top-k 50 and top-p 1.

Multi-GPU runs go through accelerate (``accelerate launch -m iqabench train``);
``deepspeed="zero2"|"zero3"`` picks one of the DeepSpeed configs shipped next
to this file. Training resumes from the newest ``checkpoint-N`` under
``out_dir/trainer``; the model and processor are saved into ``out_dir/final``
with ``iqabench_provenance.json`` beside them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

from iqabench.api import CheckpointError, IQABenchError, Trainer, TrainingSet, launched_processes, load_image
from iqabench_plugins.mllm.generation import qwen_vl_size
from iqabench_plugins.mllm.prompts import (
    Q_INSIGHT_SCORE_QUESTION,
    Q_INSIGHT_SYSTEM_PROMPT,
    VISUALQUALITY_QUESTION,
    VISUALQUALITY_THINKING_SUFFIX,
)
from iqabench_plugins.mllm.tiny import TINY_CHECKPOINT, save_tiny_qwen25vl
from iqabench_plugins.rl.checkpoints import (
    DEFAULT_BASE_CHECKPOINT,
    check_qwen_vl_checkpoint,
    datasets_provenance,
    write_provenance,
)
from iqabench_plugins.rl.degradation import (
    DEFAULT_DISTORTION_CLASSES,
    DEGRADATION_QUESTION,
    DegradationSample,
    check_ratio,
    mix,
    read_degradation_data,
    resize_pair,
    resolve_data_path,
    samples_from_records,
)
from iqabench_plugins.rl.hf_trainer import (
    accumulation_steps,
    common_args,
    save_processor,
    select_device,
    use_bf16,
    with_iqabench_schedule_and_resume,
)
from iqabench_plugins.rl.rewards import RewardFunction, get_reward, reward_tasks

log = logging.getLogger(__name__)

DEEPSPEED_CONFIGS = {name: Path(__file__).with_name(f"deepspeed_{name}.json") for name in ("zero2", "zero3")}
PROMPTS = ("q-insight", "visualquality")
#: trl loss normalisations; "grpo" is Q-Insight's: each sequence's token mean, then the batch mean
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
#: Qwen2.5-VL: 14-pixel patches merged 2x2, so one visual token per 28 x 28 pixels of the resized image
PIXELS_PER_VISUAL_TOKEN = 28 * 28

#: the releases' recipes: every option a preset decides, with the release's value (sources in docs/fidelity.md)
PRESETS: dict[str, dict[str, Any]] = {
    "q-insight": dict(
        rewards=("q_insight_score", "q_insight_degradation", "q_insight_format"),
        prompt="q-insight",
        num_generations=8,
        beta=1e-3,
        learning_rate=1e-6,
        min_learning_rate=1e-9,
        batch_size=128,
        per_device_train_batch_size=8,
        max_completion_length=256,
        max_prompt_length=1024,
        one_dataset_batches=False,
        reward_batch_images=0,
    ),
    "visualquality-r1": dict(
        rewards=("visualquality_fidelity", "visualquality_format"),
        prompt="visualquality",
        num_generations=6,
        beta=0.04,
        learning_rate=1e-6,
        min_learning_rate=0.0,
        batch_size=384,
        per_device_train_batch_size=48,
        max_completion_length=256,
        max_prompt_length=0,
        one_dataset_batches=True,
        reward_batch_images=8,
    ),
}


def training_prompt(style: str, task: str = "score") -> list[dict[str, str]]:
    """The conversation before the image; trl puts the image in front of the user's text."""
    if style == "q-insight":
        question = DEGRADATION_QUESTION if task == "degradation" else Q_INSIGHT_SCORE_QUESTION
        return [{"role": "system", "content": Q_INSIGHT_SYSTEM_PROMPT}, {"role": "user", "content": question}]
    if style == "visualquality":
        if task != "score":
            raise IQABenchError("the degradation task uses Q-Insight's prompts; train it with prompt: q-insight.")
        return [{"role": "user", "content": VISUALQUALITY_QUESTION + VISUALQUALITY_THINKING_SUFFIX}]
    raise IQABenchError(f"unknown prompt {style!r}; choose one of {', '.join(PROMPTS)}.")


def deepspeed_config_file(deepspeed: str | None) -> str | None:
    """``zero2``/``zero3`` name a config shipped with this plugin; anything else is a path."""
    if deepspeed is None:
        return None
    return str(DEEPSPEED_CONFIGS.get(deepspeed, deepspeed))


def check_training_sets(datasets: Sequence[TrainingSet]) -> None:
    if not datasets:
        raise IQABenchError("no training dataset given; name at least one dataset with a train split.")
    for training_set in datasets:
        if not training_set.records:
            raise IQABenchError(
                f"dataset {training_set.name!r} has no train split (no training records); train on a dataset that "
                "has one, or choose its split explicitly (e.g. `split: all`) in the training config."
            )


def resolve_base_checkpoint(model_options: dict[str, Any], out_dir: Path, seed: int) -> str:
    """A path or hub id trl can load by name (needed for the KL reference model); checked to be Qwen2.5-VL.

    The tiny random model of the smoke suite exists only in code, so it is
    written once into ``out_dir/base``.
    """
    checkpoint = str(model_options.get("checkpoint") or DEFAULT_BASE_CHECKPOINT)
    subfolder = model_options.get("subfolder")
    if subfolder:
        if not Path(checkpoint).expanduser().is_dir():
            raise CheckpointError(
                f"training starts from a local folder or a hub id without subfolder; download {checkpoint!r} "
                f"(`huggingface-cli download {checkpoint} --include '{subfolder}/*' --local-dir DIR`) and pass "
                f"checkpoint: DIR/{subfolder}."
            )
        checkpoint = str(Path(checkpoint).expanduser() / subfolder)
    if checkpoint == TINY_CHECKPOINT:
        base = out_dir / "base"
        if not (base / "config.json").is_file():
            save_tiny_qwen25vl(base, seed=seed)
        checkpoint = str(base)
    check_qwen_vl_checkpoint(checkpoint)
    return checkpoint


@dataclass
class Prompts:
    """The prompts of one epoch, per task, and what was left out."""

    score: list[dict[str, Any]] = field(default_factory=list)
    degradation: list[DegradationSample] = field(default_factory=list)
    #: degradation images whose distortion the question has no answer for, per source
    left_out: dict[str, int] = field(default_factory=dict)
    #: entries of a meta JSON kept as the release keeps them although the reward can never match them, per source
    kept_as_released: dict[str, dict[str, int]] = field(default_factory=dict)

    def rows(self) -> dict[str, list]:
        """Columns of the trl dataset; each row is one prompt of either task.

        A degradation prompt's expected answer travels as JSON text (``answer``), so that its values reach the
        reward exactly as the meta file holds them (a JSON null, a number), whatever their type.
        """
        columns: dict[str, list] = {k: [] for k in ("path", "task", "mos", "answer", "image_id", "dataset", "resize")}
        for row in self.score:
            for key in columns:
                columns[key].append(row.get(key))
        for sample in self.degradation:
            answer = json.dumps({"distortion_class": sample.distortion_class, "severity": sample.severity})
            values = {"path": str(sample.path), "task": "degradation", "mos": None, "image_id": sample.image_id,
                      "answer": answer, "dataset": "degradation", "resize": sample.resize}
            for key in columns:
                columns[key].append(values[key])
        return columns

    def counts(self) -> dict[str, Any]:
        return {"score": len(self.score), "degradation": len(self.degradation),
                "degradation_left_out": dict(self.left_out),
                "degradation_kept_as_released": dict(self.kept_as_released)}


def _trl_reward(name: str, function: RewardFunction, options: dict[str, Any], block: int = 0):
    """Adapt a reward to trl's calling convention.

    The dataset's columns arrive as keywords. The reward sees only the
    completions of the tasks it applies to, with those tasks' labels; the
    others get None, which trl leaves out of the sum of rewards. With
    ``block`` > 0 the process's completions are scored in consecutive blocks of
    that many (one comparison batch each, as VisualQuality-R1 scores one GPU
    batch at a time); 0 scores them in one call.
    """
    tasks = reward_tasks(function)

    def reward(prompts, completions, task, mos, answer, image_id, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        result: list[float | None] = [None] * len(texts)
        size = block or len(texts)
        for start in range(0, len(texts), size):
            chosen = [i for i in range(start, min(start + size, len(texts))) if task[i] in tasks]
            if not chosen:
                continue
            labels = [mos[i] if task[i] == "score" else json.loads(answer[i]) for i in chosen]
            values = function([texts[i] for i in chosen], labels, [image_id[i] for i in chosen], **options)
            for i, value in zip(chosen, values, strict=True):
                result[i] = value
        return result

    reward.__name__ = name  # trl logs each reward under its function's name
    return reward


def _load_images(batch: dict[str, list], style: str) -> dict[str, list]:
    """Decode lazily, in the data loader, through iqabench's loader (8-bit RGB, EXIF-safe), then the input's
    resize (``resize``: a ``[shorter_side, max_side]`` pair or None, from the suite's inputs)."""
    return {
        "prompt": [training_prompt(style, task) for task in batch["task"]],
        "image": [resized(load_image(path), resize) for path, resize in zip(batch["path"], batch["resize"])],
        **{key: batch[key] for key in ("task", "mos", "answer", "image_id", "dataset")},
    }


def resized(image: Image.Image, resize: Sequence[int | None] | None) -> Image.Image:
    if not resize:
        return image
    from iqabench.api import Resize

    return Resize(shorter_side=resize[0], max_side=resize[1])(image)


def resized_size(size: tuple[int, int], resize: Sequence[int | None] | None) -> tuple[int, int]:
    """The size :func:`resized` gives an image of ``size``, without decoding it (the same arithmetic)."""
    if not resize:
        return size
    width, height = size
    shorter_side, max_side = resize
    scale = shorter_side / min(width, height) if shorter_side else 1.0
    if max_side and max(width, height) * scale > max_side:
        scale = max_side / max(width, height)
    if scale == 1.0:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def visual_tokens(width: int, height: int, min_pixels: int, max_pixels: int) -> int:
    """Qwen2.5-VL's visual tokens for an image: its qwen-vl-utils size, one token per 28 x 28 pixels."""
    fitted = qwen_vl_size(width, height, min_pixels, max_pixels)
    return fitted[0] * fitted[1] // PIXELS_PER_VISUAL_TOKEN


def text_tokens(processor, style: str, task: str) -> int:
    """Tokens of a training prompt without its image: the chat template's text, the image placeholder excluded.

    The prompt as trl renders it: the conversation of :func:`training_prompt` with the image first in the user
    turn, the assistant turn opened.
    """
    conversation = training_prompt(style, task)
    messages = [
        {"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} if m["role"] == "system" else
        {"role": m["role"], "content": [{"type": "image"}, {"type": "text", "text": m["content"]}]}
        for m in conversation
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    placeholder = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    return len(ids) - ids.count(placeholder)


class DatasetBatchSampler:
    """trl's ``RepeatSampler`` order, with every block of ``block`` prompts drawn from one dataset.

    VisualQuality-R1's ``RepeatRandomSampler`` fills each GPU's batch from one dataset chosen at random among
    those with enough unused images left, so its fidelity reward compares images of one dataset only; a dataset
    with fewer images left than a batch is done for the epoch. Here a block is one comparison batch
    (``reward_batch_images``); blocks are gathered into trl's generation batches of ``batch_size`` prompts, each
    prompt repeated ``mini_repeat_count`` times (its generations), each generation batch ``repeat_count`` times.
    """

    def __init__(self, datasets: Sequence[str], *, block: int, mini_repeat_count: int, batch_size: int,
                 repeat_count: int = 1, seed: int = 0) -> None:
        self.by_dataset: dict[str, list[int]] = {}
        for index, name in enumerate(datasets):
            self.by_dataset.setdefault(name, []).append(index)
        self.block, self.mini_repeat_count, self.batch_size, self.repeat_count = (
            block, mini_repeat_count, batch_size, repeat_count)
        self.generator = random.Random(seed)

    def _blocks_per_epoch(self) -> int:
        return sum(len(indices) // self.block for indices in self.by_dataset.values())

    def __len__(self) -> int:
        batches = self._blocks_per_epoch() * self.block // self.batch_size
        return batches * self.batch_size * self.mini_repeat_count * self.repeat_count

    def __iter__(self):
        remaining = {name: self.generator.sample(indices, len(indices)) for name, indices in self.by_dataset.items()}
        blocks = []
        while True:
            names = sorted(name for name, indices in remaining.items() if len(indices) >= self.block)
            if not names:
                break
            name = self.generator.choice(names)
            blocks.append(remaining[name][: self.block])
            remaining[name] = remaining[name][self.block :]
        prompts = [index for block in blocks for index in block]
        for start in range(0, len(prompts) - self.batch_size + 1, self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index


class GRPO(Trainer):
    """Q-Insight's GRPO of a Qwen2.5-VL model: score regression and degradation perception (RACT step 1)."""

    name = "grpo"
    model = "q-insight"
    uses_all_processes = True
    applies_resize = True

    def __init__(
        self,
        *,
        preset: str = "q-insight",
        rewards: Sequence[str] | None = None,
        reward_options: dict[str, dict[str, Any]] | None = None,
        reward_weights: Sequence[float] | None = None,
        prompt: str | None = None,
        score_datasets: Sequence[str] | None = None,
        degradation_datasets: Sequence[str] = (),
        degradation_data: str | None = None,
        degradation_ratio: float | None = None,
        distortion_classes: dict[str, str] | None = None,
        num_generations: int | None = None,
        beta: float | None = None,
        loss_type: str = "grpo",
        epsilon: float = 0.2,
        use_bias_correction_kl: bool = False,
        learning_rate: float | None = None,
        min_learning_rate: float | None = None,
        num_train_epochs: float = 10,
        batch_size: int | None = None,
        per_device_train_batch_size: int | None = None,
        max_steps: int | None = None,
        max_completion_length: int | None = None,
        max_prompt_length: int | None = None,
        one_dataset_batches: bool | None = None,
        reward_batch_images: int | None = None,
        temperature: float = 1.0,
        top_k: int = 50,
        top_p: float = 1.0,
        min_pixels: int = 3136,
        max_pixels: int = 12845056,
        use_lora: bool = False,
        lora_r: int = 16,
        lora_alpha: int = 32,
        lora_dropout: float = 0.05,
        lora_target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
        bf16: bool | str = "auto",
        gradient_checkpointing: bool = True,
        deepspeed: str | None = None,
        save_steps: int = 200,
        save_total_limit: int | None = 2,
        logging_steps: int = 1,
        resume: bool = True,
    ) -> None:
        """Options left at None take the preset's value (:data:`PRESETS`); ``max_prompt_length`` 0 and
        ``reward_batch_images`` 0 mean no limit and one comparison batch per process."""
        if preset not in PRESETS:
            raise IQABenchError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
        self.preset = preset
        given = dict(rewards=rewards, prompt=prompt, num_generations=num_generations, beta=beta,
                     learning_rate=learning_rate, min_learning_rate=min_learning_rate, batch_size=batch_size,
                     per_device_train_batch_size=per_device_train_batch_size,
                     max_completion_length=max_completion_length, max_prompt_length=max_prompt_length,
                     one_dataset_batches=one_dataset_batches, reward_batch_images=reward_batch_images)
        for key, value in given.items():
            setattr(self, key, PRESETS[preset][key] if value is None else value)
        self.rewards = tuple(self.rewards)
        self.reward_options = dict(reward_options or {})
        self.reward_weights = None if reward_weights is None else list(reward_weights)
        self.score_datasets = None if score_datasets is None else tuple(score_datasets)
        self.degradation_datasets = tuple(degradation_datasets)
        self.degradation_data = degradation_data
        self.degradation_ratio = degradation_ratio
        self.distortion_classes = None if distortion_classes is None else dict(distortion_classes)
        self.loss_type = loss_type
        self.epsilon = epsilon
        self.use_bias_correction_kl = use_bias_correction_kl
        self.num_train_epochs = num_train_epochs
        self.max_steps = max_steps
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.use_lora = use_lora
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_target_modules = tuple(lora_target_modules)
        self.bf16 = bf16
        self.gradient_checkpointing = gradient_checkpointing
        self.deepspeed = deepspeed
        self.save_steps = save_steps
        self.save_total_limit = save_total_limit
        self.logging_steps = logging_steps
        self.resume = resume

    # -- checks that run before anything is loaded -------------------------------------------------

    def check(self, datasets: Sequence[TrainingSet]) -> list[tuple[str, RewardFunction]]:
        """Fail on bad settings and data before any model is loaded; return the rewards."""
        check_training_sets(datasets)
        rewards = [(name, get_reward(name)) for name in self.rewards]
        unknown = set(self.reward_options) - set(self.rewards)
        if unknown:
            raise IQABenchError(
                f"reward_options name {', '.join(sorted(unknown))}, which are not among the rewards in use "
                f"({', '.join(self.rewards)})."
            )
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise IQABenchError(
                f"reward_weights has {len(self.reward_weights)} values for {len(self.rewards)} rewards; give one each."
            )
        known = self.deepspeed in DEEPSPEED_CONFIGS
        if self.deepspeed is not None and not known and not Path(self.deepspeed).is_file():
            raise IQABenchError(
                f"deepspeed={self.deepspeed!r} is neither {' nor '.join(DEEPSPEED_CONFIGS)} nor an existing "
                "config file."
            )
        if self.loss_type not in LOSS_TYPES:
            raise IQABenchError(
                f"loss_type {self.loss_type!r} is not one of {', '.join(LOSS_TYPES)} (Q-Insight's is grpo)."
            )
        check_ratio(self.degradation_ratio)
        if self.reward_batch_images < 0 or self.max_prompt_length < 0:
            raise IQABenchError("reward_batch_images and max_prompt_length must be 0 (no limit) or positive.")
        block = self.reward_batch_images * self.num_generations
        if block and self.per_device_train_batch_size % block:
            raise IQABenchError(
                f"per_device_train_batch_size {self.per_device_train_batch_size} is not a multiple of "
                f"reward_batch_images x num_generations = {block}: a comparison batch must not be split between "
                "processes (VisualQuality-R1: 48 = 8 images x 6 generations)."
            )
        if self.one_dataset_batches and not self.reward_batch_images:
            raise IQABenchError("one_dataset_batches needs reward_batch_images: the number of images of a batch "
                                "drawn from one dataset (VisualQuality-R1: 8).")
        names = {d.name for d in datasets}
        for option, listed in (("score_datasets", self.score_datasets or ()),
                               ("degradation_datasets", self.degradation_datasets)):
            missing = sorted(set(listed) - names)
            if missing:
                raise IQABenchError(
                    f"{option} names {', '.join(missing)}, which are not training datasets "
                    f"({', '.join(sorted(names))})."
                )
        if self.degradation_data:
            resolve_data_path(self.degradation_data, [d.root.parent for d in datasets])
        for training_set in datasets:
            if training_set.name in self.degradation_datasets:
                self._record_samples(training_set)
        if self.degradation_datasets or self.degradation_data:
            training_prompt(self.prompt, "degradation")
            for task in ("score", "degradation"):
                if not any(task in reward_tasks(function) for _, function in rewards):
                    raise IQABenchError(
                        f"no reward applies to the {task} task; add {'q_insight_' + task} to rewards."
                    )
        training_prompt(self.prompt)
        return rewards

    def gradient_accumulation_steps(self, num_processes: int) -> int:
        """``batch_size`` completions per optimiser step = per-device batch x accumulation x processes."""
        return accumulation_steps(self.batch_size, self.per_device_train_batch_size, num_processes)

    def prompts(self, datasets: Sequence[TrainingSet], seed: int = 0) -> Prompts:
        """Every prompt of one epoch: score prompts of ``score_datasets``, degradation prompts mixed in."""
        score_names = set(self.score_datasets) if self.score_datasets is not None else {d.name for d in datasets}
        prompts = Prompts()
        for training_set in datasets:
            if training_set.name in score_names:
                resize = resize_pair(training_set)
                prompts.score.extend(
                    {"path": str(training_set.root / r.image), "task": "score", "mos": float(r.mos),
                     "image_id": f"{training_set.name}/{r.image}", "dataset": training_set.name, "resize": resize}
                    for r in training_set.records
                )
        samples: list[DegradationSample] = []
        for training_set in datasets:
            if training_set.name in self.degradation_datasets:
                found, left_out = self._record_samples(training_set)
                samples.extend(found)
                prompts.left_out[training_set.name] = left_out
        if self.degradation_data:
            path = resolve_data_path(self.degradation_data, [d.root.parent for d in datasets])
            found, left_out = read_degradation_data(path, self._classes())
            samples.extend(found)
            if isinstance(left_out, dict):  # a meta JSON: everything kept, as the release keeps it
                prompts.kept_as_released[str(path)] = left_out
            else:
                prompts.left_out[str(path)] = left_out
        prompts.degradation = mix(samples, len(prompts.score), self.degradation_ratio, seed)
        if not prompts.score:
            raise IQABenchError("no score prompt: score_datasets leaves no training dataset for the score task.")
        return prompts

    def _classes(self) -> dict[str, str]:
        return {**DEFAULT_DISTORTION_CLASSES, **(self.distortion_classes or {})}

    def _record_samples(self, training_set: TrainingSet) -> tuple[list[DegradationSample], int]:
        found, left_out = samples_from_records(training_set, self._classes())
        if not found:
            raise IQABenchError(
                f"dataset {training_set.name!r} gives no degradation prompt: its records carry no distortion of the "
                "classes noise, compression, blur or darken (KADID-10k and synthetic do; see docs/training.md)."
            )
        return found, left_out

    # -- training ------------------------------------------------------------------------------------

    def train(
        self,
        model_options: dict[str, Any],
        datasets: Sequence[TrainingSet],
        out_dir: Path,
        *,
        seed: int = 0,
        device: str = "cpu",
    ) -> dict[str, Any]:
        out_dir = Path(out_dir)
        rewards = self.check(datasets)
        prompts = self.prompts(datasets, seed)
        for source, count in prompts.left_out.items():
            if count:
                log.info("grpo: %d images of %s have a distortion outside the degradation question's classes and "
                         "are left out of that task", count, source)
        base = resolve_base_checkpoint(model_options, out_dir, seed)
        lengths = self.check_prompt_lengths(base, prompts)
        select_device(device)
        provenance = {**self._provenance(base, datasets, prompts, seed), "prompt_tokens": lengths}
        trainer = self._build_trainer(base, rewards, prompts, out_dir, provenance, seed=seed, device=device)
        provenance["effective"] = effective_settings(trainer)
        run_dir = out_dir / "trainer"
        resume = self.resume and any(run_dir.glob("checkpoint-*"))
        if resume:
            log.info("resuming GRPO from the last checkpoint under %s", run_dir)
        trainer.train(resume_from_checkpoint=True if resume else None)
        final = out_dir / "final"
        self._save_final(trainer, final)
        if trainer.accelerator.is_main_process:
            write_provenance(final, provenance)
        return {"checkpoint": str(final)}

    def check_prompt_lengths(self, base: str, prompts: Prompts) -> dict[str, Any]:
        """The longest prompt of each task in tokens; refuse one longer than ``max_prompt_length``.

        Q-Insight's trainer cuts a longer prompt's ids to the last ``max_prompt_length`` but generates from the
        whole prompt and slices the completion at the cut length (bytedance/Q-Insight @08308fd,
        ``grpo_trainer.py`` lines 510-523), so it would train on prompt tokens taken for completion tokens. The
        length is the prompt's text tokens (the checkpoint's own tokenizer and chat template) plus the image's
        visual tokens (Qwen2.5-VL: one per 28 x 28 pixels of its qwen-vl-utils size within ``min_pixels`` ..
        ``max_pixels``), read from each image's header and the suite's input resize, nothing decoded.
        """
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(base)
        text = {task: text_tokens(processor, self.prompt, task) for task in ("score", "degradation")
                if task == "score" or prompts.degradation}
        longest: dict[str, tuple[int, str]] = {}
        sizes: dict[tuple[str, Any], tuple[int, int]] = {}
        rows = prompts.rows()
        for path, task, resize in zip(rows["path"], rows["task"], rows["resize"]):
            with Image.open(path) as image:
                size = resized_size(image.size, resize)
            tokens = text[task] + visual_tokens(*size, self.min_pixels, self.max_pixels)
            if tokens > longest.get(task, (-1, ""))[0]:
                longest[task] = (tokens, f"{path} ({size[0]}x{size[1]} as the model gets it)")
            sizes[(task, size)] = size
        report = {task: {"text_tokens": text[task], "longest": tokens, "image": where}
                  for task, (tokens, where) in longest.items()}
        for task, (tokens, where) in longest.items():
            if self.max_prompt_length and tokens > self.max_prompt_length:
                raise IQABenchError(
                    f"a {task} prompt has {tokens} tokens ({text[task]} of text, the rest visual: {where}), more than "
                    f"max_prompt_length {self.max_prompt_length}. Q-Insight's release cuts such a prompt and then "
                    "trains on misaligned tokens; give this model the images at the size its release used (the "
                    "suite's `inputs`, e.g. KonIQ resolution 512x384, SPAQ shorter side 512), lower max_pixels, or "
                    "set max_prompt_length: 0 to train on the whole prompt (not the release's recipe)."
                )
        return report

    def _provenance(self, base: str, datasets: Sequence[TrainingSet], prompts: Prompts, seed: int) -> dict[str, Any]:
        return {
            "trainer": self.name,
            "trainer_config": self.config(),
            "base_checkpoint": base,
            "datasets": datasets_provenance(datasets),
            "prompts": prompts.counts(),
            "seed": seed,
        }

    def _build_trainer(self, base, rewards, prompts: Prompts, out_dir: Path, provenance: dict[str, Any], *,
                       seed: int, device: str):
        from datasets import Dataset
        from transformers import AutoProcessor, TrainerCallback
        from trl import GRPOConfig, GRPOTrainer

        bf16 = use_bf16(self.bf16, device)
        train_dataset = Dataset.from_dict(prompts.rows()).with_transform(partial(_load_images, style=self.prompt))
        processor = AutoProcessor.from_pretrained(base)
        processor.image_processor.size = {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}
        args = GRPOConfig(
            **common_args(
                out_dir / "trainer", device=device, bf16=bf16, gradient_checkpointing=self.gradient_checkpointing,
                deepspeed=deepspeed_config_file(self.deepspeed), save_steps=self.save_steps,
                save_total_limit=self.save_total_limit, seed=seed,
            ),
            num_generations=self.num_generations,
            beta=self.beta,
            loss_type=self.loss_type,
            epsilon=self.epsilon,
            learning_rate=self.learning_rate,
            num_train_epochs=self.num_train_epochs,
            max_steps=self.max_steps if self.max_steps is not None else -1,
            per_device_train_batch_size=self.per_device_train_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps(launched_processes()),
            max_completion_length=self.max_completion_length,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            reward_weights=self.reward_weights,
            model_init_kwargs={"dtype": "bfloat16" if bf16 else "float32"},
            logging_steps=self.logging_steps,
            **kl_options(GRPOConfig, self.use_bias_correction_kl),
        )
        peft_config = None
        if self.use_lora:
            from peft import LoraConfig

            peft_config = LoraConfig(
                r=self.lora_r,
                lora_alpha=self.lora_alpha,
                lora_dropout=self.lora_dropout,
                target_modules=list(self.lora_target_modules),
                task_type="CAUSAL_LM",
            )

        class ProvenanceInCheckpoints(TrainerCallback):
            """Every ``checkpoint-N`` says what produced it, not only the final folder."""

            def on_save(self, args, state, control, **kwargs):
                if state.is_world_process_zero:
                    write_provenance(Path(args.output_dir) / f"checkpoint-{state.global_step}", provenance)

        trainer_cls = with_iqabench_schedule_and_resume(GRPOTrainer, self.min_learning_rate)
        if self.one_dataset_batches:
            trainer_cls = with_dataset_batches(trainer_cls, train_dataset["dataset"], self.reward_batch_images, seed)
        block = self.reward_batch_images * self.num_generations
        substitutes = random.Random(seed)  # VisualQuality-R1's random substitutes, reproducible under the run's seed
        return trainer_cls(
            model=base,
            reward_funcs=[_trl_reward(n, f, {**_injected(f, rng=substitutes), **self.reward_options.get(n, {})},
                                      block) for n, f in rewards],
            args=args,
            train_dataset=train_dataset,
            processing_class=processor,
            peft_config=peft_config,
            callbacks=[ProvenanceInCheckpoints()],
        )

    def _save_final(self, trainer, final: Path) -> None:
        """A plain model folder: LoRA adapters are merged so the scoring plugins load it like any checkpoint."""
        if self.use_lora:
            merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
            if trainer.accelerator.is_main_process:
                merged.save_pretrained(final)
        else:
            trainer.save_model(str(final))
        save_processor(trainer, final)


def _injected(function: RewardFunction, **values: Any) -> dict[str, Any]:
    """The keyword arguments among ``values`` that ``function`` accepts."""
    import inspect

    parameters = inspect.signature(function).parameters
    return {key: value for key, value in values.items() if key in parameters}


def kl_options(config_cls: type, use_bias_correction_kl: bool) -> dict[str, Any]:
    """``use_bias_correction_kl`` for trl versions that have it (1.x, default True: the KL times the importance
    ratio); older trl adds the plain k3 KL, as Q-Insight and VisualQuality-R1 do, and has no such field."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    return {"use_bias_correction_kl": use_bias_correction_kl} if "use_bias_correction_kl" in fields else {}


def with_dataset_batches(trainer_cls: type, datasets: Sequence[str], block: int, seed: int) -> type:
    """``trainer_cls`` drawing its prompts with :class:`DatasetBatchSampler` (VisualQuality-R1's batches)."""
    names = list(datasets)

    class OneDatasetBatches(trainer_cls):
        def _get_train_sampler(self, dataset=None):
            return DatasetBatchSampler(
                names, block=block, mini_repeat_count=self.num_generations,
                batch_size=self.args.generation_batch_size // self.num_generations,
                repeat_count=self.num_iterations * self.args.steps_per_generation, seed=seed,
            )

    OneDatasetBatches.__name__ = trainer_cls.__name__
    return OneDatasetBatches


def _reward_names(trainer) -> list[str]:
    """trl's names of the reward functions (older trl versions keep only the functions)."""
    names = getattr(trainer, "reward_func_names", None)
    return list(names) if names else [getattr(f, "__name__", f"reward_{i}") for i, f in enumerate(trainer.reward_funcs)]


def effective_settings(trainer) -> dict[str, Any]:
    """What trl will actually do, read back from the built trainer (not from our options)."""
    args, generation = trainer.args, trainer.generation_config
    weights = [float(w) for w in trainer.reward_weights.tolist()]
    return {
        "loss_type": args.loss_type,
        "advantage_scaling": getattr(args, "scale_rewards", None),
        "epsilon": args.epsilon,
        "beta": args.beta,
        # False (or absent, in trl before 1.x): the plain k3 KL per token, as both releases add it
        "use_bias_correction_kl": getattr(args, "use_bias_correction_kl", False),
        "num_generations": args.num_generations,
        "num_iterations": args.num_iterations,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "processes": trainer.accelerator.num_processes,
        "completions_per_optimiser_step": (
            args.per_device_train_batch_size * args.gradient_accumulation_steps * trainer.accelerator.num_processes
        ),
        "learning_rate": args.learning_rate,
        "rollout_sampling": {
            key: getattr(generation, key)
            for key in ("do_sample", "temperature", "top_k", "top_p", "min_p", "repetition_penalty", "max_new_tokens")
        },
        "reward_weights": dict(zip(_reward_names(trainer), weights, strict=True)),
        "bf16": args.bf16,
        "gradient_checkpointing": args.gradient_checkpointing,
        "multi_objective_aggregation": getattr(args, "multi_objective_aggregation", None),  # newer trl only
    }
