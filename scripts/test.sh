#!/usr/bin/env bash
# Run every test: installs/fetches/builds what the tests need first, so it
# works on a fresh machine. CI (.ci/run) runs exactly this.
source "$(dirname "$0")/env.sh"
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/fetch-models.sh"
"$ROOT/scripts/build-plugins.sh"
"$ROOT/scripts/convert-whisper.sh"
"$ROOT/scripts/python-env.sh"
cd "$ROOT"
# Test fixtures are cdylibs too: build every library first, then test.
log "cargo build --release --workspace"
cargo build --release --workspace
log "cargo test --release --workspace"
cargo test --release --workspace
# The official openai, anthropic and ollama Python clients against a real `rustai serve`, then the
# standing adversarial suite (hostile requests, bodies, connections and files).
log "pytest tests/python (openai, anthropic and ollama clients) and tests/adversarial"
RUSTAI_BIN="$CARGO_TARGET_DIR/release/rustai" RUSTAI_PLUGINS="$ROOT/plugins-dist" RUSTAI_MODELS="$ROOT/models" \
  "${RUSTAI_VENV:-$HOME/.cache/rustai-venv}/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/tests/python" "$ROOT/tests/adversarial"
# Benchmarks are not run here (they print figures, not verdicts), but they must keep compiling.
log "cargo bench --no-run"
cargo bench --workspace --no-run
# The side-by-side with llama.cpp's own server must build and print its table (short workloads).
log "scripts/bench-vs-llama-server.sh --quick"
"$ROOT/scripts/bench-vs-llama-server.sh" --quick
# The plugin template is its own Cargo project (as a third party's would be): test it too.
log "cargo test (examples/plugin-template)"
cargo test --release --manifest-path examples/plugin-template/Cargo.toml
