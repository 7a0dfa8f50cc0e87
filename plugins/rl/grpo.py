"""The ``grpo`` trainer: Q-Insight's multi-task GRPO of a Qwen2.5-VL model, through trl.

Two tasks, as Q-Insight trains them (paper section 5.1): score regression
(each training image with Q-Insight's system prompt and score question, or
VisualQuality-R1's question) and degradation perception (images with a known
distortion, asked for its class and severity; :mod:`.degradation`). trl samples
``num_generations`` completions per prompt and the rewards of
:mod:`iqabench_plugins.rl.rewards` score them against the prompt's label.
Defaults are the paper's and the release's: 8 generations, KL beta 1e-3,
AdamW at 1e-6 decaying linearly to 1e-9, 10 epochs, 128 completions per
optimiser step, the loss averaged per sequence then over the batch, rollouts
sampled at temperature 1 with top-k 50 and top-p 1 (docs/fidelity.md).

Multi-GPU runs go through accelerate (``accelerate launch -m iqabench train``);
``deepspeed="zero2"|"zero3"`` picks one of the DeepSpeed configs shipped next
to this file. Training resumes from the newest ``checkpoint-N`` under
``out_dir/trainer``; the model and processor are saved into ``out_dir/final``
with ``iqabench_provenance.json`` beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

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

from iqabench.run.distributed import launched_processes
from iqabench.errors import CheckpointError, IQABenchError
from iqabench.scoring.images import load_image
from iqabench.contracts.trainer import Trainer, TrainingSet

log = logging.getLogger(__name__)

DEEPSPEED_CONFIGS = {name: Path(__file__).with_name(f"deepspeed_{name}.json") for name in ("zero2", "zero3")}
PROMPTS = ("q-insight", "visualquality")
#: trl loss normalisations; "grpo" is Q-Insight's: each sequence's token mean, then the batch mean
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


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

    def rows(self) -> dict[str, list]:
        """Columns of the trl dataset; each row is one prompt of either task."""
        columns: dict[str, list] = {k: [] for k in ("path", "task", "mos", "distortion_class", "severity", "image_id")}
        for row in self.score:
            for key in columns:
                columns[key].append(row.get(key))
        for sample in self.degradation:
            values = {"path": str(sample.path), "task": "degradation", "mos": None, "image_id": sample.image_id,
                      "distortion_class": sample.distortion_class, "severity": sample.severity}
            for key in columns:
                columns[key].append(values[key])
        return columns

    def counts(self) -> dict[str, Any]:
        return {"score": len(self.score), "degradation": len(self.degradation),
                "degradation_left_out": dict(self.left_out)}


def _trl_reward(name: str, function: RewardFunction, options: dict[str, Any]):
    """Adapt a reward to trl's calling convention.

    The dataset's columns arrive as keywords. The reward sees only the
    completions of the tasks it applies to, with those tasks' labels; the
    others get None, which trl leaves out of the sum of rewards.
    """
    tasks = reward_tasks(function)

    def reward(prompts, completions, task, mos, distortion_class, severity, image_id, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        chosen = [i for i, t in enumerate(task) if t in tasks]
        result: list[float | None] = [None] * len(texts)
        if chosen:
            labels = [mos[i] if task[i] == "score" else {"distortion_class": distortion_class[i],
                                                         "severity": severity[i]} for i in chosen]
            values = function([texts[i] for i in chosen], labels, [image_id[i] for i in chosen], **options)
            for i, value in zip(chosen, values, strict=True):
                result[i] = value
        return result

    reward.__name__ = name  # trl logs each reward under its function's name
    return reward


def _load_images(batch: dict[str, list], style: str) -> dict[str, list]:
    """Decode lazily, in the data loader, through iqabench's loader (8-bit RGB, EXIF-safe)."""
    return {
        "prompt": [training_prompt(style, task) for task in batch["task"]],
        "image": [load_image(path) for path in batch["path"]],
        **{key: batch[key] for key in ("task", "mos", "distortion_class", "severity", "image_id")},
    }


class GRPO(Trainer):
    """Q-Insight's GRPO of a Qwen2.5-VL model: score regression and degradation perception (RACT step 1)."""

    name = "grpo"
    model = "q-insight"
    uses_all_processes = True

    def __init__(
        self,
        *,
        rewards: Sequence[str] = ("q_insight_score", "q_insight_degradation", "q_insight_format"),
        reward_options: dict[str, dict[str, Any]] | None = None,
        reward_weights: Sequence[float] | None = None,
        prompt: str = "q-insight",
        score_datasets: Sequence[str] | None = None,
        degradation_datasets: Sequence[str] = (),
        degradation_data: str | None = None,
        degradation_ratio: float | None = None,
        distortion_classes: dict[str, str] | None = None,
        num_generations: int = 8,
        beta: float = 1e-3,
        loss_type: str = "grpo",
        epsilon: float = 0.2,
        learning_rate: float = 1e-6,
        min_learning_rate: float = 1e-9,
        num_train_epochs: float = 10,
        batch_size: int = 128,
        per_device_train_batch_size: int = 8,
        max_steps: int | None = None,
        max_completion_length: int = 256,
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
        self.rewards = tuple(rewards)
        self.reward_options = dict(reward_options or {})
        self.reward_weights = None if reward_weights is None else list(reward_weights)
        self.prompt = prompt
        self.score_datasets = None if score_datasets is None else tuple(score_datasets)
        self.degradation_datasets = tuple(degradation_datasets)
        self.degradation_data = degradation_data
        self.degradation_ratio = degradation_ratio
        self.distortion_classes = None if distortion_classes is None else dict(distortion_classes)
        self.num_generations = num_generations
        self.beta = beta
        self.loss_type = loss_type
        self.epsilon = epsilon
        self.learning_rate = learning_rate
        self.min_learning_rate = min_learning_rate
        self.num_train_epochs = num_train_epochs
        self.batch_size = batch_size
        self.per_device_train_batch_size = per_device_train_batch_size
        self.max_steps = max_steps
        self.max_completion_length = max_completion_length
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
        if self.deepspeed is not None and self.deepspeed not in DEEPSPEED_CONFIGS and not Path(self.deepspeed).is_file():
            raise IQABenchError(
                f"deepspeed={self.deepspeed!r} is neither {' nor '.join(DEEPSPEED_CONFIGS)} nor an existing config file."
            )
        if self.loss_type not in LOSS_TYPES:
            raise IQABenchError(
                f"loss_type {self.loss_type!r} is not one of {', '.join(LOSS_TYPES)} (Q-Insight's is grpo)."
            )
        check_ratio(self.degradation_ratio)
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
                prompts.score.extend(
                    {"path": str(training_set.root / r.image), "task": "score", "mos": float(r.mos),
                     "image_id": f"{training_set.name}/{r.image}"}
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
        select_device(device)
        provenance = self._provenance(base, datasets, prompts, seed)
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
        return trainer_cls(
            model=base,
            reward_funcs=[_trl_reward(n, f, self.reward_options.get(n, {})) for n, f in rewards],
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
