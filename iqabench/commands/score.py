"""``iqabench score MODEL INPUT...``: score image files, folders and globs with one model.

Folders are searched recursively and globs expanded (:mod:`iqabench.scoring.image_files`).
Scores are printed (tab-separated, or ``--json`` lines) or, with ``--output
FILE.csv|FILE.jsonl``, written batch by batch to a file that a re-run of the
same command resumes (:mod:`iqabench.scoring.score_output`). The model is built by
:func:`iqabench.registry.factory.build_model` (as ``iqabench.create_model`` does) and images are scored by
:func:`iqabench.scoring.engine.score_files`, as in the Python API and ``iqabench run``.

Under ``accelerate launch -m iqabench score`` the images are shared out among
the processes in whole batches, each scores its share on its own device, and
after every round of batches the main process collects them: it writes them to
``--output`` at once, or prints every result in the order the images were
given once all are scored (one process prints each batch as it is scored).
"""

from __future__ import annotations

import argparse
import json
from contextlib import ExitStack

from iqabench.commands import add_progress_flag, non_negative_int, positive_int

NAME = "score"
HELP = "score image files, folders (recursively) and globs with a model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name (see `iqabench list models`)")
    parser.add_argument("images", nargs="+", metavar="INPUT",
                        help="image files, folders (searched recursively) or quoted globs such as 'photos/**/*.jpg'")
    parser.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE", help="model option")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"),
                        help="precision (default: the model's own)")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--num-workers", type=non_negative_int, default=0, help="image decode worker processes")
    parser.add_argument("--max-side", type=positive_int,
                        help="shrink images whose longer side exceeds this many pixels before scoring")
    parser.add_argument("--json", action="store_true", help='one JSON object per line: {"image", "score", "error"}')
    parser.add_argument("--output", metavar="FILE",
                        help="write scores to FILE.csv or FILE.jsonl as they come; a re-run skips images already in it")
    parser.add_argument("--force", action="store_true", help="with --output: start the file over instead of resuming")
    add_progress_flag(parser)


def run(args: argparse.Namespace) -> int:
    from iqabench.content import code_identity, option_files_digest
    from iqabench.errors import IQABenchError
    from iqabench.provenance import command_line
    from iqabench.registry.discovery import default_registry
    from iqabench.registry.factory import build_model, resolve_device
    from iqabench.registry.options import parse_option_flags
    from iqabench.run.distributed import process_device, processes, quiet_other_processes
    from iqabench.scoring.image_files import find_images
    from iqabench.scoring.score_output import ScoresFile, held

    if args.force and not args.output:
        raise IQABenchError("--force starts an --output file over; without --output there is nothing to force.")
    group = processes()
    quiet_other_processes()
    paths = find_images(args.images)
    options = parse_option_flags(args.option)
    with ExitStack() as stack:
        if args.output and group.is_main:  # held before the model is built, so a second command stops at once
            stack.enter_context(held(args.output, command_line()))
        model = build_model(args.model, device=process_device(resolve_device(args.device)), dtype=args.dtype,
                             **options)
        output = None
        todo = list(range(len(paths)))
        if args.output:
            done: list[str] = []
            if group.is_main:
                settings = {"model": args.model, "options": options, "dtype": args.dtype, "max_side": args.max_side,
                            # a checkpoint retrained in place or edited scoring code must not be mixed into one file
                            "inputs": {"files": option_files_digest(options),
                                       "code": code_identity(default_registry().model(args.model))}}
                output = ScoresFile(args.output, settings, force=args.force)
                done = sorted(output.done)
                if output.cut_bytes:
                    print(f"iqabench: {args.output}: dropped {output.cut_bytes} bytes after the last complete batch "
                          "(cut by an interruption); those images are scored again.", flush=True)
            finished = set(group.broadcast(done) if group.count > 1 else done)
            todo = [i for i in todo if paths[i] not in finished]
        return _score(args, group, model, paths, todo, output)


def _score(args: argparse.Namespace, group, model, paths: list[str], todo: list[int], output) -> int:
    """Score the images at ``todo`` in rounds of batches, shared out among the processes; print or write them."""
    from iqabench import progress
    from iqabench.run.distributed import batches, share
    from iqabench.scoring.engine import score_files
    from iqabench.scoring.loader import Resize

    shares = [share(batches(len(todo), args.batch_size), i, group.count) for i in range(group.count)]
    positions = [todo[i] for span in shares[group.index] for i in span]
    stream = score_files(model, [paths[i] for i in positions], batch_size=args.batch_size,
                         num_workers=args.num_workers, resize=Resize(max_side=args.max_side))
    outcomes: list[tuple[int, float | None, str | None]] = []
    with progress.bar(total=len(todo), desc=f"scoring with {args.model}", unit="image",
                      enabled=group.is_main) as bar:
        for _ in range(max(len(part) for part in shares)):  # rounds: every process takes part in every gather
            scored = [(positions[index], score.value, score.error) for index, score in next(stream, [])]
            rows = sorted(row for part in (group.gather(scored) if group.count > 1 else [scored]) for row in part)
            outcomes.extend(rows)
            bar.update(len(rows))
            if output is not None:
                output.write((paths[i], value, error) for i, value, error in rows)
            elif group.count == 1:
                _print(args, paths, rows)
    if output is None and group.count > 1 and group.is_main:
        _print(args, paths, sorted(outcomes))
    failed = sum(error is not None for _, _, error in outcomes)
    if output is not None:
        print(f"{args.output}: wrote {len(outcomes)} scores ({failed} failed, reasons in the error column); "
              f"{len(paths) - len(todo)} images were already there", flush=True)
    return 1 if failed else 0


def _print(args: argparse.Namespace, paths: list[str], outcomes: list[tuple[int, float | None, str | None]]) -> None:
    for index, value, error in outcomes:
        if args.json:
            print(json.dumps({"image": paths[index], "score": value, "error": error}), flush=True)
        else:
            result = f"ERROR: {error}" if error is not None else f"{value:.4f}"
            print(f"{paths[index]}\t{result}", flush=True)
