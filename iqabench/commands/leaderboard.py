"""``iqabench leaderboard RESULTS_DIR``: redraw leaderboard.md and its figures from results.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from iqabench.errors import IQABenchError

NAME = "leaderboard"
HELP = "redraw a run's leaderboard.md and figures/ from its results.json and predictions (no model is loaded)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", help="a run's output folder (holding results.json)")
    parser.add_argument("--print", action="store_true", help="also print the leaderboard")


def run(args: argparse.Namespace) -> int:
    from iqabench.leaderboard import write_leaderboard

    folder = Path(args.results_dir)
    path = folder / "results.json"
    if not path.exists():
        raise IQABenchError(f"{folder} has no results.json; pass the --out folder of an `iqabench run`.")
    try:
        results = json.loads(path.read_text())
    except ValueError as exc:
        raise IQABenchError(f"{path} is not valid JSON ({exc}); re-run the suite with the same --out to rewrite "
                            "it (finished predictions are reused).") from None
    target = write_leaderboard(results, folder)
    figures = folder / "figures"
    print(target.read_text() if args.print else f"wrote {target}" + (f" and {figures}/" if figures.is_dir() else ""))
    return 0
