#!/usr/bin/env bash
# Device run: train the full sd3 spec (64M parameters) on WebGPU for a few hundred steps, bring back
# the sample grids and metrics (the checkpoint stays on the machine: it is ~1 GB with Adam state).
cd "$(dirname "$0")"
STEPS=${STEPS:-400}
timeout ${LIMIT:-330} bash run.sh train generated/sd3 --steps "$STEPS" --batch-size 64 --backend webgpu --sample-every 200 \
  --checkpoint-every 0 --samples 64 --out /tmp/sd3-gpu --no-progress 2>&1 | tail -8
mkdir -p "$OUT/sd3-gpu"
cp /tmp/sd3-gpu/metrics.jsonl /tmp/sd3-gpu/samples/* "$OUT/sd3-gpu/" 2>/dev/null
ls -la /tmp/sd3-gpu/samples /tmp/sd3-gpu/checkpoints 2>/dev/null | head
