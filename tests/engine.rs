//! The engine's request path with the real gguf plugin and SmolLM2: the
//! adaptive rules change the request before it reaches the plugin (and say
//! so), keep-alive 0 unloads after the request, and metrics record it.

use std::{
    sync::{Arc, Mutex},
    time::SystemTime,
};

use rustai_core::{
    abi::{GenerateRequest, SamplingParams},
    engine::{
        adaptive::{AdaptiveConfig, BatteryState, PowerProfile},
        monitor::{ResourceMonitor, ResourceSnapshot, ResourceSource},
    },
    Engine, EngineConfig, Error, KeepAlive, LoadOptions, PluginManager, Registry,
};
use test_support::{plugins_dist, smollm2};

/// A source whose readings the test sets.
#[derive(Clone)]
struct Scripted(Arc<Mutex<ResourceSnapshot>>);

impl ResourceSource for Scripted {
    fn sample(&mut self) -> ResourceSnapshot {
        self.0.lock().unwrap().clone()
    }
}

fn calm() -> ResourceSnapshot {
    ResourceSnapshot {
        at: SystemTime::now(),
        memory_total: 16 << 30,
        memory_available: 12 << 30,
        cpu_usage_percent: 10.0,
        temperature_celsius: Some(50.0),
        battery_percent: None,
        battery: BatteryState::default(),
        gpu_memory_used: None,
    }
}

fn engine(dir: &std::path::Path) -> (Engine, Scripted) {
    std::fs::hard_link(smollm2(), dir.join("smol.gguf")).or_else(|_| std::fs::copy(smollm2(), dir.join("smol.gguf")).map(|_| ())).unwrap();
    let source = Scripted(Arc::new(Mutex::new(calm())));
    let monitor = ResourceMonitor::new(Box::new(source.clone()), 8);
    let plugins = PluginManager::from_dirs([plugins_dist()]).unwrap();
    let engine = Engine::new(plugins, Registry::scan_only([dir]), Some(monitor), EngineConfig::default());
    (engine, source)
}

fn generate(engine: &Engine, max_tokens: u32, keep_alive: KeepAlive) -> (rustai_core::abi::Completion, Vec<String>) {
    let mut sampling = SamplingParams { max_tokens, ignore_eos: true, ..SamplingParams::greedy() };
    let options = LoadOptions { threads: 2, keep_alive: Some(keep_alive), ..LoadOptions::default() };
    let prepared = engine.prepare_llm("smol", &options, &mut sampling).unwrap();
    let done = prepared.lease.generate(&GenerateRequest::new("Once upon a time", sampling), |_| true);
    engine.record(&prepared, done.as_ref());
    (done.unwrap(), prepared.adjustments.iter().map(ToString::to_string).collect())
}

#[test]
fn adaptive_rules_reach_the_plugin_and_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, source) = engine(dir.path());
    engine.set_policy(PowerProfile::UltraSaver, AdaptiveConfig::default());

    // Nominal device: only the profile's caps (unlimited max_tokens becomes 128, one thread).
    let (done, adjustments) = generate(&engine, 0, KeepAlive::Forever);
    assert!(adjustments.contains(&"max_tokens: default -> 128 (power profile ultra-saver)".to_owned()), "{adjustments:?}");
    assert!(adjustments.contains(&"threads: 2 -> 1 (power profile ultra-saver)".to_owned()), "{adjustments:?}");
    assert_eq!(done.tokens_out, 128);
    engine.set_policy(PowerProfile::Performance, AdaptiveConfig::default());

    // Critical temperature: at most 50 tokens, and the response says why.
    source.0.lock().unwrap().temperature_celsius = Some(97.0);
    let (done, adjustments) = generate(&engine, 300, KeepAlive::Forever);
    assert!(!adjustments.iter().any(|a| a.starts_with("max_tokens: 300 -> 4096")));
    assert!(adjustments.contains(&"max_tokens: 300 -> 50 (thermal state critical)".to_owned()), "{adjustments:?}");
    assert_eq!(done.tokens_out, 50);

    // Low battery, discharging: threads capped at 2, cloud preferred.
    let mut s = calm();
    s.battery_percent = Some(12);
    s.battery = BatteryState::Discharging;
    *source.0.lock().unwrap() = s;
    let (_, adjustments) = generate(&engine, 4, KeepAlive::Forever);
    assert!(adjustments.iter().any(|a| a.starts_with("prefer_cloud: false -> true (battery at 12%")), "{adjustments:?}");

    // Memory pressure critical: context capped at 1024 (the model is reloaded with it).
    let mut s = calm();
    s.memory_available = 1 << 30;
    *source.0.lock().unwrap() = s;
    let (_, adjustments) = generate(&engine, 4, KeepAlive::Forever);
    assert!(adjustments.contains(&"context_length: 4096 -> 1024 (memory pressure critical)".to_owned()), "{adjustments:?}");

    // Metrics: four requests on one model.
    let per_model = engine.metrics().per_model();
    assert_eq!(per_model["smol"].requests, 4);
    assert_eq!(engine.metrics().total().tokens_out, 128 + 50 + 4 + 4);
}

