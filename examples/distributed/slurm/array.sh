#!/bin/bash
#SBATCH --job-name=iqabench-part
#SBATCH --gpus=1
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
# Part i of n of the suite's (model, test set) pairs; i and n come from the array (--array=0-7, or 1-8).
set -euo pipefail
part=$((SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN))
out="$RUN/part-$part"
mkdir -p "$out"
# reuse the checkpoints trained once: hard links cost no space, and a run never writes into a finished
# checkpoint (retraining replaces the folder), so the parts cannot change each other's files
if [ -d "$RUN/train/checkpoints" ] && [ ! -e "$out/checkpoints" ]; then
    cp -al "$RUN/train/checkpoints" "$out/checkpoints"
    # with the training run's copy of the suite: `iqabench run` writes only into a folder holding a run of its suite
    cp "$RUN/train/suite.yaml" "$out/suite.yaml"
fi
# a re-submitted task resumes: finished pairs are reused, unfinished ones keep their finished batches
iqabench run "$SUITE" --out "$out" --pairs "$part/$SLURM_ARRAY_TASK_COUNT" $IQABENCH_FLAGS --no-progress
