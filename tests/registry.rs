//! The model registry over a folder of real models (SmolLM2 GGUF, the MiniLM
//! safetensors folder, the Piper voice, the converted whisper.cpp tiny.en) and
//! junk, with models.toml entries, live updates, name lookup and selection.

use std::{fs, path::Path, time::Duration};

use rustai_core::{
    models::{Location, Origin, RegistryEvent, SelectContext},
    engine::monitor::ResourceSnapshot,
    Error, ModelFormat, PluginManager, Registry, RegistryOptions, SelectionCriteria, Task,
};
use test_support::{manager_with, plugins_dist, repo_root, smollm2};

/// Link (or copy) `src` to `dest`.
fn link(src: &Path, dest: &Path) {
    if fs::hard_link(src, dest).is_err() {
        fs::copy(src, dest).unwrap();
    }
}

fn model(rel: &str) -> std::path::PathBuf {
    let p = repo_root().join("models").join(rel);
    assert!(p.exists(), "{} is missing: run scripts/fetch-models.sh (and scripts/convert-whisper.sh)", p.display());
    p
}

/// A model folder with the four real models and some junk.
fn populated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    link(&smollm2(), &d.join("SmolLM2-135M-Instruct.Q4_1.gguf"));
    fs::create_dir_all(d.join("embeddings/all-MiniLM-L6-v2/1_Pooling")).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json"] {
        link(&model(&format!("all-MiniLM-L6-v2/{f}")), &d.join("embeddings/all-MiniLM-L6-v2").join(f));
    }
    fs::create_dir_all(d.join("voices")).unwrap();
    link(&model("en_US-joe-medium.onnx"), &d.join("voices/en_US-joe-medium.onnx"));
    link(&model("en_US-joe-medium.onnx.json"), &d.join("voices/en_US-joe-medium.onnx.json"));
    link(&model("ggml-tiny.en.bin"), &d.join("ggml-tiny.en.bin"));
    // Junk.
    fs::write(d.join("notes.txt"), "shopping list").unwrap();
    fs::write(d.join("fake.gguf"), "not really a model").unwrap();
    fs::write(d.join("empty.bin"), b"").unwrap();
    fs::write(d.join("random.bin"), [0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5]).unwrap();
    let gguf = fs::read(smollm2()).unwrap();
    fs::write(d.join("truncated.gguf"), &gguf[..1 << 20]).unwrap();
    fs::write(d.join("download.gguf.partial"), &gguf[..4096]).unwrap();
    fs::write(d.join("README.md"), "# my models").unwrap();
    dir
}

#[test]
fn classifies_real_models_and_junk_by_content() {
    let dir = populated();
    let reg = Registry::scan_only([dir.path()]);
    let ids: Vec<String> = reg.entries().iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, ["SmolLM2-135M-Instruct.Q4_1", "all-MiniLM-L6-v2", "en_US-joe-medium", "ggml-tiny.en"]);

    let llm = reg.lookup("SmolLM2-135M-Instruct.Q4_1").unwrap();
    assert_eq!((llm.format, llm.task), (ModelFormat::Gguf, Task::Chat));
    assert_eq!(llm.meta.architecture.as_deref(), Some("llama"));
    assert_eq!(llm.meta.context_length, Some(8192));
    assert_eq!(llm.meta.quantization.as_deref(), Some("Q4_1"));
    assert!(llm.meta.chat_template);
    let params = llm.meta.parameters.unwrap();
    assert!((130_000_000..140_000_000).contains(&params), "{params}");
    assert_eq!(llm.size, 98_362_432);
    assert_eq!(llm.full_name(), "smollm2-135m-instruct:q4_1");

    let emb = reg.lookup("all-MiniLM-L6-v2").unwrap();
    assert_eq!((emb.format, emb.task), (ModelFormat::Safetensors, Task::Embedding));
    assert_eq!(emb.meta.architecture.as_deref(), Some("bert"));
    assert_eq!(emb.meta.embedding_dim, Some(384));
    assert_eq!(emb.meta.context_length, Some(512));
    assert_eq!(emb.meta.details["pooling"], "mean_tokens");
    assert!((22_000_000..23_000_000).contains(&emb.meta.parameters.unwrap()));

    let tts = reg.lookup("en_US-joe-medium").unwrap();
    assert_eq!((tts.format, tts.task), (ModelFormat::Piper, Task::Tts));
    assert_eq!(tts.meta.sample_rate, Some(22050));
    assert_eq!(tts.meta.language.as_deref(), Some("en_US"));
    assert_eq!(tts.meta.details["espeak_voice"], "en-us");

    let stt = reg.lookup("ggml-tiny.en").unwrap();
    assert_eq!((stt.format, stt.task), (ModelFormat::WhisperGgml, Task::Stt));
    assert_eq!(stt.meta.architecture.as_deref(), Some("whisper-tiny"));
    assert_eq!(stt.meta.language.as_deref(), Some("en"));

    let junk: Vec<(String, String)> = reg
        .unrecognised()
        .into_iter()
        .map(|u| (u.path.file_name().unwrap().to_string_lossy().into_owned(), u.reason))
        .collect();
    let reason = |name: &str| &junk.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} not listed: {junk:?}")).1;
    assert_eq!(junk.len(), 6, "{junk:?}");
    assert!(reason("notes.txt").contains("text"));
    assert!(reason("fake.gguf").contains("text"));
    assert!(reason("empty.bin").contains("empty"));
    assert!(reason("random.bin").contains("unknown format"));
    assert!(reason("truncated.gguf").contains("truncated"), "{}", reason("truncated.gguf"));
    assert!(reason("download.gguf.partial").contains("incomplete"));
}

