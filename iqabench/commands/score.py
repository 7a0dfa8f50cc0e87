"""``iqabench score MODEL IMAGE...``: score images with one model."""

from __future__ import annotations

import argparse
import json

NAME = "score"
HELP = "score image files with a model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name (see `iqabench list models`)")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE", help="model option")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--dtype", default="float32", help="float32, float16 or bfloat16")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", action="store_true", help='one JSON object per line: {"image", "score", "error"}')


def run(args: argparse.Namespace) -> int:
    from iqabench.loader import iterate_batches
    from iqabench.options import check_options, parse_option_flags
    from iqabench.registry import default_registry
    from iqabench.runner import resolve_device, score_safely

    cls = default_registry().model(args.model)
    options = parse_option_flags(args.option)
    check_options(cls, options, f"model {args.model!r}", ("device", "dtype"))
    model = cls(**options, device=resolve_device(args.device), dtype=args.dtype)
    failures = 0
    for batch in iterate_batches(args.images, model.preprocessor(), batch_size=args.batch_size):
        ready = [item for item in batch if item.error is None]
        scores = dict(zip((item.index for item in ready), score_safely(model, [item.item for item in ready])))
        for item in batch:
            score = scores.get(item.index)
            error = item.error if score is None else score.error
            value = None if error else score.value
            failures += error is not None
            if args.json:
                print(json.dumps({"image": args.images[item.index], "score": value, "error": error}), flush=True)
            else:
                print(f"{args.images[item.index]}\t{'ERROR: ' + error if error else f'{value:.4f}'}", flush=True)
    return 1 if failures else 0
