//! The candle embedding plugin, loaded with dlopen from plugins-dist/, on the
//! real all-MiniLM-L6-v2 model: reference similarities, batch = one-by-one,
//! truncation, corrupt models and bad input.

use std::sync::OnceLock;

use rustai_core::{
    abi::{ErrorKind, LoadModelParams},
    EmbeddingModel, Error, PluginManager,
};
use test_support::{manager_with, model_path};

const MODEL: &str = "all-MiniLM-L6-v2";

/// One plugin manager and one loaded MiniLM for the whole test binary.
fn shared() -> &'static (tempfile::TempDir, PluginManager, EmbeddingModel) {
    static SHARED: OnceLock<(tempfile::TempDir, PluginManager, EmbeddingModel)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let (dir, manager) = manager_with(&["rustai_candle"]);
        let embedder = manager.embedding("candle").expect("the candle plugin reads safetensors");
        let params = LoadModelParams { threads: 2, ..LoadModelParams::new(model_path(MODEL).to_string_lossy()) };
        let model = embedder.load(&params).expect("MiniLM loads");
        (dir, manager, model)
    })
}

fn model() -> &'static EmbeddingModel {
    &shared().2
}

/// The kind of a plugin's error.
fn kind(err: &Error) -> Option<ErrorKind> {
    match err {
        Error::Plugin { source, .. } => Some(source.kind),
        _ => None,
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

#[test]
fn plugin_announces_embeddings_for_safetensors() {
    let (_, manager, _) = shared();
    let plugin = manager.get("candle").expect("the candle plugin is loaded");
    let info = plugin.info();
    assert_eq!(info.category, rustai_core::abi::Category::Embedding);
    assert!(info.capabilities.formats.iter().any(|f| f == "safetensors"));
    assert!(info.capabilities.features.iter().any(|f| f == "embeddings"));
}

#[test]
fn dimensions_and_max_length_come_from_the_model() {
    assert_eq!(model().dimensions().expect("dimensions"), 384);
    // max_position_embeddings is 512, but the tokenizer truncates at 128.
    assert_eq!(model().max_input_length().expect("max length"), 128);
}

/// sentence-transformers' own README example for all-MiniLM-L6-v2 (mean
/// pooling, L2 norm): 0.6660, 0.1046, 0.1411.
#[test]
fn matches_sentence_transformers() {
    let s = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."];
    let e = model().embed(&s, true).expect("embed");
    assert_eq!((e.vectors.len(), e.dimensions), (3, 384));
    for v in e.vectors.iter() {
        assert!((norm(v) - 1.0).abs() < 1e-4, "normalised vectors have unit length, got {}", norm(v));
    }
    let got = [dot(&e.vectors[0], &e.vectors[1]), dot(&e.vectors[0], &e.vectors[2]), dot(&e.vectors[1], &e.vectors[2])];
    for (g, want) in got.iter().zip([0.6660, 0.1046, 0.1411]) {
        assert!((g - want).abs() < 0.005, "similarities {got:?}, want [0.6660, 0.1046, 0.1411]");
    }
}

/// Single words. These values were checked against an independent plain-Python
/// BERT forward pass over the same weights (mean pooling, L2 norm); the figures
/// 0.755 / -0.046 once quoted for this pair do not come out of this model
/// with any pooling.
#[test]
fn word_similarities() {
    let e = model().embed(&["food", "bread", "movie"], true).expect("embed");
    let bread = dot(&e.vectors[0], &e.vectors[1]);
    let movie = dot(&e.vectors[0], &e.vectors[2]);
    assert!((bread - 0.5555).abs() < 0.01, "cos(food, bread) = {bread}, want 0.5555");
    assert!((movie - 0.4020).abs() < 0.01, "cos(food, movie) = {movie}, want 0.4020");
    assert!(bread > movie);
    // [CLS] word [SEP] for each of three one-token words.
    assert_eq!(e.tokens_in, 9);
    assert!(e.truncated.is_empty());
}

#[test]
fn unnormalised_vectors_point_the_same_way() {
    let raw = model().embed(&["food"], false).expect("embed");
    let unit = model().embed(&["food"], true).expect("embed");
    let n = norm(&raw.vectors[0]);
    assert!((n - 1.0).abs() > 1e-3, "mean-pooled MiniLM vectors are not unit length (got {n})");
    let cos = dot(&raw.vectors[0], &unit.vectors[0]) / n;
    assert!((cos - 1.0).abs() < 1e-5);
}

#[test]
fn a_batch_equals_one_by_one() {
    let sentences = [
        "A man is eating food.",
        "Bread",
        "The quick brown fox jumps over the lazy dog while the farmer watches from a distance.",
        "A man is riding a white horse on an enclosed ground.",
        "Two",
        "A monkey is playing drums in the middle of a crowded street, surrounded by people who are clapping along.",
    ];
    let batch = model().embed(&sentences, true).expect("batch");
    let mut worst = 0f32;
    let mut tokens = 0;
    for (i, s) in sentences.iter().enumerate() {
        let one = model().embed(&[s], true).expect("single");
        tokens += one.tokens_in;
        let diff = one.vectors[0].iter().zip(batch.vectors[i].iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        worst = worst.max(diff);
    }
    assert!(worst < 1e-4, "batch and one-by-one differ by {worst}");
    assert_eq!(batch.tokens_in, tokens, "tokens_in counts real tokens, not padding");
}

#[test]
fn long_inputs_are_truncated_and_reported() {
    let long = (0..1000).map(|i| format!("word{}", i % 7)).collect::<Vec<_>>().join(" ");
    let e = model().embed(&["short text", &long, "another short one"], true).expect("embed");
    assert_eq!(e.truncated.as_slice(), &[1]);
    assert_eq!(e.vectors.len(), 3);
    assert!(e.vectors.iter().all(|v| v.len() == 384 && v.iter().all(|x| x.is_finite())));
    // The long input contributes exactly the model's maximum.
    let shorts = model().embed(&["short text", "another short one"], true).expect("embed");
    assert_eq!(e.tokens_in, shorts.tokens_in + 128);
}

#[test]
fn empty_input_list_is_an_error() {
    let err = model().embed::<&str>(&[], true).expect_err("no inputs");
    assert_eq!(kind(&err), Some(ErrorKind::InvalidInput), "{err}");
    assert!(err.to_string().contains("at least one input"), "{err}");
}

#[test]
fn a_big_batch_is_processed_in_chunks() {
    let inputs: Vec<String> = (0..70).map(|i| format!("sentence number {i} about {}", ["cats", "ships", "rain"][i % 3])).collect();
    let e = model().embed(&inputs, true).expect("embed");
    assert_eq!(e.vectors.len(), 70);
    // Same text, same vector, wherever it lands in the chunks.
    let again = model().embed(&[&inputs[69]], true).expect("embed");
    let diff = again.vectors[0].iter().zip(e.vectors[69].iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn corrupt_or_wrong_models_are_errors_and_the_plugin_keeps_working() {
    let (_, manager, _) = shared();
    let embedder = manager.embedding("candle").expect("embedder");
    let src = model_path(MODEL);
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
    }
    let load = |p: &std::path::Path| embedder.load(&LoadModelParams::new(p.to_string_lossy())).map(drop);

    // No weights at all.
    let err = load(dir.path()).expect_err("no weights");
    assert_eq!(kind(&err), Some(ErrorKind::InvalidModel), "{err}");
    assert!(err.to_string().contains("safetensors"), "{err}");

    // Garbage weights.
    std::fs::write(dir.path().join("model.safetensors"), b"this is not a safetensors file at all, just junk bytes").expect("write");
    let err = load(dir.path()).expect_err("garbage weights");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    assert_eq!(kind(&err), Some(ErrorKind::InvalidModel), "{err}");

    // A truncated copy of the real weights.
    let real = std::fs::read(src.join("model.safetensors")).expect("read weights");
    std::fs::write(dir.path().join("model.safetensors"), &real[..real.len() / 2]).expect("write");
    let err = load(dir.path()).expect_err("truncated weights");
    assert_eq!(kind(&err), Some(ErrorKind::InvalidModel), "{err}");

    // Another architecture.
    let config = std::fs::read_to_string(src.join("config.json")).expect("config");
    std::fs::write(dir.path().join("config.json"), config.replace("\"model_type\": \"bert\"", "\"model_type\": \"llama\"")).expect("write");
    let err = load(dir.path()).expect_err("wrong architecture");
    assert_eq!(kind(&err), Some(ErrorKind::InvalidModel), "{err}");
    assert!(err.to_string().contains("llama"), "{err}");

    // Missing folder.
    let err = load(&dir.path().join("nope")).expect_err("missing folder");
    assert_eq!(kind(&err), Some(ErrorKind::NotFound), "{err}");

    // The plugin still serves the real model.
    let e = model().embed(&["still working"], true).expect("embed after errors");
    assert_eq!(e.vectors[0].len(), 384);
    assert!(manager.get("candle").is_some());
}

#[test]
fn models_load_and_unload_independently() {
    let (_, manager, _) = shared();
    let embedder = manager.embedding("candle").expect("embedder");
    let params = LoadModelParams { threads: 1, batch_size: 2, ..LoadModelParams::new(model_path(MODEL).to_string_lossy()) };
    let second = embedder.load(&params).expect("second copy");
    let a = second.embed(&["food", "bread", "a much longer sentence about food"], true).expect("embed");
    let b = model().embed(&["food", "bread", "a much longer sentence about food"], true).expect("embed");
    for (x, y) in a.vectors.iter().zip(b.vectors.iter()) {
        let diff = x.iter().zip(y.iter()).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "{diff}");
    }
    drop(second);
    model().embed(&["food"], true).expect("the shared model is still loaded");
}
