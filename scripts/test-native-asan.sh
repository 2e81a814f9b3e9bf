#!/usr/bin/env bash
# The native tests under AddressSanitizer + UndefinedBehaviorSanitizer (issue 24): builds the
# addon with the sanitizers into build-asan/ (scripts/build-native.mjs --asan), then runs the
# native test files with that addon (SDC_NATIVE_ADDON) and gcc's sanitizer runtimes preloaded
# into node. Any report aborts the process that hit it, which fails its test. Usage:
#   scripts/test-native-asan.sh [test files...]   (default: the kernel tests, the decoder fuzz and the convolution windows)
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/build-native.mjs --asan >/dev/null
asan="$(gcc -print-file-name=libasan.so)"
ubsan="$(gcc -print-file-name=libubsan.so)"
for lib in "$asan" "$ubsan"; do
  [ -f "$lib" ] || { echo "sdc: $lib not found (gcc's sanitizer runtimes: apt-get install libasan8 libubsan1)" >&2; exit 1; }
done
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/graph/native.test.ts test/graph/native-fuzz.test.ts test/graph/conv-windows.test.ts)
# node itself is not instrumented: no leak check (V8 keeps its heap to exit); stop at the first report
export SDC_NATIVE_ADDON="$PWD/build-asan/build/Release/sdc_cpu.node"
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=86"
npx vitest run "${files[@]}"