#[test]
fn keep_alive_zero_unloads_after_the_request_and_wrong_tasks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine(dir.path());
    generate(&engine, 2, KeepAlive::Unload);
    assert!(engine.pool().status().is_empty(), "keep_alive 0 must unload right after the request");
    generate(&engine, 2, KeepAlive::Forever);
    assert_eq!(engine.pool().status().len(), 1);

    std::fs::write(dir.path().join("voice.onnx"), b"\x08\x07").unwrap();
    std::fs::write(dir.path().join("voice.onnx.json"), br#"{"phoneme_id_map": {}, "audio": {"sample_rate": 22050}}"#).unwrap();
    engine.registry().refresh();
    let err = engine.prepare_llm("voice", &LoadOptions::default(), &mut SamplingParams::greedy()).unwrap_err();
    assert!(matches!(err, Error::WrongTask { .. }), "{err}");
    assert!(err.to_string().contains("tts model"), "{err}");
    let err = engine.prepare_llm("nope", &LoadOptions::default(), &mut SamplingParams::greedy()).unwrap_err();
    assert!(matches!(err, Error::UnknownModel { .. }));
}

#[test]
fn falls_back_along_models_toml_and_prefers_remote_on_low_battery() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::hard_link(smollm2(), dir.path().join("other.gguf")).or_else(|_| std::fs::copy(smollm2(), dir.path().join("other.gguf")).map(|_| ())).unwrap();
    std::fs::write(
        dir.path().join("models.toml"),
        r#"
[[models]]
id = "primary"
provider = "no-such-plugin"
location = "other.gguf"
[models.config]
fallback = "cloud"

[[models]]
id = "cloud"
provider = "openai"
location = "http://127.0.0.1:9/v1"
[models.config]
model = "gpt-test"
fallback = "smol"
"#,
    )
    .unwrap();
    let (engine, source) = engine(dir.path());
    engine.registry().refresh();
    let mut sampling = SamplingParams { max_tokens: 3, ..SamplingParams::greedy() };
    let prepared = engine.prepare_llm("primary", &LoadOptions::default(), &mut sampling).unwrap();
    assert_eq!(prepared.entry.id, "smol", "primary's plugin and cloud's plugin are not loaded: smol serves");
    let tried: Vec<&str> = prepared.fell_back_from.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(tried, ["primary", "cloud"]);
    assert!(prepared.fell_back_from[0].1.contains("no-such-plugin"), "{:?}", prepared.fell_back_from);
    drop(prepared);

    // On a low, discharging battery the remote fallback is tried first (and reported).
    let mut s = calm();
    s.battery_percent = Some(9);
    s.battery = BatteryState::Discharging;
    *source.0.lock().unwrap() = s;
    let prepared = engine.prepare_llm("primary", &LoadOptions::default(), &mut sampling).unwrap();
    let tried: Vec<&str> = prepared.fell_back_from.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(tried[0], "cloud");
    assert!(prepared.adjustments.iter().any(|a| a.field == "model" && a.to == "cloud"), "{:?}", prepared.adjustments);

    // "auto": the registry's selection picks a model a loaded plugin can serve.
    let prepared = engine.prepare_llm(rustai_core::AUTO, &LoadOptions::default(), &mut sampling).unwrap();
    assert_eq!(prepared.entry.id, "smol");
}
