//! Hot reload in a watched folder: new builds replace old ones without failing
//! a request, broken builds are reported while the old one keeps serving,
//! removed files retire their plugin. Uses the `echo` fixture plugin, built as
//! 1.0.0 and 2.0.0, which names its version in every reply and streams slowly.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use rustai_core::{
    abi::{FinishReason, GenerateRequest, LoadModelParams, SamplingParams},
    EventKind, ModelFile, ModelFormat, ModelPool, PluginManager,
};
use test_support::{dylib_name, fixture, install, wait_for_event};

const WAIT: Duration = Duration::from_secs(20);

/// The echo plugin ignores its model file's contents, but the pool sizes the file.
fn echo_model(dir: &Path) -> ModelFile {
    let path = dir.join("words.echo");
    std::fs::write(&path, "echo model").unwrap();
    ModelFile { id: "words".into(), path, format: ModelFormat::Gguf, size: 10 }
}

struct Outcome {
    started: Instant,
    ended: Instant,
    version: String,
    text: String,
    finish: FinishReason,
}

fn request(pool: &ModelPool, model: &ModelFile) -> Outcome {
    let started = Instant::now();
    let m = pool.llm(model, &LoadModelParams::new(""), Some("echo")).expect("model");
    let prompt = "one two three four five six seven eight";
    let done = m.generate(&GenerateRequest::new(prompt, SamplingParams::greedy()), |_| true).expect("request completes");
    Outcome { started, ended: Instant::now(), version: m.plugin().version().to_owned(), text: done.text.into(), finish: done.finish_reason }
}

#[test]
fn new_build_replaces_the_old_while_requests_stream() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dylib_name("echo");
    install(&fixture("fixture_echo"), dir.path(), &lib);
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    assert_eq!(manager.get("echo").unwrap().version(), "1.0.0");
    let mut events = manager.subscribe();
    let _watch = manager.watch_with(Duration::from_millis(100)).unwrap();
    let pool = Arc::new(ModelPool::new(manager.clone()));
    let model = echo_model(dir.path());

    // Requests start every 40 ms for 1.6 s; each streams for ~180 ms.
    let workers: Vec<_> = (0..40)
        .map(|i| {
            let (pool, model) = (Arc::clone(&pool), model.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(40 * i));
                request(&pool, &model)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    install(&fixture("fixture_echo_v2"), dir.path(), &lib);
    let reloaded = wait_for_event(&mut events, WAIT, |e| e.kind == EventKind::Reloaded);
    let swapped_at = Instant::now();
    assert_eq!(reloaded.version.as_deref(), Some("2.0.0"));
    let outcomes: Vec<Outcome> = workers.into_iter().map(|w| w.join().expect("no request failed")).collect();

    for o in &outcomes {
        assert_eq!(o.finish, FinishReason::Eos);
        assert_eq!(o.text, format!("[{}] one two three four five six seven eight", o.version), "complete reply");
        if o.started > swapped_at {
            assert_eq!(o.version, "2.0.0", "a request started after the swap runs on the new build");
        }
    }
    assert!(outcomes.iter().any(|o| o.version == "1.0.0"), "some requests ran on 1.0.0");
    assert!(
        outcomes.iter().any(|o| o.version == "1.0.0" && o.ended > swapped_at),
        "at least one request on 1.0.0 was still streaming when 2.0.0 took over, and completed"
    );
    // Once its last request is done and the pool has moved on, 1.0.0 is shut down.
    let retired = wait_for_event(&mut events, WAIT, |e| e.kind == EventKind::Retired);
    assert_eq!(retired.version.as_deref(), Some("1.0.0"));
    assert_eq!(manager.get("echo").unwrap().version(), "2.0.0");
}

#[test]
fn broken_replacement_is_rejected_and_the_old_build_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dylib_name("echo");
    install(&fixture("fixture_echo"), dir.path(), &lib);
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    let mut events = manager.subscribe();
    let _watch = manager.watch_with(Duration::from_millis(100)).unwrap();
    let pool = ModelPool::new(manager.clone());
    let model = echo_model(dir.path());
    assert_eq!(request(&pool, &model).version, "1.0.0");

    // A truncated build (half of a real library) replaces the good one.
    let good = std::fs::read(fixture("fixture_echo_v2")).unwrap();
    let broken = dir.path().join("broken.bin");
    std::fs::write(&broken, &good[..good.len() / 2]).unwrap();
    install(&broken, dir.path(), &lib);
    let rejected = wait_for_event(&mut events, WAIT, |e| e.kind == EventKind::Rejected);
    assert!(rejected.path.ends_with(&lib));
    assert!(rejected.detail.as_deref().unwrap().contains("version 1.0.0 keeps serving"), "{rejected}");
    assert!(manager.rejected().iter().any(|r| r.path.ends_with(&lib)));

    let o = request(&pool, &model);
    assert_eq!((o.version.as_str(), o.finish), ("1.0.0", FinishReason::Eos), "the old build still serves");

    // A fixed build then loads normally and clears the rejection.
    install(&fixture("fixture_echo_v2"), dir.path(), &lib);
    wait_for_event(&mut events, WAIT, |e| e.kind == EventKind::Reloaded);
    assert!(manager.rejected().is_empty());
    assert_eq!(request(&pool, &model).version, "2.0.0");
}

