"""The ``grpo`` trainer: Q-Insight-style GRPO of a Qwen2.5-VL model on IQA datasets, through trl.

Each training image becomes one prompt (Q-Insight's system prompt and score
question, or VisualQuality-R1's question); trl samples ``num_generations``
completions per prompt and the rewards of :mod:`iqabench_plugins.rl.rewards`
score them against the image's MOS on [1, 5]. Defaults are the paper's
(section 5.1): 8 generations, KL beta 1e-3, AdamW at 1e-6 decaying linearly to
1e-9, 10 epochs, 128 completions per optimiser step.

Multi-GPU runs go through accelerate (``accelerate launch -m iqabench train``);
``deepspeed="zero2"|"zero3"`` picks one of the DeepSpeed configs shipped next
to this file. Training resumes from the newest ``checkpoint-N`` under
``out_dir/trainer``; the model and processor are saved into ``out_dir/final``
with ``iqabench_provenance.json`` beside them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
from iqabench_plugins.rl.hf_trainer import (
    accumulation_steps,
    common_args,
    num_processes,
    save_processor,
    select_device,
    use_bf16,
    with_iqabench_schedule_and_resume,
)
from iqabench_plugins.rl.rewards import RewardFunction, get_reward

from iqabench.errors import CheckpointError, IQABenchError
from iqabench.images import load_image
from iqabench.trainer import Trainer, TrainingSet

log = logging.getLogger(__name__)

DEEPSPEED_CONFIGS = {name: Path(__file__).with_name(f"deepspeed_{name}.json") for name in ("zero2", "zero3")}
PROMPTS = ("q-insight", "visualquality")


def training_prompt(style: str) -> list[dict[str, str]]:
    """The conversation before the image; trl puts the image in front of the user's text."""
    if style == "q-insight":
        return [
            {"role": "system", "content": Q_INSIGHT_SYSTEM_PROMPT},
            {"role": "user", "content": Q_INSIGHT_SCORE_QUESTION},
        ]
    if style == "visualquality":
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


def _trl_reward(name: str, function: RewardFunction, options: dict[str, Any]):
    """Adapt a reward to trl's calling convention; the dataset's ``mos`` and ``image_id`` arrive as keywords."""

    def reward(prompts, completions, mos, image_id, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return function(texts, mos, image_id, **options)

    reward.__name__ = name  # trl logs each reward under its function's name
    return reward


def _load_images(batch: dict[str, list], prompt: list[dict[str, str]]) -> dict[str, list]:
    """Decode lazily, in the data loader, through iqabench's loader (8-bit RGB, EXIF-safe)."""
    return {
        "prompt": [prompt] * len(batch["path"]),
        "image": [load_image(path) for path in batch["path"]],
        "mos": batch["mos"],
        "image_id": batch["image_id"],
    }


class GRPO(Trainer):
    """GRPO of a Qwen2.5-VL model with Q-Insight's rewards (Li et al., 2025; RACT step 1)."""

    name = "grpo"
    model = "q-insight"
    uses_all_processes = True

    def __init__(
        self,
        *,
        rewards: Sequence[str] = ("q_insight_score", "q_insight_format"),
        reward_options: dict[str, dict[str, Any]] | None = None,
        reward_weights: Sequence[float] | None = None,
        prompt: str = "q-insight",
        num_generations: int = 8,
        beta: float = 1e-3,
        learning_rate: float = 1e-6,
        min_learning_rate: float = 1e-9,
        num_train_epochs: float = 10,
        batch_size: int = 128,
        per_device_train_batch_size: int = 8,
        max_steps: int | None = None,
        max_completion_length: int = 256,
        temperature: float = 1.0,
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
        self.num_generations = num_generations
        self.beta = beta
        self.learning_rate = learning_rate
        self.min_learning_rate = min_learning_rate
        self.num_train_epochs = num_train_epochs
        self.batch_size = batch_size
        self.per_device_train_batch_size = per_device_train_batch_size
        self.max_steps = max_steps
        self.max_completion_length = max_completion_length
        self.temperature = temperature
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
        training_prompt(self.prompt)
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
        return rewards

    def gradient_accumulation_steps(self, num_processes: int) -> int:
        """``batch_size`` completions per optimiser step = per-device batch x accumulation x processes."""
        return accumulation_steps(self.batch_size, self.per_device_train_batch_size, num_processes)

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
        base = resolve_base_checkpoint(model_options, out_dir, seed)
        select_device(device)
        trainer = self._build_trainer(base, rewards, datasets, out_dir, seed=seed, device=device)
        run_dir = out_dir / "trainer"
        resume = self.resume and any(run_dir.glob("checkpoint-*"))
        if resume:
            log.info("resuming GRPO from the last checkpoint under %s", run_dir)
        trainer.train(resume_from_checkpoint=True if resume else None)
        final = out_dir / "final"
        self._save_final(trainer, final)
        if trainer.accelerator.is_main_process:
            write_provenance(final, self._provenance(base, datasets, seed))
        return {"checkpoint": str(final)}

    def _provenance(self, base: str, datasets: Sequence[TrainingSet], seed: int) -> dict[str, Any]:
        return {
            "trainer": self.name,
            "trainer_config": self.config(),
            "base_checkpoint": base,
            "datasets": datasets_provenance(datasets),
            "seed": seed,
        }

    def _build_trainer(self, base, rewards, datasets, out_dir: Path, *, seed: int, device: str):
        from datasets import Dataset
        from transformers import AutoProcessor, TrainerCallback
        from trl import GRPOConfig, GRPOTrainer

        bf16 = use_bf16(self.bf16, device)
        rows = {"path": [], "mos": [], "image_id": []}
        for training_set in datasets:
            for record in training_set.records:
                rows["path"].append(str(training_set.root / record.image))
                rows["mos"].append(float(record.mos))
                rows["image_id"].append(f"{training_set.name}/{record.image}")
        train_dataset = Dataset.from_dict(rows).with_transform(
            partial(_load_images, prompt=training_prompt(self.prompt))
        )
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
            learning_rate=self.learning_rate,
            num_train_epochs=self.num_train_epochs,
            max_steps=self.max_steps if self.max_steps is not None else -1,
            per_device_train_batch_size=self.per_device_train_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps(num_processes()),
            max_completion_length=self.max_completion_length,
            temperature=self.temperature,
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
        provenance = self._provenance(base, datasets, seed)

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
