"""Two changes to a transformers/trl trainer class that the paper's recipe and resuming need.

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
