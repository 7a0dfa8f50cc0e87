"""``iqabench run SUITE``: train, score, measure and write the leaderboard.

``accelerate launch -m iqabench run SUITE`` runs it with one process per
device (docs/distributed.md); ``--models``, ``--tests`` and ``--pairs i/n``
run part of the suite, for jobs whose folders ``iqabench leaderboard --merge``
joins.
"""

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
    parser.add_argument("--tests",
                        help="comma-separated test sets (labels, keys or dataset names) to run (default: all)")
    parser.add_argument("--pairs", metavar="I/N",
                        help="run only part I of N (counted from 0) of the (model, test set) pairs, e.g. a SLURM "
                             "array task: --pairs $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides the suite)")
    parser.add_argument("--hash-images", action="store_true",
                        help="tell changed images by their bytes (all read) rather than their size and modification "
                             "time, for data copied by tools that keep file times (suite field hash_images)")
    add_progress_flag(parser)


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def run(args: argparse.Namespace) -> int:
    from iqabench.run.distributed import processes, quiet_other_processes
    from iqabench.run.plan import parse_pairs, plan_run
    from iqabench.run.runner import evaluate

    pairs = parse_pairs(args.pairs) if args.pairs else None
    quiet_other_processes()
    plan = plan_run(
        args.suite,
        args.out,
        data_root=args.data_root,
        force=args.force,
        only_models=_names(args.models),
        only_tests=_names(args.tests),
        pairs=pairs,
        device=args.device,
        progress=not args.no_progress,
        hash_images=args.hash_images,
    )
    results = evaluate(plan)
    failed = [p for p in results["results"] if p["status"] != "ok"]
    if not processes().is_main:
        return 1 if failed else 0
    print(f"wrote {plan.layout.leaderboard} and {plan.layout.results}")
    if plan.selection is not None:
        print(f"this run holds {len(plan.selection.held)} of the suite's {plan.selection.suite_pairs} (model, test "
              "set) pairs; join the folders of the other parts with `iqabench leaderboard --merge`.")
    if failed:
        print(f"{len(failed)} (model, test set) pair(s) did not finish; see {plan.layout.root / 'failures'} and "
              f"{plan.layout.log}")
        for hint in install_hints(results):
            print(hint)
    return 1 if failed else 0


def install_hints(results: dict) -> list[str]:
    """One line per missing module behind a failed training or pair: the extra (and command) that installs it."""
    from iqabench.extras import install_hint

    errors = [p.get("error") or "" for p in results["results"] if p["status"] == "failed"]
    errors += [(m.get("training") or {}).get("error") or "" for m in results["models"]
               if (m.get("training") or {}).get("status") == "failed"]
    return list(dict.fromkeys(hint for hint in map(install_hint, errors) if hint))
