#!/usr/bin/env bash
# Build the plugins in release and install them into plugins-dist/, plus the rustai CLI.
source "$(dirname "$0")/env.sh"
mkdir -p "$ROOT/plugins-dist"
args=()
for p in "${PLUGINS[@]}"; do args+=(-p "${p%%:*}"); done
log "building plugins (${PLUGINS[*]}) and the rustai CLI (release; the first build compiles llama.cpp and takes minutes)"
cargo build --release --manifest-path "$ROOT/Cargo.toml" "${args[@]}" -p rustai-cli
for p in "${PLUGINS[@]}"; do
  lib="${DYLIB_PREFIX}${p#*:}.${DYLIB_EXT}"
  src="$CARGO_TARGET_DIR/release/$lib"
  # Copy then rename: a watcher never sees a half-written plugin.
  if ! cmp -s "$src" "$ROOT/plugins-dist/$lib"; then
    cp "$src" "$ROOT/plugins-dist/.$lib.tmp"
    mv -f "$ROOT/plugins-dist/.$lib.tmp" "$ROOT/plugins-dist/$lib"
  fi
done
