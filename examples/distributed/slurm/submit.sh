#!/bin/bash
# Score a suite with a SLURM job array and merge the parts into one leaderboard (docs/distributed.md).
#   SUITE=suites/single_domain_koniq.yaml RUN=runs/table2 PARTS=8 examples/distributed/slurm/submit.sh
# Run from the repository root, on storage every node sees. Extra `iqabench run` flags (e.g. --data-root DIR)
# go in IQABENCH_FLAGS.
set -euo pipefail
: "${SUITE:?set SUITE to a suite file}" "${RUN:?set RUN to an output folder}" "${PARTS:=8}"
export SUITE RUN IQABENCH_FLAGS="${IQABENCH_FLAGS:-}"
here=$(dirname "$0")
mkdir -p "$RUN/slurm-logs"
# 1. the suite's `train: true` models, trained once (nothing to do, and quick, if the suite trains none)
train=$(sbatch --parsable --output="$RUN/slurm-logs/train-%j.out" "$here/train.sh")
# 2. the (model, test set) pairs split over PARTS independent jobs, each writing $RUN/part-<i>
array=$(sbatch --parsable --dependency="afterok:$train" --array="0-$((PARTS - 1))" \
    --output="$RUN/slurm-logs/part-%a-%j.out" "$here/array.sh")
# 3. one leaderboard from all parts, also when some pairs failed (the leaderboard lists the failures)
sbatch --dependency="afterany:$array" --output="$RUN/slurm-logs/merge-%j.out" "$here/merge.sh"
