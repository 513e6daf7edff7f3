//! `rustai bench MODEL --serving [--url URL]`: what users of a server feel, measured the
//! same way against any OpenAI-compatible server, so RustAI and llama-server can be put side
//! by side (`scripts/bench-vs-llama-server.sh` does).
//!
//! Every request is a streamed `/v1/chat/completions` call, greedy, timed by this client:
//! - **one request**: time to first token (TTFT) and generation tokens/s (content chunks
//!   after the first, over the time from the first to the last);
//! - **repeated**: the same request again, its TTFT (what a prompt cache saves);
//! - **conversation**: turns that resend the whole history with each new question, the
//!   last turn's TTFT;
//! - **N streams**: N different requests at once, generated tokens of all over the wall time.
//!
//! Without `--url` a server is started in this process (the engine `rustai serve` uses, on
//! 127.0.0.1:0), and the single request is also run in-process through the engine, which
//! gives the HTTP layer's own cost.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustai_core::{
    abi::{GenerateOptions, SamplingExtras, SamplingParams},
    chat::{Conversation, Turn},
    Engine, EngineConfig, LoadOptions, StreamEvent,
};
use serde_json::{json, Value};

use crate::{
    cli::{BenchArgs, Cli},
    setup,
};

/// Sizes of the workloads.
#[derive(Debug, Clone)]
struct Plan {
    gen_tokens: u32,
    turns: usize,
    reply_tokens: u32,
    streams: Vec<usize>,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self { gen_tokens: 16, turns: 3, reply_tokens: 8, streams: vec![2] }
        } else {
            Self { gen_tokens: 128, turns: 8, reply_tokens: 48, streams: vec![4, 8] }
        }
    }
}

const STORY: &str = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle during a storm.";
const SUBJECTS: [&str; 8] =
    ["a lighthouse keeper", "a young baker", "an old clockmaker", "a ship's cat", "a mountain guide", "a librarian", "a beekeeper", "a train driver"];
/// Each turn's question comes with a paragraph, as chat users paste context.
const TURNS: [&str; 8] = [
    "I am planning a garden on a small balcony that gets about five hours of sun in the afternoon. The railing is metal and the floor is concrete. Which vegetables could grow there?",
    "The balcony is on the fourth floor and it can be windy in spring. I would like to avoid anything that needs deep soil. How should I protect young plants from the wind?",
    "I have room for about six containers, each around forty litres. Some of them are plastic and some are terracotta. Which material is better for tomatoes and why?",
    "Watering is a problem because I travel for a few days each month. I have heard about self-watering pots and drip systems. What would you suggest for a small budget?",
    "There is a neighbour's tree that drops leaves onto the balcony in autumn. Could the leaves be used as mulch or compost in containers, or is that a bad idea?",
    "I would also like some herbs for cooking, mostly basil, parsley and mint. I read that mint spreads aggressively. How should I plant the herbs together with the vegetables?",
    "Last year aphids covered my peppers and I did not want to use chemical sprays. What natural ways are there to keep aphids under control on a balcony?",
    "Thank you for the advice so far. Please put together a short weekly routine for looking after the whole balcony garden through the summer.",
];

/// One streamed request as the client saw it.
#[derive(Debug, Clone, Copy)]
struct Stream {
    ttft: Duration,
    tokens: u32,
    /// From the first content chunk to the last.
    span: Duration,
    total: Duration,
}

impl Stream {
    fn tokens_per_s(&self) -> f64 {
        if self.tokens < 2 || self.span.is_zero() {
            0.0
        } else {
            f64::from(self.tokens - 1) / self.span.as_secs_f64()
        }
    }
}

/// Every request starts with this system message. A model's Jinja template may add a default
/// system prompt when there is none (SmolLM2's does; llama-server runs that template, RustAI's
/// chat formatting does not yet), so without it the two servers would not see the same prompt.
const SYSTEM: &str = "You are a helpful assistant.";

