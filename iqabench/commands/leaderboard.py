"""``iqabench leaderboard RESULTS_DIR``: redraw leaderboard.md and its figures from results.json.

``iqabench leaderboard --merge OUT1 OUT2 ... --out MERGED`` joins the folders of
runs that each hold part of one suite (:mod:`iqabench.run.merge`) and writes the
leaderboard of the whole suite into MERGED.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from iqabench.errors import IQABenchError

NAME = "leaderboard"
HELP = "redraw a run's leaderboard.md and figures/ from its results.json and predictions (no model is loaded)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", nargs="?", help="a run's output folder (holding results.json)")
    parser.add_argument("--print", action="store_true", help="also print the leaderboard")
    parser.add_argument("--merge", nargs="+", metavar="FOLDER",
                        help="join the output folders of runs that each hold part of one suite (needs --out)")
    parser.add_argument("--out", help="with --merge: the folder the merged results and leaderboard are written to")


def run(args: argparse.Namespace) -> int:
    from iqabench.reports.leaderboard import write_leaderboard
    from iqabench.reports.results import verify_against_predictions
    from iqabench.reports.schema import read_results

    if args.merge:
        from iqabench.run.merge import merge_runs

        if not args.out or args.results_dir:
            raise IQABenchError("--merge FOLDER... needs --out MERGED (and no RESULTS_DIR).")
        merge_runs(args.merge, args.out)
        args.results_dir = args.out
    if not args.results_dir:
        raise IQABenchError("give a run's output folder, or --merge FOLDER... --out MERGED.")
    folder = Path(args.results_dir)
    path = folder / "results.json"
    if not path.exists():
        raise IQABenchError(f"{folder} has no results.json; pass the --out folder of an `iqabench run`.")
    results = read_results(path)
    problems = verify_against_predictions(results, folder)
    if problems:
        shown = "\n  ".join(problems[:10]) + (f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise IQABenchError(
            f"{path} and the prediction files beside it disagree, so no leaderboard is drawn from them:\n  {shown}\n"
            f"Re-run the suite with the same --out: damaged prediction files are scored again and results.json is "
            "rewritten from the files.")
    target = write_leaderboard(results, folder)
    figures = folder / "figures"
    print(target.read_text() if args.print else f"wrote {target}" + (f" and {figures}/" if figures.is_dir() else ""))
    return 0
