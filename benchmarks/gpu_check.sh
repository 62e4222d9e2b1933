#!/usr/bin/env bash
# The GPU check in one call on a GPU machine where the project is not installed (benchmarks/gpu_check.py
# says what it measures):
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=600)
# Installs the carried wheels (.whl/: open_clip_torch, ftfy, wcwidth, onnxslim) into /tmp/site, then runs
# the check with --out $OUT: gpu_check.json, gpu_check.md and gpu_check.log come back. gpu_check.py maps
# the checkout onto sanrt.* itself. Its sanrt rows run where onnxruntime-gpu, or TensorRT with polygraphy
# and cuda-python, is installed; elsewhere they say why not. Extra arguments go to gpu_check.py, e.g.
# `bash benchmarks/gpu_check.sh --batches 1,8`.
set -o pipefail
cd "$(dirname "$0")/.." || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
out=${OUT:-out/gpu_check}
mkdir -p "$out" || exit 1
# 570 s: the report files are rewritten after every row, so a run stopped here still returns its rows
timeout 570 python3 benchmarks/gpu_check.py --out "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
