"""``iqabench train CONFIG_OR_SUITE``: train a model without scoring it.

CONFIG_OR_SUITE is either a suite (every model entry with ``train: true`` is
trained on the suite's train datasets into ``OUT/checkpoints/<label>/``, the
very folders ``iqabench run SUITE --out OUT`` reuses) or a training config::

    trainer: grpo                 # default: the model's own trainer
    trainer_options: {num_generations: 8}
    model: q-insight
    model_options: {checkpoint: Qwen/Qwen2.5-VL-7B-Instruct}
    datasets:                     # names, or mappings with split / root / options
      - koniq10k
      - {name: spaq, split: train, root: /data/SPAQ, options: {}}
    seed: 0
    device: cuda                  # optional, default cpu
    data_root: /data              # optional

Multi-GPU: ``accelerate launch --num_processes 8 -m iqabench train CONFIG --out DIR``.
Both forms train through :func:`iqabench.run.training.train_model`: the work runs
in ``DIR.partial`` and is renamed to ``DIR`` when it finishes. Running the
same command again reuses a finished checkpoint and resumes an interrupted
one (trainers that can, from their last ``checkpoint-N``); ``--force`` starts
over. A folder trained with other settings is never overwritten without
``--force``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from iqabench.commands import add_progress_flag

NAME = "train"
HELP = "train a model from a training config or a suite's `train: true` entries (no scoring)"

CONFIG_KEYS = ("trainer", "trainer_options", "model", "model_options", "datasets", "seed", "device", "data_root")
DATASET_KEYS = ("name", "split", "root", "options")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG_OR_SUITE", help="a training config or a suite YAML")
    parser.add_argument("--out", help="output folder (default: runs/train-<config name>, or runs/<suite name>)")
    parser.add_argument("--force", action="store_true", help="train again even if --out holds a finished checkpoint")
    parser.add_argument("--data-root", help="folder holding the datasets (default: config/suite, then $IQABENCH_DATA)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's, else cpu)")
    add_progress_flag(parser)


def run(args: argparse.Namespace) -> int:
    import yaml

    from iqabench.errors import IQABenchError

    path = Path(args.config)
    if not path.is_file():
        raise IQABenchError(f"training config or suite not found: {path}.")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise IQABenchError(f"{path}: expected a mapping (a training config with `trainer:`/`model:`, or a suite).")
    if "protocol" in data:
        return _train_suite(path, args)
    return _train_config(path, data, args)


def _train_suite(path: Path, args: argparse.Namespace) -> int:
    """Train a suite's ``train: true`` models into its run folder, so ``iqabench run`` reuses the checkpoints."""
    from iqabench.errors import IQABenchError
    from iqabench.run.plan import plan_run
    from iqabench.run.runner import train_only

    plan = plan_run(path, args.out, data_root=args.data_root, device=args.device, force=args.force,
                    include_tests=False)
    if not any(m.entry.train for m in plan.models):
        raise IQABenchError(f"{path}: no model entry has `train: true`; nothing to train.")
    for label, options in train_only(plan).items():
        print(f"{label}: trained; model options {json.dumps(options)}")
    print(f"`iqabench run {path} --out {plan.layout.root}` scores them without training again.")
    return 0


def _train_config(path: Path, data: dict[str, Any], args: argparse.Namespace) -> int:
    from iqabench.contracts.dataset import resolve_data_root
    from iqabench.contracts.trainer import TrainingSet
    from iqabench.errors import IQABenchError
    from iqabench.registry.factory import (
        check_model_options,
        check_trainer_options,
        create_dataset,
        resolve_device,
        trainer_for,
    )
    from iqabench.run.plan import suite_relative
    from iqabench.run.training import TrainingRequest, train_model

    _check_keys(data, CONFIG_KEYS, f"{path}")
    if "model" not in data or "datasets" not in data:
        raise IQABenchError(f"{path}: a training config needs `model:` and `datasets:` (and optionally `trainer:`).")
    model = str(data["model"])
    trainer = trainer_for(model, data.get("trainer"))
    data_root = resolve_data_root(args.data_root, suite_relative(path, data.get("data_root")))
    training = []
    for item in data["datasets"] or []:
        ref = {"name": item} if isinstance(item, str) else dict(item)
        _check_keys(ref, DATASET_KEYS, f"{path}: datasets entry")
        if "name" not in ref:
            raise IQABenchError(f"{path}: a datasets entry has no `name`: {item!r}.")
        dataset = create_dataset(ref["name"], root=suite_relative(path, ref.get("root")), data_root=data_root,
                                 **(ref.get("options") or {}))
        index = dataset.load()
        split = ref.get("split") or "train"
        if split not in index.splits() and split != "all":
            raise IQABenchError(
                f"dataset {ref['name']!r} has no {split} split (splits: {', '.join(index.splits())}); "
                "choose one with `split:` in the datasets entry (e.g. split: all)."
            )
        training.append(TrainingSet(name=ref["name"], root=Path(dataset.root), records=index.split(split)))
    request = TrainingRequest(
        model=model,
        trainer=trainer,
        model_options=check_model_options(model, dict(data.get("model_options") or {})),
        trainer_options=check_trainer_options(trainer, dict(data.get("trainer_options") or {})),
        datasets=training,
        seed=int(data.get("seed", 0)),
        device=resolve_device(args.device or data.get("device", "cpu")),
    )
    out = Path(args.out) if args.out else Path("runs") / f"train-{path.stem}"
    result = train_model(request, out, force=args.force, replace_stale=False)
    options = {**request.model_options, **result.output}
    verb = "trained" if result.status == "trained" else "already trained (same settings; --force to redo)"
    print(f"{model}: {verb} with {trainer} into {out}; model options {json.dumps(options)}")
    return 0


def _check_keys(data: dict[str, Any], valid: tuple[str, ...], where: str) -> None:
    from iqabench.errors import IQABenchError, did_you_mean

    for key in data:
        if key not in valid:
            hint = did_you_mean(str(key), valid, n=1, cutoff=0.6)
            raise IQABenchError(f"{where}: unknown key {key!r}.{hint} Valid keys: {', '.join(valid)}.")