#[test]
fn lifecycle_events_for_a_new_plugin_and_its_removal() {
    let dir = tempfile::tempdir().unwrap();
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    let mut events = manager.subscribe();
    let _watch = manager.watch_with(Duration::from_millis(100)).unwrap();
    let lib = dylib_name("echo");
    let path = install(&fixture("fixture_echo"), dir.path(), &lib);
    let mut kinds = Vec::new();
    wait_for_event(&mut events, WAIT, |e| {
        kinds.push(e.kind);
        e.kind == EventKind::Active
    });
    assert_eq!(kinds, [EventKind::Discovered, EventKind::Validated, EventKind::Loaded, EventKind::Active]);

    // Removing the file retires the plugin once nothing uses it.
    let in_use = manager.llm("echo").unwrap();
    std::fs::remove_file(&path).unwrap();
    let deadline = Instant::now() + WAIT;
    while manager.get("echo").is_some() {
        assert!(Instant::now() < deadline, "plugin still listed after its file was removed");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(in_use);
    let retired = wait_for_event(&mut events, WAIT, |e| e.kind == EventKind::Retired);
    assert_eq!(retired.id.as_deref(), Some("echo"));
}

#[test]
fn renaming_a_plugin_file_keeps_the_plugin_serving() {
    let dir = tempfile::tempdir().unwrap();
    let from = install(&fixture("fixture_echo"), dir.path(), &dylib_name("zeta"));
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    let mut events = manager.subscribe();
    let _watch = manager.watch_with(Duration::from_millis(100)).unwrap();
    let to = dir.path().join(dylib_name("alpha"));
    std::fs::rename(&from, &to).unwrap();
    let active = wait_for_event(&mut events, WAIT, |e| e.kind == EventKind::Active || e.kind == EventKind::Rejected);
    assert_eq!(active.kind, EventKind::Active, "{active}");
    assert!(manager.get("echo").unwrap().path().ends_with(dylib_name("alpha")));
    assert!(manager.rejected().is_empty(), "{:?}", manager.rejected());
}

#[test]
fn touching_a_file_without_changing_it_does_not_reload() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dylib_name("echo");
    let path = install(&fixture("fixture_echo"), dir.path(), &lib);
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    let generation = manager.get("echo").unwrap().generation();
    assert!(matches!(manager.sync_path(&path), rustai_core::SyncOutcome::Unchanged));
    assert_eq!(manager.get("echo").unwrap().generation(), generation);
}

#[test]
fn a_truncated_file_is_tried_once_per_change_not_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    let mut events = manager.subscribe();
    let _watch = manager.watch_with(Duration::from_millis(100)).unwrap();
    let good = std::fs::read(fixture("fixture_echo")).unwrap();
    std::fs::write(dir.path().join(dylib_name("half")), &good[..good.len() / 2]).unwrap();
    wait_for_event(&mut events, WAIT, |e| e.kind == EventKind::Rejected);
    // Nothing changes now: the rejection must not repeat (it used to, about 8 times a second,
    // because reading the file to check it woke the watcher again).
    std::thread::sleep(Duration::from_secs(2));
    let mut again = 0;
    while let Ok(e) = events.try_recv() {
        again += usize::from(e.kind == EventKind::Rejected);
    }
    assert_eq!(again, 0, "the unchanged file was rejected {again} more times");
    // A real change is noticed: the complete file loads.
    install(&fixture("fixture_echo"), dir.path(), &dylib_name("half"));
    wait_for_event(&mut events, WAIT, |e| e.kind == EventKind::Active || e.kind == EventKind::Loaded);
}
