#!/usr/bin/env bash
# The harness at an earlier commit against the working tree, alternately, in one session: start-up of three
# commands, and a NIQE suite over N generated 1024x768 JPEGs (wall time, scoring time, model ms/image).
#
#   benchmarks/before_after.sh REV [N]        e.g. benchmarks/before_after.sh d901f9f 1000
#
# The earlier code is checked out into a temporary git worktree and imported ahead of the installed (editable)
# package through PYTHONPATH, so both run in the same virtual environment. Compare the columns as ratios: the
# machine's load changes between sessions, not between the alternating calls.
set -euo pipefail
rev=${1:?usage: benchmarks/before_after.sh REV [N]}
count=${2:-1000}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$repo" worktree add --detach "$work/tree" "$rev" >/dev/null
mkdir "$work/path" && ln -s "$work/tree/iqabench" "$work/path/iqabench" && ln -s "$work/tree/plugins" "$work/path/iqabench_plugins"
export HF_HUB_OFFLINE=1
cd "$work"
python - "$count" <<'PY'
import json, sys
from pathlib import Path
from iqabench.efficiency.bench import make_jpegs
paths = make_jpegs(Path("jpegs"), int(sys.argv[1]), (1024, 768))
Path("data/metas").mkdir(parents=True)
Path("data/metas/test_bench.json").write_text(json.dumps(
    [{"image": str(p.resolve()), "gt_score": float(i % 5 + 1)} for i, p in enumerate(paths)]))
Path("suite.yaml").write_text(f"""name: before-after
protocol: single_domain
seed: 0
device: cpu
batch_size: 8
num_workers: 2
correlation: none
bootstrap: 100
test:
  - {{dataset: deqa-meta, root: {Path('data').resolve()}, options: {{meta: metas/test_bench.json, rescale_range: [1, 5], allow_outside_root: true}}}}
models:
  - {{name: niqe, label: NIQE}}
""")
PY
seconds() { /usr/bin/time -f "%e" "$@" 2>&1 >/dev/null | tail -1; }
side() { if [ "$1" = before ]; then export PYTHONPATH="$work/path"; else unset PYTHONPATH; fi; }
one=jpegs/$(ls jpegs | sed -n 1p)  # sed reads all of ls's output: head would end ls with SIGPIPE
echo "| side | round | import numpy (s) | --help (s) | list models (s) | score niqe one.jpg (s) |"
echo "|---|---|---|---|---|---|"
for round in 1 2; do
  for which in before after; do
    side "$which"
    echo "| $which | $round | $(seconds python -c 'import numpy') | $(seconds python -m iqabench --help) |" \
         "$(seconds python -m iqabench list models) | $(seconds python -m iqabench score niqe "$one") |"
  done
done
echo
echo "| side | suite wall (s) | scoring (s) | NIQE alone (ms/image) |"
echo "|---|---|---|---|"
for which in before after; do
  side "$which"
  wall=$(seconds python -m iqabench run suite.yaml --out "run-$which" --no-progress)
  python - "$which" "$wall" <<'PY'
import json, sys, time
from pathlib import Path
from iqabench.scoring.images import load_image
from iqabench_plugins.niqe import NIQE
which, wall = sys.argv[1], sys.argv[2]
model = NIQE()
prepared = [model.preprocessor()(load_image(p)) for p in sorted(Path("jpegs").glob("*.jpg"))[:16]]
model.score_batch(prepared[:1])
start = time.perf_counter()
for item in prepared:
    model.score_batch([item])
ms = (time.perf_counter() - start) / len(prepared) * 1000
meta = json.loads(Path(f"run-{which}/predictions/niqe/deqa-meta-test.meta.json").read_text())
print(f"| {which} | {wall} | {meta['seconds']:.1f} | {ms:.1f} |")
PY
done
