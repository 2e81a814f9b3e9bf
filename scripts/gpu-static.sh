#!/usr/bin/env bash
# Device run for the static engine (runtime/graph): kernel check against the CPU interpreter,
# GEMM tuning for the sd3 / sd3-seed step shapes, step times (tuned, heuristic, tfjs engine) and
# a real training run of specs/sd3 with the tuned table.
cd "$(dirname "$0")"   # pack/sdc-gpu/
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
STEPS=${STEPS:-2000}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== graph-check sd3-tiny b4 (heuristic; split-K 2 forced)"
timeout 40 bash run.sh node graph-check.mjs --generated generated/sd3-tiny --batch 4 2>&1 | tail -1 | cut -c250-700
SDC_GEMM_SPLIT=2 timeout 40 bash run.sh node graph-check.mjs --generated generated/sd3-tiny --batch 4 2>&1 | tail -1 | cut -c250-700
echo "== gemm-tune sd3-seed (ctx 8, 205) + sd3, batch 64"
timeout 150 bash run.sh node gemm-tune.mjs --generated generated/sd3-seed --generated generated/sd3 --batch 64 --context-tokens 8,205 --out $OUT/gemm-table.json 2>$OUT/gemm-tune.log | tee $OUT/gemm-tune.json | cut -c1-400
tail -5 $OUT/gemm-tune.log
[ -s $OUT/gemm-table.json ] && export SDC_GEMM_TABLE=$OUT/gemm-table.json
echo "== static step sd3-seed b64 ctx8: the committed table (runtime/executors/webgpu/gemm-table.ts)"
SDC_GEMM_TABLE= timeout 50 bash run.sh node step.mjs --generated generated/sd3-seed --batch 64 --context-tokens 8 --steps 10 --warmup 3 --backend webgpu --engine static --json 2>&1 | tail -1 | tee $OUT/static-ctx8-committed.json | cut -c1-700
echo "== static step sd3-seed b64 ctx8: this run's table, then heuristic"
timeout 50 bash run.sh node step.mjs --generated generated/sd3-seed --batch 64 --context-tokens 8 --steps 10 --warmup 3 --backend webgpu --engine static --json --profile 2>&1 | tail -1 | tee $OUT/static-ctx8-tuned.json | cut -c1-1600
SDC_GEMM_TABLE= SDC_GEMM_TILE=auto timeout 50 bash run.sh node step.mjs --generated generated/sd3-seed --batch 64 --context-tokens 8 --steps 10 --warmup 3 --backend webgpu --engine static --json 2>&1 | tail -1 | tee $OUT/static-ctx8-heuristic.json | cut -c1-700
echo "== static step sd3-seed b64 ctx205 tuned"
timeout 50 bash run.sh node step.mjs --generated generated/sd3-seed --batch 64 --steps 6 --warmup 2 --backend webgpu --engine static --json --profile 2>&1 | tail -1 | tee $OUT/static-ctx205-tuned.json | cut -c1-1600
echo "== tfjs engine sd3-seed b64 ctx8 (same machine, for the ratio)"
timeout 50 bash run.sh node step.mjs --generated generated/sd3-seed --batch 64 --context-tokens 8 --steps 4 --warmup 2 --backend webgpu --engine tfjs --json 2>&1 | tail -1 | tee $OUT/tfjs-ctx8.json | cut -c1-600
echo "== train generated/sd3 --engine static, $STEPS steps"
timeout ${LIMIT:-200} bash run.sh train generated/sd3 --steps "$STEPS" --batch-size 64 --backend webgpu --engine static --sample-every 1000 \
  --checkpoint-every 0 --samples 64 --sample-steps 50 --out /tmp/sd3-static --no-progress 2>&1 | tail -6
mkdir -p "$OUT/sd3-static"
cp /tmp/sd3-static/metrics.jsonl /tmp/sd3-static/samples/* "$OUT/sd3-static/" 2>/dev/null
cp /tmp/sd3-static/summary.json "$OUT/sd3-static/summary.json.txt" 2>/dev/null
echo "== done"
