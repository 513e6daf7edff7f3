# Shared settings for the RustAI scripts (sourced, not run).
# One target dir outside the clone, reused by every run on this machine, so
# llama.cpp is compiled once; no debug info for dependencies; ccache for C/C++.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rustai-target}"
export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# llama.cpp's CMake picks ccache up by itself when it is installed (cache in ~/.cache/ccache).
case "$(uname -s)" in
  Darwin) DYLIB_PREFIX=lib; DYLIB_EXT=dylib ;;
  MINGW*|MSYS*|CYGWIN*) DYLIB_PREFIX=; DYLIB_EXT=dll ;;
  *) DYLIB_PREFIX=lib; DYLIB_EXT=so ;;
esac
# The plugins the main set-up builds: crate name, library name.
PLUGINS=("gguf:rustai_gguf" "candle:rustai_candle" "whisper:rustai_whisper" "piper:rustai_piper" "openai:rustai_openai" "ollama:rustai_ollama" "calculator:rustai_calculator" "files:rustai_files")
# The portable build flags for whisper.cpp (GGML_*) are in .cargo/config.toml, so every cargo
# command gets them, not only these scripts.
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
