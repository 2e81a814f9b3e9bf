#!/usr/bin/env bash
# A software WebGPU adapter on a CPU-only Linux machine: Mesa's lavapipe (Vulkan on llvmpipe)
# from Debian trixie, unpacked into a cache folder (no root needed; ~75 MB of debs), for
# testing the static engine's WGSL kernels where no GPU exists (CI, laptops).
# Dawn needs a newer lavapipe than bookworm's, and trixie's needs glibc 2.38, so node runs under
# trixie's own loader.
#
#   scripts/lavapipe.sh setup            # download + unpack (idempotent)
#   scripts/lavapipe.sh node ARGS...      # run node with the adapter, e.g.
#   scripts/lavapipe.sh node --import tsx bench/graph-check.ts
set -euo pipefail
CACHE="${SDC_LAVAPIPE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sdc-lavapipe}"
ROOT="$CACHE/root"
LIB="$ROOT/usr/lib/x86_64-linux-gnu"
PKGS="mesa-vulkan-drivers libllvm19 libvulkan1 libdrm2 libdrm-amdgpu1 libelf1t64 libwayland-client0 libx11-xcb1 libxcb-dri3-0 libxcb-present0 libxcb-randr0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 libxcb1 libxshmfence1 libz3-4 libedit2 libxml2 libicu76 libzstd1 libexpat1 libffi8 libtinfo6 libbsd0 libmd0 libxau6 libxdmcp6 libc6 libstdc++6 libgcc-s1 zlib1g"

setup() {
  [ -f "$ROOT/.ok" ] && return 0
  mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial" "$CACHE/debs"
  echo "deb http://deb.debian.org/debian trixie main" > "$CACHE/apt/sources.list"
  local A=(-o "Dir::Etc::sourcelist=$CACHE/apt/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$CACHE/apt/lists" -o "Dir::Cache=$CACHE/apt/cache" -o "APT::Sandbox::User=$(id -un)")
  apt-get "${A[@]}" -qq update >&2
  (cd "$CACHE/debs" && apt-get "${A[@]}" -qq download $PKGS >&2)
  rm -rf "$ROOT" && mkdir -p "$ROOT"
  for d in "$CACHE"/debs/*.deb; do dpkg -x "$d" "$ROOT"; done
  sed -i "s#\"library_path\": \"[^\"]*/libvulkan_lvp.so\"#\"library_path\": \"$LIB/libvulkan_lvp.so\"#" "$ROOT/usr/share/vulkan/icd.d/lvp_icd.json"
  touch "$ROOT/.ok"
}

case "${1:-}" in
  setup) setup ;;
  node)
    shift
    setup
    export VK_DRIVER_FILES="$ROOT/usr/share/vulkan/icd.d/lvp_icd.json" XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" SDC_WEBGPU_ALLOW_SOFTWARE=1
    exec "$ROOT/usr/lib64/ld-linux-x86-64.so.2" --library-path "$LIB" "$(command -v node)" "$@"
    ;;
  *) echo "usage: $0 setup | node ARGS..." >&2; exit 2 ;;
esac
