#!/usr/bin/env bash
# Convert the Whisper tiny.en model (CTranslate2 form, fetched by fetch-models.sh)
# into the whisper.cpp ggml file with `rustai convert-whisper`, and check the result
# against the known size and sha256. Idempotent. Needs the rustai CLI (build-plugins.sh).
source "$(dirname "$0")/env.sh"
out="$ROOT/models/ggml-tiny.en.bin"
sha=25d0eb8164c94f6277b8d12c7a54e0315fc9761b294162662d6d5ad6c656eff6
if [ -f "$out" ] && echo "$sha  $out" | sha256sum -c --quiet - >/dev/null 2>&1; then
  exit 0
fi
log "converting Whisper tiny.en (CTranslate2) to models/ggml-tiny.en.bin"
"$CARGO_TARGET_DIR/release/rustai" convert-whisper "$ROOT/models/.sources/whisper-tiny.en-ct2" "$out"
if ! echo "$sha  $out" | sha256sum -c --quiet -; then
  rm -f "$out"
  echo "converted whisper model does not match the known sha256 $sha" >&2
  exit 1
fi
