#!/usr/bin/env bash
# Device run for the static engine (runtime/graph): kernel check against the CPU interpreter,
# step times per GEMM tiling beside the tfjs engine, then a real training run of specs/sd3.
cd "$(dirname "$0")"   # pack/sdc-gpu/
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
STEPS=${STEPS:-2000}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== graph-check sd3-tiny b4"
for t in auto 128 32; do SDC_GEMM_TILE=$t timeout 60 bash run.sh node graph-check.mjs --generated generated/sd3-tiny --batch 4 2>&1 | tail -1 | cut -c1-900; done
echo "== static step sd3-seed b64 ctx8 per tiling"
for t in auto 128 64 32x64 32; do
  P=""; [ $t = auto ] && P=--profile
  SDC_GEMM_TILE=$t timeout 60 bash run.sh node step.mjs --generated generated/sd3-seed --batch 64 --context-tokens 8 --steps 10 --warmup 3 --backend webgpu --engine static --json $P 2>&1 | tail -1 | tee -a $OUT/static-ctx8.jsonl | cut -c1-1500
done
echo "== static step sd3-seed b64 ctx205"
timeout 60 bash run.sh node step.mjs --generated generated/sd3-seed --batch 64 --steps 6 --warmup 2 --backend webgpu --engine static --json --profile 2>&1 | tail -1 | tee $OUT/static-ctx205.json | cut -c1-1500
echo "== tfjs step sd3-seed b64 ctx8 (same machine, for the ratio)"
timeout 60 bash run.sh node step.mjs --generated generated/sd3-seed --batch 64 --context-tokens 8 --steps 4 --warmup 2 --backend webgpu --engine tfjs --json 2>&1 | tail -1 | tee $OUT/tfjs-ctx8.json | cut -c1-600
echo "== train generated/sd3 --engine static, $STEPS steps"
timeout ${LIMIT:-240} bash run.sh train generated/sd3 --steps "$STEPS" --batch-size 64 --backend webgpu --engine static --sample-every 1000 \
  --checkpoint-every 0 --samples 64 --sample-steps 50 --out /tmp/sd3-static --no-progress 2>&1 | tail -8
mkdir -p "$OUT/sd3-static"
cp /tmp/sd3-static/metrics.jsonl /tmp/sd3-static/summary.json /tmp/sd3-static/samples/* "$OUT/sd3-static/" 2>/dev/null
echo "== done"
