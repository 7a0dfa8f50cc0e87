"""The ``sft`` trainer: supervised fine-tuning of Qwen2.5-VL on score answers (Table 2's "SFT Qwen" row).

Every training image becomes one conversation: the image and Q-Insight's score question, answered with
``{"rating": MOS}`` (the MOS on [1, 5], two decimals, as the question asks); trl's ``SFTTrainer`` learns the
answer tokens (the prompt is masked, trl's default for prompt-completion data). The checkpoints load in the
``qwen-sft`` model. The paper publishes neither this baseline's format nor its hyper-parameters; the defaults are
Q-Align's SFT recipe for an MLLM scorer on KonIQ (Q-Future/Q-Align @14dfdff ``scripts/l1_koniq.sh``: 3 epochs,
learning rate 2e-5, weight decay 0, the vision tower trained), with iqabench's linear decay (docs/fidelity.md).
The images get the training set's input resize (the suite's ``inputs``) before the processor's own resize.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iqabench.api import Trainer, TrainingSet, launched_processes, load_image
from iqabench_plugins.mllm.prompts import Q_INSIGHT_SCORE_QUESTION
from iqabench_plugins.mllm.qwen_sft import sft_score_answer
from iqabench_plugins.rl.checkpoints import check_qwen_vl_checkpoint, datasets_provenance, write_provenance
from iqabench_plugins.rl.degradation import resize_pair
from iqabench_plugins.rl.grpo import check_training_sets, deepspeed_config_file, resized, resolve_base_checkpoint
from iqabench_plugins.rl.hf_trainer import (
    accumulation_steps,
    common_args,
    save_processor,
    select_device,
    use_bf16,
    with_iqabench_schedule_and_resume,
)

log = logging.getLogger(__name__)


def _load_batch(batch: dict[str, list]) -> dict[str, list]:
    return {
        "prompt": [[{"role": "user", "content": Q_INSIGHT_SCORE_QUESTION}] for _ in batch["path"]],
        "completion": [[{"role": "assistant", "content": target}] for target in batch["target"]],
        "image": [resized(load_image(path), resize) for path, resize in zip(batch["path"], batch["resize"])],
    }


class ScoreSFT(Trainer):
    """SFT of a Qwen2.5-VL on (image, score question) -> ``{"rating": MOS}``."""

    name = "sft"
    model = "qwen-sft"
    uses_all_processes = True
    applies_resize = True

    def __init__(
        self,
        *,
        learning_rate: float = 2e-5,
        min_learning_rate: float = 0.0,
        num_train_epochs: float = 3,
        batch_size: int = 64,
        per_device_train_batch_size: int = 8,
        max_steps: int | None = None,
        weight_decay: float = 0.0,
        train_vision: bool = True,
        min_pixels: int = 3136,
        max_pixels: int = 12845056,
        bf16: bool | str = "auto",
        gradient_checkpointing: bool = True,
        deepspeed: str | None = None,
        save_steps: int = 200,
        save_total_limit: int | None = 2,
        resume: bool = True,
    ) -> None:
        self.learning_rate = learning_rate
        self.min_learning_rate = min_learning_rate
        self.num_train_epochs = num_train_epochs
        self.batch_size = batch_size
        self.per_device_train_batch_size = per_device_train_batch_size
        self.max_steps = max_steps
        self.weight_decay = weight_decay
        self.train_vision = train_vision
        self.min_pixels = min_pixels
        self.max_pixels = max_pixels
        self.bf16 = bf16
        self.gradient_checkpointing = gradient_checkpointing
        self.deepspeed = deepspeed
        self.save_steps = save_steps
        self.save_total_limit = save_total_limit
        self.resume = resume

    def runtime_config(self) -> dict[str, Any]:
        return {"answer": 'the JSON {"rating": MOS}, two decimals', "loss": "cross-entropy on the answer tokens"}

    @staticmethod
    def rows(datasets: Sequence[TrainingSet]) -> dict[str, list]:
        """The SFT data: image path, answer, input resize; one row per training record."""
        rows: dict[str, list] = {"path": [], "target": [], "resize": []}
        for training_set in datasets:
            resize = resize_pair(training_set)
            for record in training_set.records:
                rows["path"].append(str(training_set.root / record.image))
                rows["target"].append(sft_score_answer(record.mos))
                rows["resize"].append(resize)
        return rows

    def train(self, model_options: dict[str, Any], datasets: Sequence[TrainingSet], out_dir: Path, *,
              seed: int = 0, device: str = "cpu") -> dict[str, Any]:
        out_dir = Path(out_dir)
        check_training_sets(datasets)
        accumulation = accumulation_steps(self.batch_size, self.per_device_train_batch_size, launched_processes())
        base = resolve_base_checkpoint(model_options, out_dir, seed)
        check_qwen_vl_checkpoint(base)
        select_device(device)
        trainer = self._build_trainer(base, self.rows(datasets), out_dir, seed, device, accumulation)
        resume = self.resume and any((out_dir / "trainer").glob("checkpoint-*"))
        trainer.train(resume_from_checkpoint=True if resume else None)
        final = out_dir / "final"
        trainer.save_model(str(final))
        save_processor(trainer, final)
        if trainer.accelerator.is_main_process:
            write_provenance(final, {"trainer": self.name, "trainer_config": self.config(), "base_checkpoint": base,
                                     "datasets": datasets_provenance(datasets), "seed": seed})
        return {"checkpoint": str(final)}

    def _build_trainer(self, base: str, rows: dict[str, list], out_dir: Path, seed: int, device: str,
                       accumulation: int):
        import torch
        from datasets import Dataset
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from trl import SFTConfig, SFTTrainer

        bf16 = use_bf16(self.bf16, device)
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.bfloat16 if bf16 else torch.float32)
        if not self.train_vision:
            for name, parameter in model.named_parameters():
                parameter.requires_grad = ".visual." not in f".{name}"
        processor = AutoProcessor.from_pretrained(base)
        processor.image_processor.size = {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}
        args = SFTConfig(
            **common_args(
                out_dir / "trainer", device=device, bf16=bf16, gradient_checkpointing=self.gradient_checkpointing,
                deepspeed=deepspeed_config_file(self.deepspeed), save_steps=self.save_steps,
                save_total_limit=self.save_total_limit, seed=seed,
            ),
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            num_train_epochs=self.num_train_epochs,
            max_steps=self.max_steps if self.max_steps is not None else -1,
            per_device_train_batch_size=self.per_device_train_batch_size,
            gradient_accumulation_steps=accumulation,
            max_length=None,
            logging_steps=1,
        )
        trainer_cls = with_iqabench_schedule_and_resume(SFTTrainer, self.min_learning_rate)
        dataset = Dataset.from_dict(rows).with_transform(_load_batch)
        return trainer_cls(model=model, args=args, train_dataset=dataset, processing_class=processor)
