#!/usr/bin/env bash
# The GPU check, a few minutes on one GPU: training-step rows on CUDA (DDPM U-Net and DiT-B/2,
# fp32 and bf16, eager and torch.compile, fused AdamW), DiT-B/2 bf16 MFU against the GPU's
# peak, and a short default run. Writes <out_dir>/gpu.json; then
#   python scripts/benchmark.py --readme --from-json cpu.json,<out_dir>/gpu.json
# puts it in the README's GPU section.
#
# usage: bash scripts/gpu_check.sh [--dry-run] [out_dir]     (out_dir default: $OUT or gpu_check)
#   --dry-run  the same code path at tiny size on any device (no GPU needed, no compilation)
# GPU_PEAK_TFLOPS=<dense bf16 TFLOP/s> overrides the peak looked up from the GPU's name.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=()
if [[ "${1:-}" == "--dry-run" ]]; then DRY=(--dry-run); shift; fi
OUT_DIR="${1:-${OUT:-gpu_check}}"
PYTHON="${PYTHON:-python}"
mkdir -p "$OUT_DIR"
if [[ ${#DRY[@]} -eq 0 ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT_DIR/nvidia-smi.txt"
fi
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m diffusion_lab.bench.gpu_check \
  --out "$OUT_DIR/gpu.json" "${DRY[@]}" 2>&1 | tee "$OUT_DIR/gpu_check.log"
