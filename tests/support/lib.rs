//! Helpers shared by the integration tests: where the built plugins, the test
//! fixtures and the real models are, and one shared loaded SmolLM2.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use rustai_core::{abi::LoadModelParams, LlmModel, PluginManager};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// `plugins-dist/`, where scripts/build-plugins.sh installs the plugins.
pub fn plugins_dist() -> PathBuf {
    repo_root().join("plugins-dist")
}

/// File name of a cdylib called `name` on this platform.
pub fn dylib_name(name: &str) -> String {
    format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

/// The installed gguf plugin.
pub fn gguf_plugin() -> PathBuf {
    installed_plugin("rustai_gguf")
}

/// An installed plugin from `plugins-dist/`, by library name (e.g. `rustai_candle`).
pub fn installed_plugin(lib_name: &str) -> PathBuf {
    let p = plugins_dist().join(dylib_name(lib_name));
    assert!(p.is_file(), "{} is missing: run scripts/build-plugins.sh (scripts/test.sh does)", p.display());
    p
}

/// A model file or folder under `models/` (fetched by scripts/fetch-models.sh).
pub fn model_path(rel: &str) -> PathBuf {
    let p = repo_root().join("models").join(rel);
    assert!(p.exists(), "{} is missing: run scripts/fetch-models.sh and scripts/convert-whisper.sh (scripts/test.sh does)", p.display());
    p
}

/// A plugin manager over a private folder holding only the given installed plugins.
pub fn manager_with(lib_names: &[&str]) -> (tempfile::TempDir, PluginManager) {
    let dir = tempfile::tempdir().expect("tempdir");
    for lib in lib_names {
        std::fs::copy(installed_plugin(lib), dir.path().join(dylib_name(lib))).expect("copy plugin");
    }
    let manager = PluginManager::from_dirs([dir.path()]).expect("plugin manager");
    if let Some(r) = manager.rejected().first() {
        panic!("plugin rejected: {r}");
    }
    (dir, manager)
}

/// The real SmolLM2-135M-Instruct GGUF.
pub fn smollm2() -> PathBuf {
    let p = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.is_file(), "{} is missing: run scripts/fetch-models.sh (scripts/test.sh does)", p.display());
    p
}

/// A test-fixture cdylib built by `cargo build --release --workspace` into the target dir.
pub fn fixture(lib_name: &str) -> PathBuf {
    // The test binary lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let p = profile_dir.join(dylib_name(lib_name));
    assert!(p.is_file(), "{} is missing: run `cargo build --release --workspace` first (scripts/test.sh does)", p.display());
    p
}

/// Plugins from `plugins-dist/` plus SmolLM2 loaded once per test binary.
pub fn shared_smollm2() -> &'static (PluginManager, Arc<LlmModel>) {
    static SHARED: OnceLock<(PluginManager, Arc<LlmModel>)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let _ = gguf_plugin();
        let manager = PluginManager::from_dirs([plugins_dist()]).expect("plugin manager");
        let llm = manager.llm("gguf").expect("the gguf plugin is loaded");
        // One slot: the tests sharing this model then run one generation at a time, so an
        // answer does not depend on which other test's tokens share its batch (llama.cpp's CPU
        // kernels are not batch-invariant; `tests/serving_core.rs` covers batching).
        let params = LoadModelParams {
            threads: 2,
            extra_json: r#"{"parallel": 1}"#.into(),
            ..LoadModelParams::new(smollm2().to_string_lossy())
        };
        let model = llm.load(&params).expect("SmolLM2 loads");
        (manager, Arc::new(model))
    })
}

/// Copy `src` into `dir` as `name` the way installers do: write a hidden
/// temporary file, then rename it over the target (atomic for watchers).
pub fn install(src: &Path, dir: &Path, name: &str) -> PathBuf {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(src, &tmp).expect("copy plugin");
    let dest = dir.join(name);
    std::fs::rename(&tmp, &dest).expect("rename plugin");
    dest
}

/// Wait up to `timeout` for an event matching `pred`, returning it.
pub fn wait_for_event(
    rx: &mut tokio::sync::broadcast::Receiver<rustai_core::PluginEvent>,
    timeout: std::time::Duration,
    mut pred: impl FnMut(&rustai_core::PluginEvent) -> bool,
) -> rustai_core::PluginEvent {
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) if pred(&e) => return e,
            Ok(e) => seen.push(e.to_string()),
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => {
                assert!(std::time::Instant::now() < deadline, "no matching event within {timeout:?}; saw {seen:#?}");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("event channel: {e}"),
        }
    }
}

/// Build a Cargo project outside the workspace (like a third party would) in
/// release, into a target dir beside the workspace's, offline; return the
/// path of its cdylib `lib_name`.
pub fn build_external(project: &Path, lib_name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let target_root = exe.ancestors().nth(3).expect("<target>/<profile>/deps/exe").to_path_buf();
    let target = target_root.join("external-builds");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["build", "--release", "--offline", "--quiet", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "building {} failed:\n{}", project.display(), String::from_utf8_lossy(&out.stderr));
    let lib = target.join("release").join(dylib_name(lib_name));
    assert!(lib.is_file(), "{} was not produced", lib.display());
    lib
}

/// Copy a folder tree (no symlinks, skips `target/`).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_name() == "target" || entry.file_name() == "Cargo.lock" {
            continue;
        }
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Lower-case words, punctuation removed (apostrophes kept).
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Word error rate: word-level edit distance over the reference length, after [`words`].
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// Run the ignored test `test` of the current test binary in a fresh process with
/// `env_key=env_value`, and assert that it succeeded and printed `ok_marker`. For tests
/// whose process state matters (native libraries loaded in a given order).
pub fn run_ignored_in_child(test: &str, env_key: &str, env_value: &str, ok_marker: &str) {
    let out = std::process::Command::new(std::env::current_exe().expect("current exe"))
        .args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"])
        .env(env_key, env_value)
        .output()
        .expect("the test binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains(ok_marker), "{test} with {env_key}={env_value} failed ({}):\n{text}", out.status);
}
