//! One lifecycle for every family: a language model, an embedder, a whisper model and a
//! Piper voice, all real, loaded through the engine's entry points into one pool under
//! one memory budget that fits three of them. The least recently used one is evicted
//! for the fourth, whatever its family; every request is in the metrics; the pool's
//! status (what `/api/ps` and `rustai ps` show) lists each with its family.

use std::{collections::BTreeMap, path::PathBuf};

use rustai_core::{
    abi::{GenerateRequest, ROption, SamplingParams, SpeakRequest, TranscribeRequest},
    audio, Budget, Engine, EngineConfig, FamilyKind, KeepAlive, LoadOptions, PluginManager, Registry, RegistryOptions, Task, TtsModel,
};
use test_support::{model_path, plugins_dist, smollm2};

/// The four real models, registered by path.
fn registry() -> Registry {
    let files: Vec<PathBuf> =
        vec![smollm2(), model_path("all-MiniLM-L6-v2"), model_path("ggml-tiny.en.bin"), model_path("en_US-joe-medium.onnx")];
    Registry::open(RegistryOptions { dirs: Vec::new(), config_file: None, files }).unwrap()
}

fn engine(budget: Budget) -> Engine {
    let config = EngineConfig { budget, slots: 1, ..EngineConfig::default() };
    Engine::new(PluginManager::from_dirs([plugins_dist()]).unwrap(), registry(), None, config)
}

/// The id the registry gave the model of `task`.
fn id_of(engine: &Engine, task: Task) -> String {
    engine.registry().entries().into_iter().find(|e| e.task.serves(task)).unwrap_or_else(|| panic!("a {task:?} model")).id
}

/// One request of `family` through the engine's entry point for it.
fn use_model(engine: &Engine, family: FamilyKind) {
    match family {
        FamilyKind::Llm => {
            let mut sampling = SamplingParams { max_tokens: 3, ..SamplingParams::greedy() };
            let options = LoadOptions { threads: 2, ..LoadOptions::default() };
            let prepared = engine.prepare_llm(&id_of(engine, Task::Completion), &options, &mut sampling).unwrap();
            let done = prepared.lease.generate(&GenerateRequest::new("The capital of France is", sampling), |_| true);
            engine.record(&prepared, done.as_ref());
            assert_eq!(done.unwrap().tokens_out, 3);
        }
        FamilyKind::Embedding => {
            let served = engine.embed(&id_of(engine, Task::Embedding), &["a cat sat on the mat"], true).unwrap();
            assert_eq!(served.output.dimensions, 384);
        }
        FamilyKind::Stt => {
            let silence = vec![0.0f32; audio::STT_SAMPLE_RATE as usize];
            let request = TranscribeRequest {
                pcm: silence.into(),
                sample_rate: audio::STT_SAMPLE_RATE,
                language: ROption::RNone,
                translate: false,
                threads: 2,
                initial_prompt: ROption::RNone,
                temperature: 0.0,
            };
            engine.transcribe(&id_of(engine, Task::Stt), &request).unwrap();
        }
        FamilyKind::Tts => {
            let request = SpeakRequest { text: "Hello.".into(), voice: ROption::RNone, speed: 1.0, noise_scale: ROption::RNone };
            let served = engine.with_model(&id_of(engine, Task::Tts), Task::Tts, &LoadOptions::default(), |m: &TtsModel| m.synthesize(&request)).unwrap();
            assert!(!served.output.1.is_empty());
        }
        FamilyKind::Tool => unreachable!(),
    }
}

/// Loaded families, from the pool's status.
fn loaded(engine: &Engine) -> Vec<FamilyKind> {
    let mut families: Vec<_> = engine.pool().status().iter().map(|s| s.family).collect();
    families.sort();
    families
}

#[test]
fn four_families_share_one_budget_and_the_least_recently_used_makes_room() {
    use FamilyKind::{Embedding, Llm, Stt, Tts};
    // What each model counts against the budget, as the engine estimates it.
    let sizes: BTreeMap<FamilyKind, u64> = {
        let unlimited = engine(Budget::unlimited());
        for family in [Llm, Embedding, Stt, Tts] {
            use_model(&unlimited, family);
        }
        unlimited.pool().status().iter().map(|s| (s.family, s.bytes)).collect()
    };
    assert_eq!(sizes.len(), 4, "{sizes:?}");
    assert!(sizes.values().all(|b| *b > 1 << 20), "every model has a real estimate: {sizes:?}");
    let total: u64 = sizes.values().sum();
    // Any three fit; all four do not.
    let budget = Budget { max_bytes: total - 1, max_loaded: 8, default_keep_alive: KeepAlive::Forever };
    let engine = engine(budget);

    for family in [Embedding, Stt, Tts] {
        use_model(&engine, family);
    }
    assert_eq!(loaded(&engine), [Embedding, Stt, Tts]);
    // The language model needs room: the embedder, used longest ago, goes.
    use_model(&engine, Llm);
    assert_eq!(loaded(&engine), [Llm, Stt, Tts]);
    assert!(engine.pool().used_bytes() <= budget.max_bytes);
    // The embedder again: now whisper is the least recently used.
    use_model(&engine, Embedding);
    assert_eq!(loaded(&engine), [Llm, Embedding, Tts]);

    // Each family's requests are in the metrics, under their models.
    let per_model = engine.metrics().per_model();
    for task in [Task::Completion, Task::Embedding, Task::Stt, Task::Tts] {
        let id = id_of(&engine, task);
        let summary = per_model.get(&id).unwrap_or_else(|| panic!("{id} in {per_model:?}"));
        assert!(summary.requests >= 1 && summary.failures == 0, "{id}: {summary:?}");
    }
    let status = engine.pool().status();
    assert!(status.iter().all(|s| s.bytes == sizes[&s.family] && !s.in_use), "{status:?}");
}

#[test]
fn a_model_of_any_family_can_be_preloaded_and_unloaded() {
    let engine = engine(Budget::unlimited());
    for task in [Task::Embedding, Task::Stt, Task::Tts, Task::Completion] {
        let loaded = engine.preload(&id_of(&engine, task), &LoadOptions::default()).unwrap();
        assert_eq!(loaded.entry.task.family(), task.family());
    }
    assert_eq!(engine.pool().status().len(), 4);
    let path = engine.registry().lookup(&id_of(&engine, Task::Stt)).unwrap().path().unwrap().to_path_buf();
    assert!(engine.pool().unload(&path));
    assert_eq!(loaded(&engine), [FamilyKind::Llm, FamilyKind::Embedding, FamilyKind::Tts]);
}
