//! Embedding throughput of the candle plugin (prints a table; not a test).
//!
//! all-MiniLM-L6-v2 through the installed plugin (dlopen): sentences per
//! second for one request of 256 short sentences, and for the same sentences
//! sent one request at a time; mean of 3 runs after a warm-up, for the default
//! thread setting and for 1 thread.
//!
//! ```text
//! cargo build --release -p candle && cp .../librustai_candle.so plugins-dist/
//! cargo bench -p tests --bench embed
//! ```

use std::time::Instant;

use rustai_core::{abi::LoadModelParams, EmbeddingModel};
use test_support::{manager_with, model_path};

const RUNS: usize = 3;
const SENTENCES: usize = 256;

fn sentences() -> Vec<String> {
    let subjects = ["The cat", "A young engineer", "My neighbour", "The old ship", "A small bird", "The committee", "Our team", "The river"];
    let verbs = ["watched", "repaired", "painted", "described", "followed", "ignored", "celebrated", "measured"];
    let objects = ["the sunset", "a broken radio", "the long report", "an empty street", "the storm", "a quiet garden", "the new bridge", "every detail"];
    (0..SENTENCES)
        .map(|i| format!("{} {} {} today.", subjects[i % 8], verbs[(i / 8) % 8], objects[(i / 64 + i) % 8]))
        .collect()
}

/// Mean sentences/s over `RUNS` runs of `f` (which embeds `SENTENCES` sentences).
fn rate(mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut total = 0.0;
    for _ in 0..RUNS {
        let t = Instant::now();
        f();
        total += SENTENCES as f64 / t.elapsed().as_secs_f64();
    }
    total / RUNS as f64
}

fn measure(model: &EmbeddingModel, inputs: &[String]) -> (f64, f64) {
    let batch = rate(|| {
        let e = model.embed(inputs, true).expect("embed batch");
        assert_eq!(e.vectors.len(), inputs.len());
    });
    let single = rate(|| {
        for s in inputs {
            model.embed(&[s], true).expect("embed one");
        }
    });
    (batch, single)
}

fn main() {
    let (_dir, manager) = manager_with(&["rustai_candle"]);
    let embedder = manager.embedding("candle").expect("the candle plugin is loaded");
    let inputs = sentences();
    let path = model_path("all-MiniLM-L6-v2");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("all-MiniLM-L6-v2, {SENTENCES} short sentences, mean of {RUNS} runs, {cores} logical cores");
    println!();
    println!("| threads | batch of {SENTENCES} (sentences/s) | one by one (sentences/s) |");
    println!("| --- | ---: | ---: |");
    for threads in [0u32, 1] {
        let params = LoadModelParams { threads, ..LoadModelParams::new(path.to_string_lossy()) };
        let model = embedder.load(&params).expect("MiniLM loads");
        let (batch, single) = measure(&model, &inputs);
        let label = if threads == 0 { "default (0)".to_owned() } else { threads.to_string() };
        println!("| {label} | {batch:.0} | {single:.0} |");
    }
}
