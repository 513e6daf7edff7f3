//! Time to first token and generation speed for the same request, in process
//! (the engine's token stream) and through HTTP (`/api/generate`, NDJSON
//! streaming, on 127.0.0.1). Prints a table; run with
//! `cargo bench -p rustai-server --bench http_vs_inprocess` after `scripts/setup.sh`.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use rustai_core::{
    abi::{GenerateRequest, SamplingParams},
    Engine, EngineConfig, LoadOptions, PluginManager, Registry, StreamEvent,
};

const PROMPT: &str = "Once upon a time, in a small village by the sea,";
const TOKENS: u32 = 64;
const RUNS: usize = 5;

struct Sample {
    ttft: Duration,
    tokens_per_s: f64,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn in_process(engine: &Engine) -> Sample {
    let started = Instant::now();
    let mut sampling = SamplingParams { max_tokens: TOKENS, ignore_eos: true, ..SamplingParams::greedy() };
    let opts = LoadOptions { threads: 2, ..LoadOptions::default() };
    let engine2 = engine.clone();
    let (prepared, sampling) = tokio::task::spawn_blocking(move || {
        let p = engine2.prepare_llm("smollm2", &opts, &mut sampling).expect("model");
        (p, sampling)
    })
    .await
    .expect("join");
    let mut stream = prepared.lease.model().stream_generate(GenerateRequest::new(PROMPT, sampling));
    let mut first = None;
    let mut n = 0u32;
    while let Some(event) = stream.next().await {
        match event {
            StreamEvent::Piece(_) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
            }
            StreamEvent::Prompt { .. } | StreamEvent::Logprobs(_) => {}
            StreamEvent::Done(_) => break,
            StreamEvent::Error(e) => panic!("{e}"),
        }
    }
    let first = first.expect("no token");
    Sample { ttft: first - started, tokens_per_s: f64::from(n.saturating_sub(1)) / first.elapsed().as_secs_f64() }
}

async fn over_http(client: &reqwest::Client, url: &str) -> Sample {
    let body = serde_json::json!({
        "model": "smollm2", "prompt": PROMPT, "raw": true,
        "options": { "num_predict": TOKENS, "temperature": 0, "num_thread": 2 },
    });
    let started = Instant::now();
    let response = client.post(format!("{url}/api/generate")).body(body.to_string()).send().await.expect("request");
    let mut bytes = response.bytes_stream();
    let (mut first, mut n, mut buf) = (None, 0u32, Vec::new());
    while let Some(chunk) = bytes.next().await {
        buf.extend_from_slice(&chunk.expect("chunk"));
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
            if v["done"] == false {
                first.get_or_insert_with(Instant::now);
                n += 1;
            }
        }
    }
    let first = first.expect("no token");
    Sample { ttft: first - started, tokens_per_s: f64::from(n.saturating_sub(1)) / first.elapsed().as_secs_f64() }
}

fn summary(name: &str, samples: &[Sample]) {
    let mean = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(f).sum::<f64>() / samples.len() as f64;
    let sd = |f: &dyn Fn(&Sample) -> f64| {
        let m = mean(f);
        (samples.iter().map(|s| (f(s) - m).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
    };
    let ttft = |s: &Sample| s.ttft.as_secs_f64() * 1e3;
    let tps = |s: &Sample| s.tokens_per_s;
    println!("| {name:<11} | {:>8.1} ± {:>5.1} | {:>7.1} ± {:>4.1} |", mean(&ttft), sd(&ttft), mean(&tps), sd(&tps));
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let plugins = PluginManager::from_dirs([root().join("plugins-dist")]).expect("plugins");
        let registry = Registry::scan_only([root().join("models")]);
        let engine = Engine::new(plugins, registry, None, EngineConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server_engine = engine.clone();
        tokio::spawn(rustai_server::serve(listener, server_engine, rustai_server::ServerConfig::default(), std::future::pending()));
        let client = reqwest::Client::new();
        // Warm-up: load the model once, both paths.
        in_process(&engine).await;
        over_http(&client, &url).await;
        let mut local = Vec::new();
        let mut http = Vec::new();
        for _ in 0..RUNS {
            local.push(in_process(&engine).await);
            http.push(over_http(&client, &url).await);
        }
        println!("SmolLM2-135M Q4_1, {TOKENS} tokens, greedy, 2 threads, {RUNS} runs (model loaded)\n");
        println!("| path        | TTFT ms (mean ± sd) | tokens/s (mean ± sd) |");
        println!("| ----------- | ------------------- | -------------------- |");
        summary("in-process", &local);
        summary("HTTP NDJSON", &http);
    });
}
