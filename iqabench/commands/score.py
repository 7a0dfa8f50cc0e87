"""``iqabench score MODEL IMAGE...``: score images with one model.

Under ``accelerate launch -m iqabench score`` the images are shared out among
the processes in whole batches, each scores its share on its own device, and
the main process prints every result in the order the images were given, once
all are scored (one process prints each batch as it is scored).
"""

from __future__ import annotations

import argparse
import json

from iqabench.commands import positive_int

NAME = "score"
HELP = "score image files with a model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name (see `iqabench list models`)")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE", help="model option")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"),
                        help="precision (default: the model's own)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--max-side", type=positive_int,
                        help="shrink images whose longer side exceeds this many pixels before scoring")
    parser.add_argument("--json", action="store_true", help='one JSON object per line: {"image", "score", "error"}')


def run(args: argparse.Namespace) -> int:
    from iqabench.distributed import (
        batches,
        process_device,
        processes,
        quiet_other_processes,
        share,
    )
    from iqabench.factory import create_model, resolve_device
    from iqabench.loader import Resize
    from iqabench.options import parse_option_flags
    from iqabench.scoring import score_files

    group = processes()
    quiet_other_processes()
    model = create_model(args.model, device=process_device(resolve_device(args.device)), dtype=args.dtype,
                         **parse_option_flags(args.option))
    positions = [i for span in share(batches(len(args.images), args.batch_size), group.index, group.count)
                 for i in span]
    outcomes = []
    for batch in score_files(model, [args.images[i] for i in positions], batch_size=args.batch_size,
                             resize=Resize(max_side=args.max_side)):
        scored = [(positions[index], score.value, score.error) for index, score in batch]
        if group.count == 1:
            _print(args, scored)
        outcomes.extend(scored)
    if group.count > 1:
        outcomes = [outcome for shard in group.gather(outcomes) for outcome in shard]
        if group.is_main:
            _print(args, outcomes)
    return 1 if any(error is not None for _, _, error in outcomes) else 0


def _print(args: argparse.Namespace, outcomes: list[tuple[int, float | None, str | None]]) -> None:
    for index, value, error in outcomes:
        if args.json:
            print(json.dumps({"image": args.images[index], "score": value, "error": error}), flush=True)
        else:
            result = f"ERROR: {error}" if error is not None else f"{value:.4f}"
            print(f"{args.images[index]}\t{result}", flush=True)
