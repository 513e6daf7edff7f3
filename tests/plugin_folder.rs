//! A plugin folder with good and bad files: the good plugin loads, every bad
//! file is reported with its path and a specific reason, panics inside a
//! plugin become errors, and each plugin gets its own configuration at load.

use std::{path::Path, process::Command};

use rustai_core::{
    abi::{ErrorKind, GenerateRequest, HealthStatus, LoadModelParams, SamplingParams},
    Error, PluginConfigs, PluginManager, RejectReason,
};
use test_support::{dylib_name, fixture, gguf_plugin};

/// Compile a real shared library that is not a RustAI plugin.
fn c_library(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("plain.c");
    std::fs::write(&src, "int plain_add(int a, int b) { return a + b; }\n").unwrap();
    let out = dir.join(dylib_name("plain"));
    let status = Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&out).arg(&src).status().expect("cc runs");
    assert!(status.success());
    std::fs::remove_file(src).unwrap();
    out
}

fn reason_for(manager: &PluginManager, file: &str) -> RejectReason {
    manager
        .rejected()
        .into_iter()
        .find(|r| r.path.file_name().unwrap() == file)
        .unwrap_or_else(|| panic!("{file} should be rejected; rejected: {:?}", manager.rejected()))
        .reason
}

#[test]
fn good_plugin_loads_and_each_bad_file_has_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(gguf_plugin(), dir.path().join(dylib_name("rustai_gguf"))).unwrap();
    let plain = c_library(dir.path());
    std::fs::write(dir.path().join(dylib_name("empty")), b"").unwrap();
    std::fs::copy(fixture("fixture_future_api"), dir.path().join(dylib_name("fixture_future_api"))).unwrap();
    std::fs::write(dir.path().join(dylib_name("notes")), "these are notes, not a library; long enough to sniff\n".repeat(3)).unwrap();
    std::fs::write(dir.path().join("README.txt"), "not a library name: ignored").unwrap();

    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    let ids: Vec<String> = manager.plugins().iter().map(|p| p.id().to_owned()).collect();
    assert_eq!(ids, ["gguf"]);
    assert_eq!(manager.rejected().len(), 4, "{:#?}", manager.rejected());

    assert_eq!(reason_for(&manager, plain.file_name().unwrap().to_str().unwrap()), RejectReason::NotAPlugin);
    assert_eq!(reason_for(&manager, &dylib_name("empty")), RejectReason::TooShort { size: 0 });
    match reason_for(&manager, &dylib_name("fixture_future_api")) {
        RejectReason::IncompatibleApi { plugin, host } => {
            assert_eq!(plugin, "1.0.0");
            assert_eq!(host, rustai_core::abi::API_VERSION);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(matches!(reason_for(&manager, &dylib_name("notes")), RejectReason::NotASharedLibrary { looks_like } if looks_like == "text"));

    // Every rejection prints its path and an actionable reason.
    for r in manager.rejected() {
        let line = r.to_string();
        assert!(line.contains(dir.path().to_str().unwrap()), "{line}");
    }
    assert!(reason_for(&manager, &dylib_name("fixture_future_api")).to_string().contains("rebuild the plugin"));

    let gguf = manager.get("gguf").unwrap();
    assert_eq!(gguf.health().status, HealthStatus::Healthy);
    assert_eq!(gguf.info().api_version.as_str(), rustai_core::abi::API_VERSION);
    assert!(gguf.reads_format("gguf") && gguf.has_feature("streaming"));
}

#[test]
fn duplicate_ids_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("fixture_panicky"), dir.path().join(dylib_name("a_panicky"))).unwrap();
    std::fs::copy(fixture("fixture_panicky"), dir.path().join(dylib_name("b_panicky"))).unwrap();
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    assert_eq!(manager.plugins().len(), 1);
    match reason_for(&manager, &dylib_name("b_panicky")) {
        RejectReason::DuplicateId { id, loaded_from } => {
            assert_eq!(id, "panicky");
            assert!(loaded_from.ends_with(dylib_name("a_panicky")));
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn a_panic_in_a_plugin_becomes_an_error_and_degrades_health() {
    let manager = PluginManager::new().unwrap();
    let plugin = manager.load_file(&fixture("fixture_panicky")).expect("loads");
    assert_eq!(plugin.health().status, HealthStatus::Healthy);
    let llm = manager.llm("panicky").unwrap();
    for _ in 0..3 {
        let err = llm.load(&LoadModelParams::new("whatever.bin")).unwrap_err();
        match &err {
            Error::Plugin { plugin, source } => {
                assert_eq!(plugin, "panicky");
                assert_eq!(source.kind, ErrorKind::Panicked);
                assert!(source.message.contains("deliberate panic while loading whatever.bin"), "{err}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    let health = plugin.health();
    assert_eq!(health.status, HealthStatus::Degraded);
    assert!(health.message.contains("load_model"), "{}", health.message);
}

#[test]
fn each_plugin_gets_its_table_of_plugins_toml_and_a_bad_one_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("plugins.toml");
    std::fs::write(&toml, "[echo]\ngreeting = \"hello\"\n\n[other]\nx = 1\n").unwrap();
    let manager = PluginManager::new().unwrap();
    manager.set_configs(PluginConfigs::load(&toml).unwrap());
    manager.load_file(&fixture("fixture_echo")).expect("loads");
    let model = manager.llm("echo").unwrap().load(&LoadModelParams::new("m.echo")).unwrap();
    let done = model.generate(&GenerateRequest::new("one two", SamplingParams::greedy()), |_| true).unwrap();
    assert_eq!(done.text.as_str(), "[1.0.0] hello one two");

    // A configuration the plugin cannot use keeps it out, with its reason.
    let mut bad = PluginConfigs::none();
    bad.set("echo", serde_json::json!(["not", "an", "object"]));
    let manager = PluginManager::new().unwrap();
    manager.set_configs(bad);
    let rejected = manager.load_file(&fixture("fixture_echo")).expect_err("refused");
    assert!(matches!(&rejected.reason, RejectReason::StartFailed(e) if e.message.contains("must be a JSON object")), "{rejected}");
}

#[test]
fn missing_folders_are_skipped_and_unknown_plugins_are_errors() {
    let manager = PluginManager::from_dirs(["/nonexistent/plugins"]).unwrap();
    assert!(manager.plugins().is_empty() && manager.rejected().is_empty());
    assert!(matches!(manager.llm("gguf"), Err(Error::UnknownPlugin(_))));
    assert!(matches!(manager.serving(None, "gguf", rustai_core::FamilyKind::Llm), Err(Error::NoPluginFor(_))));
}

#[test]
fn a_truncated_library_is_refused_before_the_loader_maps_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(gguf_plugin()).unwrap();
    std::fs::write(dir.path().join(dylib_name("half")), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.path().join(dylib_name("head")), &good[..4096]).unwrap();
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    for file in ["half", "head"] {
        match reason_for(&manager, &dylib_name(file)) {
            reason @ RejectReason::Corrupt(_) => {
                // The message says what the plugin guide says: caught before loading, not by the loader.
                let text = reason.to_string();
                assert!(text.contains("truncated or corrupt") && text.contains("before loading"), "{file}: {text}");
                assert!(!text.contains("dynamic loader"), "{file}: {text}");
            }
            other => panic!("{file}: unexpected {other}"),
        }
    }
}

#[test]
fn an_unreadable_candidate_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    // A directory with a library's name: it exists, but cannot be read as a file.
    let odd = dir.path().join(dylib_name("folder"));
    std::fs::create_dir(&odd).unwrap();
    let manager = PluginManager::new().unwrap();
    let rejected = manager.load_file(&odd).unwrap_err();
    match &rejected.reason {
        RejectReason::Unreadable(why) => assert!(why.to_lowercase().contains("directory"), "{why}"),
        other => panic!("unexpected {other}"),
    }
}

#[cfg(unix)]
#[test]
fn folders_other_users_can_write_to_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("fixture_panicky"), dir.path().join(dylib_name("panicky"))).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    assert!(manager.plugins().is_empty());
    match reason_for(&manager, &dylib_name("panicky")) {
        RejectReason::UnsafeLocation(why) => assert!(why.contains("writable by every user"), "{why}"),
        other => panic!("unexpected {other}"),
    }
    // The same file in a private folder loads.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(manager.load_file(&dir.path().join(dylib_name("panicky"))).is_ok());
}

#[test]
fn an_allowlist_admits_only_listed_digests_and_says_how_to_approve() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dylib_name("panicky");
    let path = dir.path().join(&lib);
    std::fs::copy(fixture("fixture_panicky"), &path).unwrap();
    let digest = rustai_core::plugins::trust::sha256_file(&path).unwrap();
    std::fs::write(dir.path().join("plugins.lock"), format!("{}  other.so\n", "0".repeat(64))).unwrap();

    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    assert!(manager.plugins().is_empty());
    let reason = reason_for(&manager, &lib);
    assert_eq!(reason, RejectReason::NotAllowed { digest: digest.clone(), file: lib.clone() });
    let line = reason.to_string();
    assert!(line.contains(&format!("{digest}  {lib}")), "the refusal prints the approving line: {line}");

    // Approving it (the watcher would do this on the lock file's change) lets it load.
    std::fs::write(dir.path().join("plugins.lock"), format!("{digest}  {lib}\n")).unwrap();
    assert!(manager.load_file(&path).is_ok());
    assert!(manager.rejected().is_empty());

    // Revoking the digest retires the (unchanged) plugin on its next check.
    std::fs::write(dir.path().join("plugins.lock"), "# nothing approved\n").unwrap();
    assert!(matches!(manager.sync_path(&path), rustai_core::SyncOutcome::Rejected(_)));
    assert!(manager.get("panicky").is_none());

    // A digest from the configuration works without a lock file too.
    let other = tempfile::tempdir().unwrap();
    let copy = other.path().join(&lib);
    std::fs::copy(&path, &copy).unwrap();
    let policy = rustai_core::TrustPolicy { allowed_digests: ["f".repeat(64)].into(), ..Default::default() };
    let strict = PluginManager::with_trust(policy).unwrap();
    assert!(matches!(strict.load_file(&copy).unwrap_err().reason, RejectReason::NotAllowed { .. }));
}

#[test]
fn a_symlinked_plugin_is_followed_and_a_dangling_link_is_reported() {
    let builds = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = builds.path().join(dylib_name("rustai_gguf"));
    std::fs::copy(gguf_plugin(), &target).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join(dylib_name("rustai_gguf"))).unwrap();
    std::os::unix::fs::symlink(builds.path().join("gone.so"), dir.path().join(dylib_name("dangling"))).unwrap();
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    assert_eq!(manager.plugins().iter().map(|p| p.id().to_owned()).collect::<Vec<_>>(), ["gguf"]);
    match reason_for(&manager, &dylib_name("dangling")) {
        RejectReason::Unreadable(msg) => assert!(msg.contains("symbolic link") && msg.contains("gone.so"), "{msg}"),
        other => panic!("unexpected {other}"),
    }
}
