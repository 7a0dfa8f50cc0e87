"""What the ``grpo`` and ``ract`` trainers hand to transformers/trl, written once.

The settings both trainers share (device and precision, batch arithmetic,
checkpointing, seeds) and the final save live here, next to two changes to a
transformers/trl trainer class that the paper's recipe and resuming need:

* The schedule: the paper decays the learning rate linearly to 1e-9, but
  transformers' ``linear`` schedule ends at 0 and its warmup-stable-decay
  schedule wants the step count in advance. The scheduler is therefore built
  once the trainer knows its number of optimiser steps: transformers' WSD
  schedule with no warmup, no stable phase and a linear decay to the floor.
* Resuming: transformers 5 saves Qwen2.5-VL weights under their legacy names
  (``visual.*``, ``model.layers.*``) but ``Trainer._load_from_checkpoint`` loads
  them with a plain non-strict ``load_state_dict``, which silently loads
  nothing. Full-model checkpoints are read back through ``from_pretrained``,
  which maps the names, and copied in strictly. DeepSpeed, FSDP and LoRA
  checkpoints keep transformers' own path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iqabench.api import IQABenchError, launched_processes


def on_cpu(device: str) -> bool:
    return str(device) == "cpu"


def select_device(device: str) -> None:
    """Honour ``cuda:N`` in a single process: accelerate trains on the current CUDA device.

    Under ``accelerate launch`` each process already owns its GPU and the index is ignored.
    """
    if str(device).startswith("cuda:") and launched_processes() == 1:
        import torch

        torch.cuda.set_device(torch.device(device))


def use_bf16(setting: bool | str, device: str) -> bool:
    """``auto``: bfloat16 on a CUDA GPU that supports it (the authors' precision), float32 otherwise."""
    if setting != "auto":
        return bool(setting)
    import torch

    return not on_cpu(device) and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def accumulation_steps(batch_size: int, per_device: int, num_processes: int, prefix: str = "") -> int:
    """Gradient accumulation so that one optimiser step sees ``batch_size`` samples over all processes."""
    per_step = per_device * num_processes
    if batch_size % per_step:
        raise IQABenchError(
            f"{prefix}batch_size {batch_size} is not a multiple of {prefix}per_device_train_batch_size "
            f"{per_device} x {num_processes} process(es); change one of them."
        )
    return batch_size // per_step


def common_args(out_dir: Path, *, device: str, bf16: bool, gradient_checkpointing: bool,
                deepspeed: str | None, save_steps: int, save_total_limit: int | None, seed: int) -> dict[str, Any]:
    """Keyword arguments of ``GRPOConfig``/``SFTConfig`` that both trainers set alike."""
    return dict(
        output_dir=str(out_dir),
        bf16=bf16,
        use_cpu=on_cpu(device),
        gradient_checkpointing=gradient_checkpointing,
        deepspeed=deepspeed,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=save_total_limit,
        report_to="none",
        seed=seed,
        data_seed=seed,
        remove_unused_columns=False,
    )


def save_processor(trainer, final: Path) -> None:
    """The processor beside the saved model, without ``training_args.bin`` (a pickle; the provenance replaces it)."""
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(final)
        (final / "training_args.bin").unlink(missing_ok=True)


def with_iqabench_schedule_and_resume(base_cls: type, min_learning_rate: float) -> type:
    """A subclass of the trainer class ``base_cls`` (``GRPOTrainer``, ``SFTTrainer``) with both changes."""
    from transformers.optimization import get_wsd_schedule

    class IQABenchTrainer(base_cls):
        def create_scheduler(self, num_training_steps: int, optimizer=None):
            if self.lr_scheduler is None:
                self.lr_scheduler = get_wsd_schedule(
                    optimizer if optimizer is not None else self.optimizer,
                    num_warmup_steps=0,
                    num_decay_steps=num_training_steps,
                    num_stable_steps=0,
                    decay_type="linear",
                    min_lr_ratio=min_learning_rate / self.args.learning_rate,
                )
                self._created_lr_scheduler = True
            return self.lr_scheduler

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
            target = self.accelerator.unwrap_model(model if model is not None else self.model)
            folder = Path(resume_from_checkpoint)
            full_model = (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()
            if self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(target, "peft_config") or not full_model:
                super()._load_from_checkpoint(resume_from_checkpoint, model)
                return
            dtype = next(target.parameters()).dtype
            loaded = type(target).from_pretrained(folder, dtype=dtype)
            target.load_state_dict(loaded.state_dict())
            del loaded

    IQABenchTrainer.__name__ = f"IQABench{base_cls.__name__}"
    return IQABenchTrainer
