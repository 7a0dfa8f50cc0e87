"""The ``ract`` trainer: Reasoning-Aligned Cross-domain Training (paper section 3.4, appendix C).

Three steps, each run through :func:`iqabench.run.training.cached_step` (the
harness's one training path) in its own folder under ``out_dir``: a re-run
skips what has finished with the same settings, and an interrupted step
resumes in its ``.partial`` folder (GRPO and SFT from their last
``checkpoint-N``, the texts export line by line):

1. ``1-grpo/<dataset>/``: single-domain RL, the ``grpo`` trainer on each training dataset alone.
2. ``2-describe/<dataset>/``: label alignment. Each single-domain model, loaded
   as the ``q-insight`` model plugin, writes reasoning texts for its own
   dataset's training images (:func:`iqabench.reasoning.describe.describe`).
3. ``3-sft/``: cross-domain SFT (trl ``SFTTrainer``) of the single-domain model
   of ``score_dataset`` on the aligned image-text pairs of all datasets.
   The final model is written to ``out_dir/3-sft/final``.

What the SFT learns from (section 3.4, appendix C, Table A.4, Table 5): with
``labels="text"`` (the default, Table 5 rows 2 and 3, the RACT of Table 3)
every dataset contributes (image, "What is your overall assessment of the
quality of this picture?") -> reasoning text pairs and nothing else; the
description-to-score mapping is the one the single-domain model of
``score_dataset`` learnt by RL, from one annotator group. ``labels="text+score"``
(Table 5 row 1) adds, for ``score_dataset`` only (or every dataset with
``score_dataset="all"``), (image, Q-Insight score prompt) ->
``<think>`` reasoning ``</think><answer>{"rating": MOS}</answer>`` pairs.
``train_module`` is ``"vision+llm"`` (rows 1 and 3) or ``"vision"`` (row 2:
the vision encoder and its merger only).

Steps 1 and 2 do not depend on ``labels`` or ``train_module``: ``steps_dir``
lets the three rows of Table 5 share them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iqabench.api import (
    ImageToDescribe,
    IQABenchError,
    Trainer,
    TrainingSet,
    cached_step,
    create_model,
    describe,
    launched_processes,
    load_image,
    processes,
    read_texts,
)
from iqabench_plugins.mllm.parsing import extract_reasoning
from iqabench_plugins.mllm.prompts import (
    Q_INSIGHT_SCORE_QUESTION,
    Q_INSIGHT_SYSTEM_PROMPT,
)
from iqabench_plugins.rl.checkpoints import (
    check_qwen_vl_checkpoint,
    datasets_provenance,
    write_provenance,
)
from iqabench_plugins.rl.degradation import resize_pair
from iqabench_plugins.rl.grpo import GRPO, check_training_sets, deepspeed_config_file, resized
from iqabench_plugins.rl.hf_trainer import (
    accumulation_steps,
    common_args,
    save_processor,
    select_device,
    use_bf16,
    with_iqabench_schedule_and_resume,
)

log = logging.getLogger(__name__)

#: Table A.4, "Prompts for Quality Description Task"
RACT_DESCRIPTION_QUESTION = "What is your overall assessment of the quality of this picture?"
#: Table 5's "Label" and "Train Module" columns
LABELS = ("text", "text+score")
TRAIN_MODULES = ("vision+llm", "vision")
#: grpo options RACT sets itself for each single-domain run
_PER_DATASET_GRPO_OPTIONS = ("score_datasets",)


def score_completion(reasoning: str, mos: float) -> str:
    """Q-Insight's answer layout (the one its format reward asks for), with the ground-truth rating."""
    return f'<think>\n{reasoning}\n</think>\n<answer>\n{{"rating": {mos:.2f}}}\n</answer>'


def sft_pairs(
    texts_by_dataset: dict[str, list[dict[str, Any]]], score_datasets: Sequence[str]
) -> list[dict[str, Any]]:
    """The SFT rows: a description pair for every text, a score pair for texts of ``score_datasets``.

    ``score_datasets`` is empty with text labels (Table 5 rows 2 and 3).

    Each text row has ``path``, ``text`` and ``mos``; the single-domain model's
    own rating is not used, the score label is the dataset's MOS.
    """
    rows = []
    for dataset, texts in texts_by_dataset.items():
        for row in texts:
            resize = {"resize": row["resize"]} if row.get("resize") else {}  # the input resize, when there is one
            rows.append({"path": row["path"], "task": "describe", "target": row["text"], **resize})
            if dataset in score_datasets:
                rows.append({"path": row["path"], "task": "score", "target": score_completion(row["text"], row["mos"]),
                             **resize})
    return rows