fn body(model: &str, messages: &[(String, String)], max_tokens: u32) -> Value {
    let messages: Vec<Value> = std::iter::once(json!({ "role": "system", "content": SYSTEM }))
        .chain(messages.iter().map(|(r, c)| json!({ "role": r, "content": c })))
        .collect();
    json!({ "model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0, "stream": true })
}

/// Send one streamed chat request; returns the timing and the reply text.
async fn stream(client: &reqwest::Client, url: &str, body: &Value) -> Result<(Stream, String)> {
    let started = Instant::now();
    let mut resp = client
        .post(format!("{url}/v1/chat/completions"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .context("request failed")?;
    if !resp.status().is_success() {
        let status = resp.status();
        bail!("{status}: {}", resp.text().await.unwrap_or_default());
    }
    let (mut buf, mut text) = (Vec::<u8>::new(), String::new());
    let (mut first, mut last, mut tokens) = (None, started, 0u32);
    while let Some(chunk) = resp.chunk().await? {
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let Some(data) = std::str::from_utf8(&line).ok().and_then(|l| l.trim().strip_prefix("data:")) else { continue };
            let data = data.trim();
            if data == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(data).with_context(|| format!("not JSON: {data}"))?;
            if let Some(e) = v.get("error") {
                bail!("the server reported an error mid-stream: {e}");
            }
            let piece = v.pointer("/choices/0/delta/content").and_then(Value::as_str).unwrap_or("");
            if !piece.is_empty() {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                tokens += 1;
                text.push_str(piece);
            }
        }
    }
    let total = started.elapsed();
    let first = first.unwrap_or(last);
    Ok((Stream { ttft: first - started, tokens, span: last - first, total }, text))
}

/// The measured figures of one server.
#[derive(Debug, Default)]
struct Results {
    single: Option<Stream>,
    repeated_ttft: Option<Duration>,
    turn_ttfts: Vec<Duration>,
    streams: Vec<(usize, u32, Duration)>,
    in_process: Option<Stream>,
}

async fn workloads(client: &reqwest::Client, url: &str, model: &str, plan: &Plan) -> Result<Results> {
    let mut r = Results::default();
    let single = body(model, &[("user".into(), STORY.into())], plan.gen_tokens);
    // Warm-up (loads the model), then the measured request with nothing cached.
    let warm = body(model, &[("user".into(), "Say hello.".into())], 4);
    stream(client, url, &warm).await.context("warm-up")?;
    let (s, _) = stream(client, url, &single).await.context("one request")?;
    r.single = Some(s);
    let (again, _) = stream(client, url, &single).await.context("repeated request")?;
    r.repeated_ttft = Some(again.ttft);
    let mut history: Vec<(String, String)> = Vec::new();
    for (turn, question) in TURNS.iter().take(plan.turns).enumerate() {
        history.push(("user".into(), (*question).to_owned()));
        let (s, reply) = stream(client, url, &body(model, &history, plan.reply_tokens)).await.with_context(|| format!("turn {}", turn + 1))?;
        r.turn_ttfts.push(s.ttft);
        history.push(("assistant".into(), reply));
    }
    for &n in &plan.streams {
        let started = Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..n {
            let prompt = format!("Write a long, detailed story about {}.", SUBJECTS[i % SUBJECTS.len()]);
            let b = body(model, &[("user".into(), prompt)], plan.gen_tokens);
            let (client, url) = (client.clone(), url.to_owned());
            calls.spawn(async move { stream(&client, &url, &b).await });
        }
        let mut tokens = 0;
        while let Some(result) = calls.join_next().await {
            tokens += result?.with_context(|| format!("{n} simultaneous streams"))?.0.tokens;
        }
        r.streams.push((n, tokens, started.elapsed()));
    }
    Ok(r)
}

/// The single request through the engine, without HTTP.
async fn in_process(engine: &Engine, model: &str, plan: &Plan) -> Result<Stream> {
    let sampling = SamplingParams { max_tokens: plan.gen_tokens, ..SamplingParams::greedy() };
    let engine = engine.clone();
    let model = model.to_owned();
    let mut sampling = sampling;
    let started = Instant::now();
    let (prepared, sampling) =
        tokio::task::spawn_blocking(move || engine.prepare_llm(&model, &LoadOptions::default(), &mut sampling).map(|p| (p, sampling))).await??;
    // The HTTP request's prompt: the same tokens are generated, so the speeds compare (the
    // prompt comes from the cache here, so the time to first token does not).
    // Planned as the server plans a chat (the model's template rendered here).
    let conv = Conversation::new(vec![Turn::new("system", SYSTEM), Turn::new("user", STORY)]);
    let planned = rustai_core::chat::plan(prepared.lease.model(), &prepared.entry.id, &conv, sampling, GenerateOptions::default())?;
    let extras = SamplingExtras { threads: prepared.threads, ..SamplingExtras::default() };
    let mut events = prepared.lease.model().stream_observed(planned.request, extras);
    let (mut first, mut last, mut tokens) = (None, started, 0u32);
    while let Some(event) = events.next().await {
        match event {
            StreamEvent::Piece(p) if !p.is_empty() => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                tokens += 1;
            }
            StreamEvent::Error(e) => return Err(e.into()),
            StreamEvent::Done(_) => break,
            _ => {}
        }
    }
    let first = first.unwrap_or(last);
    Ok(Stream { ttft: first - started, tokens, span: last - first, total: started.elapsed() })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(label: &str, r: &Results, plan: &Plan) -> Value {
    let single = r.single.expect("measured");
    let mut rows = vec![
        ("one request: time to first token (ms)".to_owned(), ms(single.ttft)),
        ("one request: generation tokens/s".to_owned(), single.tokens_per_s()),
        ("same request again: time to first token (ms)".to_owned(), r.repeated_ttft.map_or(0.0, ms)),
        (format!("{}-turn conversation: last turn's time to first token (ms)", plan.turns), r.turn_ttfts.last().copied().map_or(0.0, ms)),
    ];
    for (n, tokens, wall) in &r.streams {
        rows.push((format!("{n} simultaneous streams: aggregate tokens/s"), f64::from(*tokens) / wall.as_secs_f64()));
    }
    if let Some(p) = r.in_process {
        rows.push(("in-process (no HTTP): generation tokens/s".to_owned(), p.tokens_per_s()));
        rows.push(("HTTP ÷ in-process: generation tokens/s".to_owned(), single.tokens_per_s() / p.tokens_per_s().max(1e-9)));
    }
    println!("| workload ({label}) | value |");
    println!("| --- | ---: |");
    for (name, value) in &rows {
        println!("| {name} | {value:.1} |");
    }
    json!({
        "label": label,
        "rows": rows.iter().map(|(n, v)| json!({ "name": n, "value": v })).collect::<Vec<_>>(),
        "single": { "ttft_ms": ms(single.ttft), "tokens": single.tokens, "tokens_per_s": single.tokens_per_s(), "total_ms": ms(single.total) },
        "turn_ttft_ms": r.turn_ttfts.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
    })
}

pub(crate) fn run(cli: &Cli, args: &BenchArgs) -> Result<()> {
    let plan = Plan::new(args.quick);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // A fresh connection per request, as most clients of a local server do: llama-server's
    // HTTP library closes a kept-alive connection after a few requests, and a POST sent on it
    // as it closes fails (POST is not retried).
    let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).pool_max_idle_per_host(0).build()?;
    let model = args.model.model.clone();
    let results = match &args.url {
        Some(url) => rt.block_on(workloads(&client, url.trim_end_matches('/'), &model, &plan))?,
        None => {
            let config = EngineConfig { slots: args.parallel, ..EngineConfig::default() };
            let engine = Engine::new(setup::plugins(cli)?, setup::registry(cli)?, None, config);
            let id = engine.resolve(&model, rustai_core::Task::Completion)?.id;
            let server = rustai_server::ServerConfig { parallel: args.parallel as usize, ..rustai_server::ServerConfig::default() };
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let url = format!("http://{}", listener.local_addr()?);
                let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
                let serving = tokio::spawn(rustai_server::serve(listener, engine.clone(), server, async {
                    let _ = stop_rx.await;
                }));
                let mut r = workloads(&client, &url, &id, &plan).await?;
                r.in_process = Some(in_process(&engine, &id, &plan).await?);
                let _ = stop_tx.send(());
                let _ = serving.await;
                anyhow::Ok(r)
            })?
        }
    };
    let out = report(&args.label, &results, &plan);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&out)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
