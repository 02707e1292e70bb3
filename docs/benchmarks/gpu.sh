#!/usr/bin/env bash
# The GPU figures of docs/performance.md ("On a GPU") in one command, for a lent GPU machine
# (about 8 minutes on one H200). Run from the repository root with the real data in
# FMNIST_DATA_DIR and the project's packages importable; figures go to OUT, run folders to
# RUNS (many files: keep them out of OUT where OUT's files are copied back).
#   OUT=/tmp/out RUNS=/tmp/runs bash docs/benchmarks/gpu.sh
set -uo pipefail
out=${OUT:-gpu-figures} runs=${RUNS:-gpu-figures/runs} py=${PYTHON:-python3}
mkdir -p "$out" "$runs"
export PYTHONUNBUFFERED=1 PYTHONPATH="src:tests${PYTHONPATH:+:$PYTHONPATH}"
run() { echo "+ $*"; "$@"; echo "exit status $?"; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  # CUDA's own check that no training step synchronises between logging steps, and the
  # other tests that need a GPU.
  run "$py" -m pytest -q -p no:cacheprovider -rs tests/test_step_syncs.py tests/test_classifier.py -k "gpu"
  # The seed network: the Trainer against the plain loop, identical settings, default batch.
  run "$py" -m fmnist_lightning.benchmark --no-baseline --output "$out/benchmark.json"
  run "$py" -m fmnist_lightning.benchmark --no-baseline --no-epoch --compile --output "$out/benchmark-compile.json"
  # The speedrun over three seeds: fit + test and time to 93% as the results table shows them.
  run "$py" -m fmnist_lightning.train -m experiment=speedrun seed=0,1,2 paths.root="$runs"
  run "$py" -m fmnist_lightning.results "$runs" --output "$out/results.md"
} 2>&1 | tee "$out/log.txt"