#[test]
fn lookup_by_id_prefix_and_name_tag() {
    let dir = populated();
    let reg = Registry::scan_only([dir.path()]);
    for q in ["smollm2-135m-instruct:q4_1", "SmolLM2", "smollm2-135m-instruct", "smollm2-135m-instruct:latest", "SmolLM2-135M-Instruct.Q4_1:latest"] {
        assert_eq!(reg.lookup(q).unwrap().id, "SmolLM2-135M-Instruct.Q4_1", "{q}");
    }
    assert_eq!(reg.lookup("all-minilm-l6-v2:latest").unwrap().id, "all-MiniLM-L6-v2");
    assert!(matches!(reg.lookup("smollm2:q8_0"), Err(Error::UnknownModel { .. })));
    assert!(matches!(reg.lookup("llama3"), Err(Error::UnknownModel { known, .. }) if known.len() == 4));
    link(&smollm2(), &dir.path().join("SmolLM2-135M-Instruct.Q8_0.gguf")); // a GGUF with another name
    reg.refresh();
    assert!(matches!(reg.lookup("smollm2"), Err(Error::AmbiguousModel { .. })));
}

#[test]
fn models_toml_adds_remote_models_and_refines_local_ones() {
    let dir = populated();
    fs::write(
        dir.path().join("models.toml"),
        r#"
[[models]]
id = "smol-fast"
provider = "gguf"
location = "SmolLM2-135M-Instruct.Q4_1.gguf"
priority = 100
tags = ["general", "fast"]
[models.config]
context_length = 2048
[models.constraints]
min_memory_mb = 100

[[models]]
id = "gpt-4o"
provider = "openai"
location = "https://api.openai.com/v1"
priority = 50
tags = ["general", "cloud"]
[models.config]
api_key_env = "OPENAI_API_KEY"
model = "gpt-4o"

[[models]]
id = "gone"
location = "missing.gguf"
"#,
    )
    .unwrap();
    let reg = Registry::open(RegistryOptions::new([dir.path()])).unwrap();
    let smol = reg.lookup("smol-fast").unwrap();
    assert_eq!((smol.origin, smol.priority, smol.provider.as_deref()), (Origin::Both, 100, Some("gguf")));
    assert_eq!(smol.config["context_length"], 2048);
    assert!(reg.lookup("SmolLM2-135M-Instruct.Q4_1").is_err(), "renamed by models.toml");
    let cloud = reg.lookup("gpt-4o").unwrap();
    assert_eq!(cloud.location, Location::Remote("https://api.openai.com/v1".into()));
    assert_eq!((cloud.format, cloud.task, cloud.origin), (ModelFormat::Remote, Task::Chat, Origin::Configured));
    assert!(reg.unrecognised().iter().any(|u| u.reason.contains("`gone`") && u.reason.contains("missing.gguf")));

    // A broken models.toml: refused at start-up with the line, ...
    fs::write(dir.path().join("models.toml"), "[[models]]\nid = \"x\"\nlocation = \n").unwrap();
    let err = Registry::open(RegistryOptions::new([dir.path()])).unwrap_err();
    assert!(matches!(err, Error::Config { .. }) && err.to_string().contains("line 3"), "{err}");
    // ... and while running, reported with the previous settings kept.
    let events = reg.refresh();
    assert!(matches!(&events[..], [RegistryEvent::ConfigError(_)]), "{events:?}");
    assert!(reg.lookup("gpt-4o").is_ok());
}

fn wait_for(rx: &mut tokio::sync::broadcast::Receiver<RegistryEvent>, want: &RegistryEvent) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        match rx.try_recv() {
            Ok(e) if &e == want => return,
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    panic!("no {want:?} within 20 s");
}

#[test]
fn the_registry_follows_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::scan_only([dir.path()]);
    let mut rx = reg.subscribe();
    let _watch = reg.watch(Duration::from_millis(50)).unwrap();
    assert!(reg.is_empty());
    link(&smollm2(), &dir.path().join("tiny.gguf"));
    wait_for(&mut rx, &RegistryEvent::Added("tiny".into()));
    assert_eq!(reg.lookup("tiny").unwrap().task, Task::Chat);
    fs::create_dir_all(dir.path().join("sub")).unwrap();
    link(&model("en_US-joe-medium.onnx"), &dir.path().join("sub/voice.onnx"));
    wait_for(&mut rx, &RegistryEvent::Added("voice".into()));
    assert_eq!(reg.lookup("voice").unwrap().format, ModelFormat::Onnx, "no .onnx.json yet: a plain ONNX model");
    link(&model("en_US-joe-medium.onnx.json"), &dir.path().join("sub/voice.onnx.json"));
    wait_for(&mut rx, &RegistryEvent::Changed("voice".into()));
    assert_eq!(reg.lookup("voice").unwrap().format, ModelFormat::Piper);
    fs::remove_file(dir.path().join("tiny.gguf")).unwrap();
    wait_for(&mut rx, &RegistryEvent::Removed("tiny".into()));
    assert!(reg.lookup("tiny").is_err());
}

