#!/usr/bin/env bash
# One prepared device run: WebGPU smoke bench, fixture check on webgpu, step times, a short training run.
cd "$(dirname "$0")"   # run from pack/sdc-gpu/ (npm run pack:gpu copies this script there)
R=${FIXTURES:-../../test/fixtures/mmdit-fixtures}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== bench (webgpu smoke)"; timeout 120 bash run.sh bench --n 4096 --iters 5 --ops 1000 --no-wasm 2>&1 | tail -15
for n in a b; do echo "== fixture $n on webgpu"; timeout 60 bash run.sh forward generated/mmdit-tiny-$n --weights $R/mmdit-tiny-$n.weights.safetensors --inputs $R/mmdit-tiny-$n.io.safetensors --backend webgpu 2>&1 | grep -v "^$" | tail -4; done
echo "== step sd3-seed b64 ctx8"; timeout 150 bash run.sh node step.mjs --generated generated/sd3-seed --batch 64 --context-tokens 8 --steps 6 --warmup 2 --backend webgpu --json --profile 2>&1 | tail -9 | tee $OUT/step-ctx8.txt
echo "== step sd3-seed b64 ctx205"; timeout 100 bash run.sh node step.mjs --generated generated/sd3-seed --batch 64 --steps 3 --warmup 1 --backend webgpu --json 2>&1 | tail -5 | tee $OUT/step-ctx205.txt
echo "== train sd3-tiny 20 steps webgpu"; timeout 90 bash run.sh train generated/sd3-tiny --steps 20 --batch-size 16 --backend webgpu --seed 0 --sample-every 0 --checkpoint-every 0 --samples 4 --sample-steps 2 --out /tmp/gpu-tiny --no-progress 2>&1 | tail -4; cat /tmp/gpu-tiny/metrics.jsonl
echo "== done"
