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
Interrupted training resumes from the last checkpoint under ``--out`` with
``--resume`` (the trainers' own ``resume`` option); without it an existing,
non-empty output folder is an error, so a new run never mixes with an old one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

NAME = "train"
HELP = "train a model from a training config or a suite's `train: true` entries (no scoring)"

CONFIG_KEYS = ("trainer", "trainer_options", "model", "model_options", "datasets", "seed", "device", "data_root")
DATASET_KEYS = ("name", "split", "root", "options")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG_OR_SUITE", help="a training config or a suite YAML")
    parser.add_argument("--out", help="output folder (default: runs/train-<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue a run already in --out")
    parser.add_argument("--data-root", help="folder holding the datasets (default: config/suite, then $IQABENCH_DATA)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's, else cpu)")


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
    out = Path(args.out) if args.out else Path("runs") / f"train-{path.stem}"
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise IQABenchError(f"{out} is not empty; pass --resume to continue that training, or choose another --out.")
    _train(_config_job(path, data, args), out)
    return 0


def _train_suite(path: Path, args: argparse.Namespace) -> int:
    """Train a suite's ``train: true`` models with the runner, so ``iqabench run`` reuses the checkpoints."""
    from iqabench.errors import IQABenchError
    from iqabench.runner import Runner
    from iqabench.suite import load_suite

    suite, digest = load_suite(path)
    if not any(entry.train for entry in suite.models):
        raise IQABenchError(f"{path}: no model entry has `train: true`; nothing to train.")
    out = Path(args.out) if args.out else Path("runs") / suite.name
    trained = Runner(suite, path, digest, out, data_root=args.data_root, device=args.device).train_only()
    for label, options in trained.items():
        print(f"{label}: trained; model options {json.dumps(options)}")
    print(f"`iqabench run {path} --out {out}` scores them without training again.")
    return 0


def _config_job(path: Path, data: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from iqabench.dataset import resolve_data_root
    from iqabench.errors import IQABenchError

    _check_keys(data, CONFIG_KEYS, f"{path}")
    if "model" not in data or "datasets" not in data:
        raise IQABenchError(f"{path}: a training config needs `model:` and `datasets:` (and optionally `trainer:`).")
    refs = []
    for item in data["datasets"] or []:
        ref = {"name": item} if isinstance(item, str) else dict(item)
        _check_keys(ref, DATASET_KEYS, f"{path}: datasets entry")
        if "name" not in ref:
            raise IQABenchError(f"{path}: a datasets entry has no `name`: {item!r}.")
        ref["root"] = _relative_to(path, ref.get("root"))
        refs.append(ref)
    return {
        "label": str(data["model"]),
        "model": data["model"],
        "model_options": dict(data.get("model_options") or {}),
        "trainer": data.get("trainer"),
        "trainer_options": dict(data.get("trainer_options") or {}),
        "datasets": refs,
        "seed": int(data.get("seed", 0)),
        "device": args.device or data.get("device", "cpu"),
        "data_root": resolve_data_root(args.data_root, _relative_to(path, data.get("data_root"))),
    }


def _train(job: dict[str, Any], out: Path) -> None:
    from iqabench.dataset import dataset_root
    from iqabench.errors import IQABenchError
    from iqabench.options import check_options
    from iqabench.registry import default_registry
    from iqabench.runner import resolve_device
    from iqabench.trainer import TrainingSet

    registry = default_registry()
    model_cls = registry.model(job["model"])
    check_options(model_cls, job["model_options"], f"model {job['model']!r}")
    trainer_name = job["trainer"] or model_cls.trainer
    if not trainer_name:
        raise IQABenchError(
            f"model {job['model']!r} has no trainer of its own; name one with `trainer:` "
            f"(available: {', '.join(registry.names('trainer'))})."
        )
    trainer_cls = registry.trainer(trainer_name)
    check_options(trainer_cls, job["trainer_options"], f"trainer {trainer_name!r}")
    training = []
    for ref in job["datasets"]:
        cls = registry.dataset(ref["name"])
        dataset = cls(root=dataset_root(cls, job["data_root"], ref.get("root")), **(ref.get("options") or {}))
        index = dataset.load()
        split = ref.get("split") or "train"
        if split not in index.splits() and split != "all":
            raise IQABenchError(
                f"dataset {ref['name']!r} has no {split} split (splits: {', '.join(index.splits())}); "
                "choose one with `split:` in the datasets entry (e.g. split: all)."
            )
        training.append(TrainingSet(name=ref["name"], root=Path(dataset.root), records=index.split(split)))
    trainer = trainer_cls(**job["trainer_options"])
    out.mkdir(parents=True, exist_ok=True)
    returned = trainer.train(
        job["model_options"], training, out, seed=job["seed"], device=resolve_device(job["device"])
    )
    options = {**job["model_options"], **returned}
    (out / "model_options.json").write_text(json.dumps({"model": job["model"], "options": options}, indent=2))
    print(f"{job['label']}: trained with {trainer_name}; score it with `-o checkpoint={returned.get('checkpoint')}`")


def _check_keys(data: dict[str, Any], valid: tuple[str, ...], where: str) -> None:
    from iqabench.errors import IQABenchError, did_you_mean

    for key in data:
        if key not in valid:
            hint = did_you_mean(str(key), valid, n=1, cutoff=0.6)
            raise IQABenchError(f"{where}: unknown key {key!r}.{hint} Valid keys: {', '.join(valid)}.")


def _relative_to(config: Path, value: str | None) -> str | None:
    """Paths in a config are relative to the config's folder."""
    if value is None or str(value).startswith(("~", "/", "$")):
        return value
    return str((config.parent / value).resolve())