fn snapshot(available_mib: u64) -> ResourceSnapshot {
    ResourceSnapshot {
        at: std::time::SystemTime::now(),
        memory_total: 16 << 30,
        memory_available: available_mib << 20,
        cpu_usage_percent: 5.0,
        temperature_celsius: None,
        battery_percent: None,
        battery: Default::default(),
        gpu_memory_used: None,
    }
}

#[test]
fn selection_is_scored_and_explained() {
    let dir = populated();
    fs::write(
        dir.path().join("models.toml"),
        r#"
[[models]]
id = "cloud-chat"
provider = "openai"
location = "http://127.0.0.1:9/v1"
priority = 40
tags = ["cloud"]
[models.constraints]
typical_latency_ms = 900
quality_score = 0.95
"#,
    )
    .unwrap();
    let reg = Registry::open(RegistryOptions::new([dir.path()])).unwrap();
    let free = snapshot(8 << 10);
    let ctx = SelectContext { resources: Some(&free), ..SelectContext::default() };

    // Priority alone: the remote model (40 > 0).
    let s = reg.select(&SelectionCriteria::new(Task::Chat), &ctx).unwrap();
    assert_eq!(s.chosen().entry.id, "cloud-chat");
    // Prefer local: +50 for SmolLM2.
    let local = SelectionCriteria { prefer_local: true, ..SelectionCriteria::new(Task::Chat) };
    let s = reg.select(&local, &ctx).unwrap();
    assert_eq!(s.chosen().entry.id, "SmolLM2-135M-Instruct.Q4_1");
    assert!(s.explain().contains("+50.0 local"), "{}", s.explain());
    // Quality and a latency limit: the cloud model is better but too slow.
    let quality = SelectionCriteria { prefer_quality: true, ..SelectionCriteria::new(Task::Chat) };
    assert_eq!(reg.select(&quality, &ctx).unwrap().chosen().entry.id, "cloud-chat");
    let fast = SelectionCriteria { max_latency_ms: Some(500), ..quality.clone() };
    let s = reg.select(&fast, &ctx).unwrap();
    assert_eq!(s.chosen().entry.id, "SmolLM2-135M-Instruct.Q4_1");
    assert!(s.excluded.iter().any(|e| e.id == "cloud-chat" && e.reason.contains("900 ms exceeds 500 ms")));
    // Required tags; memory too small for the local model.
    let tagged = SelectionCriteria { required_tags: vec!["cloud".into()], ..SelectionCriteria::new(Task::Chat) };
    assert_eq!(reg.select(&tagged, &ctx).unwrap().ranking.len(), 1);
    let starved = snapshot(50);
    let s = reg.select(&local, &SelectContext { resources: Some(&starved), ..SelectContext::default() }).unwrap();
    assert_eq!(s.chosen().entry.id, "cloud-chat", "SmolLM2 (94 MiB) does not fit in 50 MiB");
    // Plugins: with only the gguf plugin loaded, the remote model (openai) and TTS are out.
    let (_dir, gguf_only) = manager_with(&["rustai_gguf"]);
    let with_plugins = SelectContext { plugins: Some(&gguf_only), ..ctx };
    assert_eq!(reg.select(&SelectionCriteria::new(Task::Chat), &with_plugins).unwrap().chosen().entry.id, "SmolLM2-135M-Instruct.Q4_1");
    let caps = SelectionCriteria { required_capabilities: vec!["grammar".into(), "chat_template".into()], ..SelectionCriteria::new(Task::Chat) };
    assert_eq!(reg.select(&caps, &with_plugins).unwrap().chosen().entry.id, "SmolLM2-135M-Instruct.Q4_1");
    match reg.select(&SelectionCriteria::new(Task::Tts), &with_plugins) {
        Err(Error::NoSuitableModel { reasons, .. }) => assert!(reasons[0].contains("no loaded plugin reads piper"), "{reasons:?}"),
        other => panic!("{other:?}"),
    }
    // With every plugin, the remote model (openai plugin) and the voice (piper plugin) can serve.
    let all = PluginManager::from_dirs([plugins_dist()]).unwrap();
    let with_all = SelectContext { plugins: Some(&all), ..ctx };
    assert_eq!(reg.select(&SelectionCriteria::new(Task::Chat), &with_all).unwrap().chosen().entry.id, "cloud-chat");
    assert_eq!(reg.select(&SelectionCriteria::new(Task::Tts), &with_all).unwrap().chosen().entry.id, "en_US-joe-medium");
    assert_eq!(reg.select(&SelectionCriteria::new(Task::Embedding), &with_all).unwrap().chosen().entry.id, "all-MiniLM-L6-v2");
}
