"""``iqabench run SUITE``: train, score, measure and write the leaderboard."""

from __future__ import annotations

import argparse

from iqabench.commands import add_progress_flag

NAME = "run"
HELP = "run a suite (train where asked, score, metrics, efficiency, leaderboard); re-runs resume"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="suite YAML file, e.g. suites/quickstart.yaml")
    parser.add_argument("--data-root", help="folder holding the datasets (overrides the suite and $IQABENCH_DATA)")
    parser.add_argument("--out", help="output folder (default: runs/<suite name>)")
    parser.add_argument("--force", action="store_true", help="redo finished training and predictions")
    parser.add_argument("--models", help="comma-separated model names or labels to run (default: all)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides the suite)")
    add_progress_flag(parser)


def run(args: argparse.Namespace) -> int:
    from iqabench.plan import plan_run
    from iqabench.runner import evaluate

    plan = plan_run(
        args.suite,
        args.out,
        data_root=args.data_root,
        force=args.force,
        only_models=[m.strip() for m in args.models.split(",")] if args.models else None,
        device=args.device,
        progress=not args.no_progress,
    )
    results = evaluate(plan)
    failed = [p for p in results["results"] if p["status"] != "ok"]
    print(f"wrote {plan.layout.leaderboard} and {plan.layout.results}")
    if failed:
        print(f"{len(failed)} (model, test set) pair(s) did not finish; see {plan.layout.root / 'failures'} and "
              f"{plan.layout.log}")
    return 1 if failed else 0
