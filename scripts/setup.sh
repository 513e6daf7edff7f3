#!/usr/bin/env bash
# The main job: install what is missing, fetch the tiny models, build the
# plugins into plugins-dist/, and generate an answer through the gguf plugin.
source "$(dirname "$0")/env.sh"
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/fetch-models.sh"
"$ROOT/scripts/build-plugins.sh"
"$ROOT/scripts/convert-whisper.sh"
log "rustai run SmolLM2-135M-Instruct \"What is the capital of France?\""
cd "$ROOT"
"$CARGO_TARGET_DIR/release/rustai" run SmolLM2-135M-Instruct "What is the capital of France?" --temperature 0 --verbose
