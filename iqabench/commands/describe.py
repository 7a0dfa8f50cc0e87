"""``iqabench describe MODEL``: export a reasoning model's texts for images or a dataset.

Writes the reasoning-texts file (:mod:`iqabench.reasoning.texts`) that the RALI and RACT
trainers read: one line per (image, seed) with the reasoning, the parsed score
and the ground truth. Re-running the same command resumes: pairs already in
the file are skipped. ``accelerate launch -m iqabench describe ...`` shares the
images out among the processes (one device each) and writes the same file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from iqabench.commands import add_progress_flag, non_negative_int, positive_int

NAME = "describe"
HELP = "write a reasoning model's texts for images or a dataset (the file RALI/RACT train on)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a generative model, e.g. q-insight (see `iqabench list models`)")
    parser.add_argument("images", nargs="*", help="image files (or use --dataset)")
    parser.add_argument("--dataset", help="describe a dataset's images instead of files")
    parser.add_argument("--split", default=None, help="split of --dataset (default: all records)")
    parser.add_argument("--root", help="folder of the dataset (default: DATA_ROOT/<dataset folder>)")
    parser.add_argument("--data-root", help="folder holding the datasets (default: $IQABENCH_DATA)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, one text per image and seed (default 0)")
    parser.add_argument("--out", required=True, help="the texts file (JSON lines); appended to and resumed")
    parser.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE", help="model option")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"),
                        help="precision (default: the model's own)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--num-workers", type=non_negative_int, default=0, help="image decode worker processes")
    add_progress_flag(parser)


def parse_seeds(text: str) -> list[int]:
    from iqabench.errors import IQABenchError

    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise IQABenchError(
            f"--seeds {text!r} is not a comma-separated list of integers, e.g. --seeds 0,1,2."
        ) from None
    if not seeds:
        raise IQABenchError("--seeds is empty; give at least one seed, e.g. --seeds 0.")
    return list(dict.fromkeys(seeds))


def images_to_describe(args: argparse.Namespace):
    """``(images, dataset name)`` from the image arguments or from ``--dataset``."""
    from iqabench.contracts.dataset import resolve_data_root
    from iqabench.errors import IQABenchError
    from iqabench.reasoning.describe import ImageToDescribe
    from iqabench.registry.factory import create_dataset

    if bool(args.images) == bool(args.dataset):
        raise IQABenchError("give either image files or --dataset NAME (not both, not neither).")
    if args.images:
        return [ImageToDescribe(image=path, path=Path(path)) for path in args.images], None
    dataset = create_dataset(args.dataset, root=args.root, data_root=resolve_data_root(args.data_root, None))
    records = dataset.load().split(args.split)
    images = [ImageToDescribe(image=r.image, path=dataset.image_path(r), gt=r.mos) for r in records]
    return images, args.dataset


def run(args: argparse.Namespace) -> int:
    from iqabench.reasoning.describe import describe
    from iqabench.registry.factory import build_model, resolve_device
    from iqabench.registry.options import parse_option_flags
    from iqabench.run.distributed import process_device, processes, quiet_other_processes

    seeds = parse_seeds(args.seeds)
    images, dataset = images_to_describe(args)
    group = processes()
    quiet_other_processes()
    model = build_model(args.model, device=process_device(resolve_device(args.device)), dtype=args.dtype,
                         **parse_option_flags(args.option))
    summary = describe(
        model,
        images,
        seeds,
        args.out,
        dataset=dataset,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        group=group,
    )
    if not group.is_main:
        return 0
    print(
        f"{args.out}: wrote {summary.written} texts ({summary.failed} without a parsable score), "
        f"skipped {summary.skipped} already there"
    )
    return 0
