#!/bin/bash
#SBATCH --job-name=iqabench-merge
#SBATCH --cpus-per-task=2
#SBATCH --time=00:30:00
# One leaderboard from the parts: refuses parts of another suite or code version.
set -euo pipefail
iqabench leaderboard --merge "$RUN"/part-* --out "$RUN/merged"
