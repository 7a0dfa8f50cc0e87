#!/bin/bash
#SBATCH --job-name=iqabench-train
#SBATCH --gpus=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
# Trains the suite's `train: true` models into $RUN/train/checkpoints (skipped when the suite trains none).
# For a multi-GPU trainer (grpo, ract) ask for more GPUs and use
#   accelerate launch --multi_gpu --num_processes $SLURM_GPUS_ON_NODE -m iqabench train ...
set -euo pipefail
if grep -Eq 'train:[[:space:]]*true' "$SUITE"; then
    iqabench train "$SUITE" --out "$RUN/train" $IQABENCH_FLAGS --no-progress
fi
