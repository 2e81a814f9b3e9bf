#!/usr/bin/env bash
# bench/cpu-peak.sh: one core's fp32 FMA and AVX512-BF16 peaks, measured (bench/cpu_peak.cc), with
# the CPU's model line. Needs g++ and a CPU with AVX512-BF16 (says so and exits 2 otherwise).
set -euo pipefail
cd "$(dirname "$0")"
grep -q avx512_bf16 /proc/cpuinfo || { echo "cpu-peak: this CPU has no AVX512-BF16" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
g++ -O2 -march=native -o "$out/cpu_peak" cpu_peak.cc
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs) model $(grep -m1 -E '^model\s' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%Y-%m-%dT%H:%MZ), one thread"
"$out/cpu_peak"
