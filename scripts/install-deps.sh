#!/usr/bin/env bash
# Install the system packages the native plugins need (Debian/Ubuntu), only if missing.
source "$(dirname "$0")/env.sh"
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v cc >/dev/null || need+=(build-essential)
command -v ccache >/dev/null || need+=(ccache)
# bindgen (llama-cpp-sys-2) needs libclang.
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/*/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
# The piper plugin links espeak-ng's C library (phonemes) and needs its data at run time.
command -v espeak-ng >/dev/null || need+=(espeak-ng)
ls /usr/lib/*/libespeak-ng.so >/dev/null 2>&1 || ls /usr/lib/libespeak-ng.so >/dev/null 2>&1 || need+=(libespeak-ng-dev)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found (needed to fetch the models)" >&2; exit 1; }
