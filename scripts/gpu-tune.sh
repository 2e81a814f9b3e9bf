#!/usr/bin/env bash
# Device run: step time of generated/sd3-seed (batch 64, 8 context tokens) under WebGPU settings.
cd "$(dirname "$0")"
run() { echo "== $*"; timeout 90 bash run.sh node step.mjs --generated generated/sd3-seed --batch 64 --context-tokens 8 --steps 4 --warmup 2 --backend webgpu --json "$@" 2>&1 | grep -E '^\{|rror' | tail -2; }
run
run --tf-flag WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=256
SDC_DAWN_TOGGLES="enable-dawn-features=skip_validation,disable_robustness" run --tf-flag WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=256
SDC_DAWN_TOGGLES="enable-dawn-features=skip_validation,disable_robustness" run --tf-flag WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=256 --tf-flag WEBGPU_CPU_FORWARD=false
