#!/usr/bin/env bash
# Install the system packages the native plugins need (Debian/Ubuntu), only if missing.
#
#   install-deps.sh            probe, then apt-get install what is missing
#   install-deps.sh --print    probe only: print one line per missing package
#                              (`need PACKAGE  # why`) or tool (`missing TOOL  # why`)
#
# RUSTAI_DEPS_ROOT=DIR makes every probe look inside DIR instead of / (commands are
# looked up in DIR/usr/local/bin, DIR/usr/bin and DIR/bin only): tests/setup_scripts.rs
# runs each probe against fake roots this way.
source "$(dirname "$0")/env.sh"
R="${RUSTAI_DEPS_ROOT:-}"
PRINT=0
[ "${1:-}" = "--print" ] && PRINT=1

# The path of command $1, searched in the (possibly fake) root.
find_cmd() {
  if [ -z "$R" ]; then command -v "$1"; return; fi
  local d
  for d in "$R/usr/local/bin" "$R/usr/bin" "$R/bin"; do
    [ -x "$d/$1" ] && { echo "$d/$1"; return 0; }
  done
  return 1
}
have_cmd() { find_cmd "$1" >/dev/null; }

# True if any of the globs (relative to the root) names an existing file.
have_file() {
  local g f
  for g in "$@"; do
    for f in $R$g; do [ -e "$f" ] && return 0; done
  done
  return 1
}

# bindgen (llama-cpp-sys-2, whisper-rs-sys) loads libclang through clang-sys, which accepts
# files named libclang.so, libclang-*.so, libclang.so.* or libclang-*.so.* in LIBCLANG_PATH,
# LLVM's lib folders and the system library folders. libclang-cpp.so.NN (Debian's
# libclang-cpp package, installed with LLVM without libclang-dev) matches the last pattern
# but is the C++ API, not libclang: clang-sys rejects it, so this probe must too.
have_libclang() {
  local dirs=() d f base
  [ -z "$R" ] && [ -n "${LIBCLANG_PATH:-}" ] && dirs+=("$LIBCLANG_PATH")
  for d in "$R"/usr/lib/llvm-*/lib "$R"/usr/lib/*-linux-gnu "$R"/usr/lib "$R"/usr/lib64 \
    "$R"/usr/local/lib "$R"/usr/local/llvm*/lib; do
    [ -d "$d" ] && dirs+=("$d")
  done
  for d in "${dirs[@]}"; do
    for f in "$d"/libclang.so "$d"/libclang-*.so "$d"/libclang.so.* "$d"/libclang-*.so.*; do
      [ -e "$f" ] || continue
      base="${f##*/}"
      case "$base" in libclang-cpp*) continue ;; esac
      return 0
    done
  done
  return 1
}

# The tests' Python environment (scripts/python-env.sh) needs `python3 -m venv`, which
# Debian's python3 only has with python3-venv (ensurepip).
have_venv() {
  local py
  py="$(find_cmd python3)" || return 0 # no python3 at all is reported below
  "$py" -c 'import ensurepip, venv' >/dev/null 2>&1
}

need=()
why=()
want() { need+=("$1"); why+=("$2"); }
have_cmd cmake || want cmake "llama.cpp and whisper.cpp are built with CMake"
have_cmd cc || want build-essential "a C compiler (cc)"
have_cmd c++ || want build-essential "a C++ compiler (c++) for llama.cpp"
have_cmd make || want build-essential "make"
have_cmd ccache || want ccache "native builds are cached across clones"
have_libclang || want libclang-dev "bindgen needs libclang.so (libclang-cpp is not enough)"
# The piper plugin links espeak-ng's C library (phonemes) and needs its data at run time.
have_cmd espeak-ng || want espeak-ng "the piper plugin's phoneme data"
have_file /usr/lib/*/libespeak-ng.so /usr/lib/libespeak-ng.so /usr/lib64/libespeak-ng.so \
  || want libespeak-ng-dev "the piper plugin links libespeak-ng.so"
have_venv || want python3-venv "python3 -m venv for the client tests"

missing=()
have_cmd cargo || missing+=("cargo  # install Rust from https://rustup.rs")
have_cmd python3 || missing+=("python3  # needed to fetch the models and run the client tests")

# One package once, in order.
uniq=()
for p in "${need[@]}"; do
  case " ${uniq[*]} " in *" $p "*) ;; *) uniq+=("$p") ;; esac
done

if ((PRINT)); then
  for i in "${!need[@]}"; do
    case " ${need[*]:0:i} " in *" ${need[$i]} "*) continue ;; esac
    echo "need ${need[$i]}  # ${why[$i]}"
  done
  for m in "${missing[@]}"; do echo "missing $m"; done
  exit 0
fi

if ((${#uniq[@]})); then
  log "installing ${uniq[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${uniq[@]}" >/dev/null
  # Prove the install fixed what was missing, rather than failing later inside a build script.
  have_libclang || { echo "libclang-dev was installed but no libclang.so was found" >&2; exit 1; }
fi
for m in "${missing[@]}"; do echo "${m%%  #*} not found:${m#*#}" >&2; done
((${#missing[@]} == 0)) || exit 1
