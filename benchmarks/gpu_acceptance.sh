#!/usr/bin/env bash
# Every GPU path of iqabench proven in one prepared command (issue 28). How to run it on a borrowed GPU machine and
# how to read its report: docs/efficiency.md, "GPU acceptance run".
#
#   benchmarks/gpu_acceptance.sh wheels             here, where the package index is reachable: the wheels a GPU
#                                                   machine without an index lacks, into .whl/ (carry that folder)
#   benchmarks/gpu_acceptance.sh install            on the GPU machine: a virtual environment over its own CUDA
#                                                   torch, iqabench[train], vLLM where it installs (a call of its own)
#   benchmarks/gpu_acceptance.sh run [--out DIR]    on the GPU machine: the five steps, each with its own time limit,
#                                                   about 8 minutes on one H100; installs first if nothing is installed
#   benchmarks/gpu_acceptance.sh run --dry-run --out DIR    the same steps on the CPU with tiny sizes, in the
#                                                   current environment (tests/test_gpu_acceptance.py runs this)
#
# Environment: PYTHON, the interpreter the virtual environment is made from and the dry run runs with (python3);
# IQABENCH_GPU_VENV, the virtual environment (.venv-gpu); IQABENCH_WHEEL_PYTHON, the GPU machine's Python version
# for `wheels` (3.12); OUT, where install also copies its record when set.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${IQABENCH_GPU_VENV:-.venv-gpu}
python=${PYTHON:-python3}
gpu_budget=480  # the run's seconds on the GPU machine (gpu_acceptance.py's GPU_BUDGET)
wheel_python=${IQABENCH_WHEEL_PYTHON:-3.12}  # the GPU machine's Python, for `wheels`
action=${1:-}
shift || true

install() {
  local start mode py vllm_status vllm_reason
  start=$(date +%s)
  "$python" -m venv --without-pip "$venv"
  py="$venv/bin/python"
  # the machine's packages (its CUDA torch, and pip, which then installs into the venv) stay visible behind the
  # venv's own: through a .pth file, since --system-site-packages shows only the base interpreter's packages, not
  # those of a virtual environment that $python may be (a CUDA image's torch often lives in one)
  "$python" -c 'import site; print("".join(f"import site; site.addsitedir({p!r})\n" for p in site.getsitepackages()))' \
    > "$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/machine-packages.pth"
  # constraints: the torch stack the machine already has, pinned as installed, so nothing swaps its CUDA build;
  # without a torch, constraints.txt (torch==2.13.0: on Linux x86-64 the package index serves its CUDA build)
  "$py" benchmarks/gpu_acceptance.py --constraints > "$venv/constraints.txt"
  [ -s "$venv/constraints.txt" ] || cp constraints.txt "$venv/constraints.txt"
  echo "constraints: $(tr '\n' ' ' < "$venv/constraints.txt")"
  if [ -d .whl ]; then
    mode="offline: the wheels carried in .whl/ over the machine's own packages (no dependency resolution)"
    "$py" -m pip install --quiet --no-index --no-deps --no-compile .whl/*.whl
    "$py" -m pip install --quiet --no-index --no-deps --no-build-isolation -e .
    if ls .whl/vllm-*.whl >/dev/null 2>&1; then
      vllm_status=installed; vllm_reason=""
    else
      vllm_status="not installed"
      vllm_reason="the machine reaches no package index and no vllm wheel was carried (vLLM and its CUDA libraries are far larger than the 64 MiB a device call carries)"
    fi
  else
    mode="online: the package index, with the constraints above"
    "$py" -m pip install --quiet -c "$venv/constraints.txt" -e ".[train]"
    # vLLM pins the torch it was built for: with the machine's torch pinned, pip installs it only if a build matches
    if timeout 300 "$py" -m pip install --quiet -c "$venv/constraints.txt" vllm > "$venv/vllm-install.log" 2>&1; then
      vllm_status=installed; vllm_reason=""
    else
      vllm_status="not installed"
      vllm_reason="pip install vllm with the machine's torch pinned failed: $(grep -E 'ERROR|error' "$venv/vllm-install.log" | tail -n 2 | tr '\n' ' ' | cut -c1-400)"
    fi
  fi
  "$py" -m pip check > "$venv/pip-check.txt" 2>&1 || true
  "$py" - "$venv" "$(( $(date +%s) - start ))" "$mode" "$vllm_status" "$vllm_reason" <<'PY'
import json, sys
from pathlib import Path

import torch

venv, seconds, mode, vllm_status, vllm_reason = sys.argv[1:]
record = {
    "seconds": int(seconds), "mode": mode, "torch": torch.__version__, "cuda": torch.version.cuda,
    "cuda_available": torch.cuda.is_available(),
    "constraints": Path(venv, "constraints.txt").read_text().split(),
    "pip_check": Path(venv, "pip-check.txt").read_text().strip().splitlines(),
    "vllm": {"status": vllm_status, "reason": vllm_reason},
}
Path(venv, "install.json").write_text(json.dumps(record, indent=1) + "\n")
print(json.dumps(record, indent=1))
PY
}

case "$action" in
  wheels)
    rm -rf .whl && mkdir .whl
    "$python" benchmarks/gpu_acceptance.py --wheel-list > .whl/requirements.txt
    platforms=()
    for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
      platforms+=(--platform "$p")
    done
    while read -r requirement; do
      "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$wheel_python" --implementation cp \
        "${platforms[@]}" -d .whl "$requirement"
    done < .whl/requirements.txt
    rm .whl/requirements.txt
    ls .whl && du -sh .whl
    ;;
  install)
    install
    # a device call brings back what is under $OUT (the run's report embeds the record; it is not copied there)
    if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp "$venv/install.json" "$OUT/"; fi
    ;;
  run)
    extra=()
    if [[ " $* " != *" --dry-run "* ]]; then
      if [ ! -x "$venv/bin/python" ]; then  # a fresh machine: install first, in the run's time
        start=$(date +%s)
        install
        if [[ " $* " != *" --budget "* ]]; then extra+=(--budget "$(( gpu_budget - ($(date +%s) - start) ))"); fi
      fi
      python="$venv/bin/python"
      extra+=(--install-record "$venv/install.json")
    fi
    exec "$python" benchmarks/gpu_acceptance.py ${extra[@]+"${extra[@]}"} "$@"
    ;;
  *)
    sed -n '2,/^set /p' "$0" | grep '^#' >&2
    exit 2
    ;;
esac
