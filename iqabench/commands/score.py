"""``iqabench score MODEL IMAGE...``: score images with one model."""

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
    from iqabench.factory import create_model
    from iqabench.loader import Resize
    from iqabench.options import parse_option_flags
    from iqabench.scoring import score_files

    model = create_model(args.model, device=args.device, dtype=args.dtype, **parse_option_flags(args.option))
    failures = 0
    for batch in score_files(model, args.images, batch_size=args.batch_size, resize=Resize(max_side=args.max_side)):
        for index, score in batch:
            failures += score.failed
            if args.json:
                print(json.dumps({"image": args.images[index], "score": score.value, "error": score.error}),
                      flush=True)
            else:
                result = f"ERROR: {score.error}" if score.failed else f"{score.value:.4f}"
                print(f"{args.images[index]}\t{result}", flush=True)
    return 1 if failures else 0
