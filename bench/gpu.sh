#!/usr/bin/env bash
# Training throughput on a CUDA machine, unattended in under 8 minutes: a synthetic
# 2,000,000-row dataset of the default layout, the default model 2 epochs streaming and in
# memory, fp32 and bf16, on one GPU, then streaming bf16 data-parallel over all GPUs
# (torchrun); prints samples/s, peak GPU memory and the time the loop waited for the loader.
#
#   bash bench/gpu.sh [WORK_DIR]          # default: a fresh temporary directory
#   bash bench/gpu.sh --tiny [WORK_DIR]   # 3 chunks of a small layout: checks the script on CPU
#
# Each run is capped (timeout) so that one slow part cannot take the whole budget.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
TINY=""
if [[ ${1:-} == --tiny ]]; then TINY=--tiny; shift; fi
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
ROWS=2000000
[[ -n $TINY ]] && ROWS=12288 && touch "$WORK/tiny"
echo "# $(date -u +%FT%TZ) $(hostname) load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "# no nvidia-smi"
GPUS=$($PY -c 'import torch; print(torch.cuda.device_count())')
rm -f "$WORK/results.jsonl"
timeout 120 $PY bench/gpu.py make "$WORK" --rows $ROWS $TINY
for mode in streaming memory; do
  for precision in fp32 bf16; do
    timeout 70 $PY bench/gpu.py train "$WORK" $mode $precision || echo "# $mode $precision failed or timed out"
  done
done
if [[ $GPUS -gt 1 ]]; then
  timeout 60 $PY -m torch.distributed.run --standalone --nproc_per_node "$GPUS" \
    bench/gpu.py train "$WORK" streaming bf16 || echo "# data-parallel run failed or timed out"
else
  echo "# $GPUS GPU(s): no data-parallel run"
fi
$PY bench/gpu.py report "$WORK"
