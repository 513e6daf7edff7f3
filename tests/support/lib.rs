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
    let p = plugins_dist().join(dylib_name("rustai_gguf"));
    assert!(p.is_file(), "{} is missing: run scripts/build-plugins.sh (scripts/test.sh does)", p.display());
    p
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
        let params = LoadModelParams { threads: 2, ..LoadModelParams::new(smollm2().to_string_lossy()) };
        let model = llm.load(&params).expect("SmolLM2 loads");
        (manager, Arc::new(model))
    })
}
