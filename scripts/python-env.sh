#!/usr/bin/env bash
# A virtual environment with the official OpenAI, Anthropic and Ollama Python clients (from
# PyPI, pinned) for the server tests; kept outside the clone and reused.
source "$(dirname "$0")/env.sh"
VENV="${RUSTAI_VENV:-$HOME/.cache/rustai-venv}"
REQS=(openai==3.54.0 anthropic==2.10.0 ollama==0.6.3 pytest==9.2.0 jsonschema==4.25.1)
if ! "$VENV/bin/python" -c 'import openai, anthropic, ollama, pytest, jsonschema' >/dev/null 2>&1 \
  || [ "$(cat "$VENV/.rustai-reqs" 2>/dev/null)" != "${REQS[*]}" ]; then
  log "python venv with ${REQS[*]} ($VENV)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQS[@]}"
  echo "${REQS[*]}" >"$VENV/.rustai-reqs"
fi
