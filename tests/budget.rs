//! The model pool's memory budget, eviction and keep-alive, with the real gguf
//! plugin and two copies of the real SmolLM2 model.

use std::{path::Path, sync::Arc, time::Duration};

use rustai_core::{
    abi::{GenerateRequest, LoadModelParams, SamplingParams},
    models, Budget, Error, KeepAlive, ModelFile, ModelPool, PluginManager,
};
use test_support::{plugins_dist, smollm2};

const CTX: u32 = 1024;

/// Two model files (hard links to the real SmolLM2 where possible).
fn two_models(dir: &Path) -> (ModelFile, ModelFile) {
    for name in ["first.gguf", "second.gguf"] {
        let dest = dir.join(name);
        if std::fs::hard_link(smollm2(), &dest).is_err() {
            std::fs::copy(smollm2(), &dest).unwrap();
        }
    }
    (models::resolve("first", [dir]).unwrap(), models::resolve("second", [dir]).unwrap())
}

/// The memory the gguf plugin (which knows the format) estimates for `path` at context `ctx`:
/// what the pool admits loads with.
fn estimate_bytes(path: &Path, ctx: u32) -> Option<u64> {
    let manager = PluginManager::from_dirs([plugins_dist()]).unwrap();
    let gguf = manager.get("gguf").expect("the gguf plugin is loaded");
    gguf.estimate_memory(&LoadModelParams { context_length: ctx, ..LoadModelParams::new(path.to_string_lossy()) })
}

fn params() -> LoadModelParams {
    LoadModelParams { context_length: CTX, threads: 2, ..LoadModelParams::new("") }
}

fn pool(max_bytes: u64, keep_alive: KeepAlive) -> ModelPool {
    let manager = PluginManager::from_dirs([plugins_dist()]).unwrap();
    ModelPool::with_budget(manager, Budget { max_bytes, max_loaded: 4, default_keep_alive: keep_alive })
}

fn hello(model: &rustai_core::LlmModel) {
    let done = model.generate(&GenerateRequest::new("Hello", SamplingParams { max_tokens: 2, ..SamplingParams::greedy() }), |_| true).unwrap();
    assert_eq!(done.tokens_out, 2);
}

#[test]
fn estimate_counts_weights_and_kv_cache() {
    let weights = std::fs::metadata(smollm2()).unwrap().len();
    let small = estimate_bytes(&smollm2(), 512).unwrap();
    let large = estimate_bytes(&smollm2(), 4096).unwrap();
    assert!(small > weights && large > small);
    // SmolLM2-135M: 30 layers × 192 KV width × 2 (K, V) × 2 bytes per position.
    assert_eq!(large - small, 30 * 192 * 2 * 2 * (4096 - 512));
}

#[test]
fn a_second_model_evicts_the_idle_first_and_in_use_models_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_models(dir.path());
    let one = estimate_bytes(&a.path, CTX).unwrap();
    // Room for one copy, not two.
    let pool = pool(one + one / 2, KeepAlive::Forever);

    let lease = pool.llm(&a, &params(), None).unwrap();
    hello(&lease);
    // While `a` serves a request it cannot be evicted: `b` is refused, with numbers.
    let err = pool.llm(&b, &params(), None).unwrap_err();
    match &err {
        Error::OverBudget { model, loaded, .. } => {
            assert_eq!(model, "second");
            assert_eq!(*loaded, 1);
            let text = err.to_string();
            assert!(text.contains("needs about") && text.contains("the budget is") && text.contains("MiB"), "{text}");
        }
        other => panic!("unexpected {other}"),
    }
    drop(lease);

    // Idle now: loading `b` evicts `a`.
    let lease = pool.llm(&b, &params(), None).unwrap();
    hello(&lease);
    let loaded: Vec<_> = pool.status().into_iter().map(|s| s.path).collect();
    assert_eq!(loaded, std::slice::from_ref(&b.path));
    drop(lease);

    // A pinned model is not evicted either.
    assert!(pool.pin(&b.path, true));
    assert!(matches!(pool.llm(&a, &params(), None), Err(Error::OverBudget { .. })));
}

#[test]
fn an_impossible_load_is_refused_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_models(dir.path());
    let pool = pool(10 << 20, KeepAlive::Forever);
    let err = pool.llm(&a, &params(), None).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::OverBudget { .. }), "{text}");
    assert!(text.contains("the budget is 10.0 MiB") && text.contains("held by 0 model(s)"), "{text}");
    assert!(pool.status().is_empty());
}

#[test]
fn keep_alive_zero_unloads_right_after_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_models(dir.path());
    let pool = pool(u64::MAX, KeepAlive::For(Duration::from_secs(600)));
    let lease = pool.acquire(&a, &params(), None, KeepAlive::Unload).unwrap();
    hello(&lease);
    assert_eq!(pool.status().len(), 1);
    assert!(pool.status()[0].in_use);
    drop(lease);
    assert!(pool.status().is_empty(), "unloaded as soon as the request ended");

    // The default (600 s) keeps it.
    let lease = pool.llm(&a, &params(), None).unwrap();
    drop(lease);
    let status = pool.status();
    assert_eq!(status.len(), 1);
    assert!(!status[0].in_use && status[0].expires.is_some());
}

#[test]
fn a_short_idle_timeout_unloads_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_models(dir.path());
    let pool = Arc::new(pool(u64::MAX, KeepAlive::For(Duration::from_millis(200))));
    pool.spawn_reaper(Duration::from_millis(50));
    let lease = pool.llm(&a, &params(), None).unwrap();
    hello(&lease);
    drop(lease);
    assert_eq!(pool.status().len(), 1, "kept during its keep-alive");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !pool.status().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the reaper never unloaded the idle model");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Loading it again works.
    hello(&pool.llm(&a, &params(), None).unwrap());
}