def _conversation(task: str) -> list[dict[str, str]]:
    if task == "score":
        return [
            {"role": "system", "content": Q_INSIGHT_SYSTEM_PROMPT},
            {"role": "user", "content": Q_INSIGHT_SCORE_QUESTION},
        ]
    return [{"role": "user", "content": RACT_DESCRIPTION_QUESTION}]


def _load_sft_batch(batch: dict[str, list]) -> dict[str, list]:
    return {
        "prompt": [_conversation(task) for task in batch["task"]],
        "completion": [[{"role": "assistant", "content": target}] for target in batch["target"]],
        "image": [resized(load_image(path), resize) for path, resize in zip(batch["path"], batch["resize"])],
    }


class RACT(Trainer):
    """RACT: single-domain GRPO per dataset, reasoning-text label alignment, cross-domain SFT."""

    name = "ract"
    model = "ract"
    uses_all_processes = True
    applies_resize = True

    def __init__(
        self,
        *,
        grpo: dict[str, Any] | None = None,
        score_dataset: str | None = None,
        labels: str = "text",
        describe_seeds: Sequence[int] = (0,),
        describe_options: dict[str, Any] | None = None,
        describe_batch_size: int = 8,
        train_module: str = "vision+llm",
        steps_dir: str | None = None,
        sft_learning_rate: float = 1e-6,
        sft_min_learning_rate: float = 1e-9,
        sft_num_train_epochs: float = 1,
        sft_batch_size: int = 128,
        sft_per_device_train_batch_size: int = 8,
        sft_max_steps: int | None = None,
        bf16: bool | str = "auto",
        gradient_checkpointing: bool = True,
        deepspeed: str | None = None,
        save_steps: int = 200,
        save_total_limit: int | None = 2,
        resume: bool = True,
    ) -> None:
        self.grpo = dict(grpo or {})
        self.score_dataset = score_dataset
        self.labels = labels
        self.describe_seeds = tuple(describe_seeds)
        self.describe_options = dict(describe_options or {})
        self.describe_batch_size = describe_batch_size
        self.train_module = train_module
        self.steps_dir = steps_dir
        self.sft_learning_rate = sft_learning_rate
        self.sft_min_learning_rate = sft_min_learning_rate
        self.sft_num_train_epochs = sft_num_train_epochs
        self.sft_batch_size = sft_batch_size
        self.sft_per_device_train_batch_size = sft_per_device_train_batch_size
        self.sft_max_steps = sft_max_steps
        self.bf16 = bf16
        self.gradient_checkpointing = gradient_checkpointing
        self.deepspeed = deepspeed
        self.save_steps = save_steps
        self.save_total_limit = save_total_limit
        self.resume = resume

    def _grpo(self, dataset: str | None = None) -> GRPO:
        """The grpo trainer of one single-domain run: its degradation datasets are ``dataset`` itself or none."""
        fixed = [key for key in _PER_DATASET_GRPO_OPTIONS if key in self.grpo]
        if fixed:
            raise IQABenchError(
                f"ract's `grpo` options may not set {', '.join(fixed)}: RACT trains each dataset on its own."
            )
        options = {"resume": self.resume, "deepspeed": self.deepspeed, **self.grpo}
        if dataset is not None:
            listed = options.get("degradation_datasets", ())
            options["degradation_datasets"] = [dataset] if dataset in listed else []
        try:
            return GRPO(**options)
        except TypeError as exc:
            raise IQABenchError(f"ract's `grpo` options are not options of the grpo trainer: {exc}") from None

    def check(self, datasets: Sequence[TrainingSet]) -> list[str]:
        """Fail before step 1 on anything that would stop a later step; return the score datasets."""
        check_training_sets(datasets)
        for d in datasets:
            self._grpo(d.name).check([d])
        if self.train_module not in TRAIN_MODULES:
            raise IQABenchError(f"train_module {self.train_module!r} is not one of {', '.join(TRAIN_MODULES)}.")
        if self.labels not in LABELS:
            raise IQABenchError(f"labels {self.labels!r} is not one of {', '.join(LABELS)}.")
        if not self.describe_seeds:
            raise IQABenchError("describe_seeds is empty; give at least one seed for the reasoning texts.")
        names = [d.name for d in datasets]
        if len(set(names)) != len(names):
            raise IQABenchError(f"a dataset is named twice among the training datasets: {names}.")
        unknown = set(self.grpo.get("degradation_datasets", ())) - set(names)
        if unknown:
            raise IQABenchError(f"grpo.degradation_datasets names {', '.join(sorted(unknown))}, not training datasets.")
        if self.score_dataset is None:
            return names[:1]
        if self.score_dataset == "all":
            if self.labels != "text+score":
                raise IQABenchError(
                    "score_dataset 'all' means score labels from every dataset, which needs labels: text+score; "
                    "with text labels name the dataset whose single-domain model gives the scores."
                )
            return names
        if self.score_dataset not in names:
            raise IQABenchError(
                f"score_dataset {self.score_dataset!r} is not a training dataset; choose one of {', '.join(names)} "
                "(or 'all' with labels: text+score)."
            )
        return [self.score_dataset]

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
        score_datasets = self.check(datasets)
        steps = Path(self.steps_dir).expanduser() if self.steps_dir else out_dir
        single_domain = {
            d.name: self._single_domain_rl(model_options, d, steps / "1-grpo" / d.name, seed, device)
            for d in datasets
        }
        texts = {
            d.name: self._label_alignment(
                model_options, single_domain[d.name], d, steps / "2-describe" / d.name, device
            )
            for d in datasets
        }
        sft_base = single_domain[score_datasets[0]]
        score_labels = score_datasets if self.labels == "text+score" else []
        final = self._cross_domain_sft(sft_base, texts, score_labels, datasets, out_dir / "3-sft", seed, device)
        return {"checkpoint": final}

    # -- the three steps -----------------------------------------------------------------------------

    def _single_domain_rl(self, model_options, dataset: TrainingSet, folder: Path, seed: int, device: str) -> str:
        grpo = self._grpo(dataset.name)
        settings = {"step": "single-domain RL", "dataset": dataset.name, "records": len(dataset.records),
                    "model_options": model_options, "grpo": grpo.config(), "seed": seed}
        result = cached_step(folder, settings,
                             lambda partial: grpo.train(model_options, [dataset], partial, seed=seed, device=device),
                             replace_stale=False, what=f"RACT single-domain RL on {dataset.name}")
        return result.output["checkpoint"]

    def _reasoner(self, model_options: dict[str, Any], checkpoint: str, device: str):
        """The single-domain model as the ``q-insight`` plugin; sampling (seeded per text) unless told otherwise.

        Under ``accelerate launch`` each process loads it on its own GPU.
        """
        if launched_processes() > 1 and str(device) != "cpu":
            from accelerate import PartialState

            device = str(PartialState().device)
        options = {key: value for key, value in model_options.items() if key not in ("checkpoint", "subfolder")}
        options = {"do_sample": True, **options, **self.describe_options, "checkpoint": checkpoint}
        return create_model(GRPO.model, device=device, **options)

    def _label_alignment(self, model_options, checkpoint: str, dataset: TrainingSet, folder: Path, device: str):
        settings = {"step": "label alignment", "dataset": dataset.name, "records": len(dataset.records),
                    "checkpoint": checkpoint, "seeds": list(self.describe_seeds), "options": self.describe_options,
                    "model_options": model_options}

        def describe_share(partial: Path) -> dict[str, Any]:
            # each process describes its share of the images into a file of its own
            group = processes()
            reasoner = self._reasoner(model_options, checkpoint, device)
            records = dataset.records[group.index :: group.count]
            images = [ImageToDescribe(image=r.image, path=dataset.root / r.image, gt=r.mos) for r in records]
            name = "texts.jsonl" if group.index == 0 else f"texts-{group.index}.jsonl"
            describe(reasoner, images, self.describe_seeds, partial / name, dataset=dataset.name,
                     batch_size=self.describe_batch_size, progress=False, resize=dataset.resize)
            return {"texts": str(partial)}

        result = cached_step(folder, settings, describe_share, replace_stale=False,
                             what=f"RACT label alignment on {dataset.name}")
        texts_folder = Path(result.output["texts"])
        rows, seen = [], set()
        for texts_file in sorted(texts_folder.glob("texts*.jsonl"), key=lambda f: (f.name != "texts.jsonl", f.name)):
            for text in read_texts(texts_file):
                reasoning = (extract_reasoning(text.text) or "").strip() if text.text else ""
                if reasoning and text.gt is not None and (text.image, text.seed) not in seen:
                    seen.add((text.image, text.seed))
                    resize = resize_pair(dataset)
                    rows.append({"path": str(dataset.root / text.image), "text": reasoning, "mos": text.gt,
                                 **({"resize": resize} if resize else {})})
        if not rows:
            raise IQABenchError(
                f"the single-domain model of {dataset.name!r} wrote no reasoning text ({texts_folder}/texts*.jsonl); "
                "check that it was trained long enough to answer in the <think>...</think> format."
            )
        return rows

    def _cross_domain_sft(self, base: str, texts, score_datasets, datasets, folder: Path, seed: int,
                          device: str) -> str:
        """SFT of ``base`` on every dataset's description pairs, plus score pairs of ``score_datasets``."""
        settings = {"step": "cross-domain SFT", "base": base, "score_datasets": score_datasets,
                    "pairs": {name: len(rows) for name, rows in texts.items()},
                    "ract": {k: v for k, v in self.config().items() if k not in ("grpo", "steps_dir")}, "seed": seed}

        def fine_tune(partial: Path) -> dict[str, Any]:
            check_qwen_vl_checkpoint(base)
            select_device(device)
            trainer = self._build_sft_trainer(base, sft_pairs(texts, score_datasets), partial, seed, device)
            resume = self.resume and any((partial / "trainer").glob("checkpoint-*"))
            trainer.train(resume_from_checkpoint=True if resume else None)
            final = partial / "final"
            trainer.save_model(str(final))
            save_processor(trainer, final)
            if trainer.accelerator.is_main_process:
                write_provenance(final, {
                    "trainer": self.name,
                    "trainer_config": self.config(),
                    "base_checkpoint": model_base(base),
                    "sft_base": base,
                    "labels": self.labels,
                    "train_module": self.train_module,
                    "score_label_datasets": score_datasets,
                    "datasets": [{**entry, "texts": len(texts[entry["name"]])}
                                 for entry in datasets_provenance(datasets)],
                    "seed": seed,
                })
            return {"checkpoint": str(final)}

        return cached_step(folder, settings, fine_tune, replace_stale=False,
                           what="RACT cross-domain SFT").output["checkpoint"]

    def _build_sft_trainer(self, base: str, pairs: list[dict[str, Any]], folder: Path, seed: int, device: str):
        import torch
        from datasets import Dataset
        from transformers import AutoModelForImageTextToText, AutoProcessor
        from trl import SFTConfig, SFTTrainer

        bf16 = use_bf16(self.bf16, device)
        accumulation = accumulation_steps(
            self.sft_batch_size, self.sft_per_device_train_batch_size, launched_processes(), prefix="sft_"
        )
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.bfloat16 if bf16 else torch.float32)
        if self.train_module == "vision":
            for name, parameter in model.named_parameters():
                parameter.requires_grad = ".visual." in f".{name}"
        processor = AutoProcessor.from_pretrained(base)
        columns = ("path", "task", "target", "resize")
        dataset = Dataset.from_dict({key: [row.get(key) for row in pairs] for key in columns})
        args = SFTConfig(
            **common_args(
                folder / "trainer", device=device, bf16=bf16, gradient_checkpointing=self.gradient_checkpointing,
                deepspeed=deepspeed_config_file(self.deepspeed), save_steps=self.save_steps,
                save_total_limit=self.save_total_limit, seed=seed,
            ),
            learning_rate=self.sft_learning_rate,
            num_train_epochs=self.sft_num_train_epochs,
            max_steps=self.sft_max_steps if self.sft_max_steps is not None else -1,
            per_device_train_batch_size=self.sft_per_device_train_batch_size,
            gradient_accumulation_steps=accumulation,
            max_length=None,
            logging_steps=1,
        )
        trainer_cls = with_iqabench_schedule_and_resume(SFTTrainer, self.sft_min_learning_rate)
        return trainer_cls(
            model=model, args=args, train_dataset=dataset.with_transform(_load_sft_batch), processing_class=processor
        )


def model_base(checkpoint: str) -> str | None:
    """The base checkpoint recorded in a trained folder's provenance, if it has one."""
    provenance = Path(checkpoint) / "iqabench_provenance.json"
    if provenance.is_file():
        return json.loads(provenance.read_text(encoding="utf-8")).get("base_checkpoint")
    return None

