//! Plugins built the way a third party builds them: `examples/plugin-template`
//! is its own Cargo project outside the workspace. One build of it must load
//! and work; one against an interface whose types were changed must be refused
//! by abi_stable's layout check, with a reason a person can read.

use std::path::Path;

use rustai_core::{PluginManager, RejectReason, Tools};
use test_support::{build_external, copy_tree, repo_root};

/// Copy the template to `dir`, pointing its `rustai-plugin` dependency at `sdk`.
fn template_in(dir: &Path, sdk: &Path) -> std::path::PathBuf {
    let project = dir.join("plugin-template");
    copy_tree(&repo_root().join("examples/plugin-template"), &project);
    let manifest = project.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("path = \"../../crates/rustai-plugin\""), "{text}");
    let text = text.replace("path = \"../../crates/rustai-plugin\"", &format!("path = {:?}", sdk.display().to_string()));
    std::fs::write(&manifest, text).unwrap();
    project
}

/// A workspace crate's manifest made standalone (no inherited fields), with `deps` as paths.
fn standalone(manifest: &Path, deps: &[(&str, &Path)]) {
    let mut cargo = std::fs::read_to_string(manifest).unwrap()
        .replace("edition.workspace = true", "edition = \"2021\"")
        .replace("license.workspace = true\n", "")
        .replace("rust-version.workspace = true\n", "")
        .replace("repository.workspace = true\n", "")
        .replace("abi_stable.workspace = true", "abi_stable = \"0.11.3\"")
        .replace("serde_json.workspace = true", "serde_json = \"1\"")
        .replace("[lints]\nworkspace = true\n", "");
    // Optional helpers (and the features that turn them on) are not needed here.
    cargo = cargo.lines().filter(|l| !l.contains("optional = true") && !l.contains("[\"dep:")).map(|l| format!("{l}\n")).collect();
    for (name, path) in deps {
        cargo = cargo.replace(&format!("{name}.workspace = true"), &format!("{name} = {{ path = {:?} }}", path.display().to_string()));
    }
    std::fs::write(manifest, cargo).unwrap();
}

#[test]
fn the_plugin_template_builds_outside_the_workspace_loads_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let project = template_in(dir.path(), &repo_root().join("crates/rustai-plugin"));
    let lib = build_external(&project, "rustai_plugin_template");
    let manager = PluginManager::new().unwrap();
    let plugin = manager.load_file(&lib).unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(plugin.id(), "text-tools");
    assert_eq!(plugin.families(), ["tool"]);
    let tools = Tools::new(plugin).expect("a tool plugin");
    let names: Vec<String> = tools.definitions().into_iter().map(|t| t.name.into()).collect();
    assert_eq!(names, ["text_stats", "slugify"]);
    let out = tools.execute("text_stats", r#"{"text": "Hello there. How are you?"}"#).unwrap();
    let stats: serde_json::Value = serde_json::from_str(&out.content).unwrap();
    assert_eq!(stats["words"], 5);
    assert_eq!(stats["sentences"], 2);
    assert!(tools.execute("slugify", "not json").is_err());
}

#[test]
fn a_plugin_built_against_changed_interface_types_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of the interface in which one field changed type (u32 -> u64), as
    // if the plugin author had built against an edited or mismatched rustai-abi.
    let abi = dir.path().join("rustai-abi");
    copy_tree(&repo_root().join("crates/rustai-abi"), &abi);
    let types = abi.join("src/types.rs");
    let text = std::fs::read_to_string(&types).unwrap();
    assert!(text.contains("pub cores: u32,"));
    std::fs::write(&types, text.replace("pub cores: u32,", "pub cores: u64,")).unwrap();
    standalone(&abi.join("Cargo.toml"), &[]);
    // The SDK, built on that interface (the template depends on the SDK only).
    let sdk = dir.path().join("rustai-plugin");
    copy_tree(&repo_root().join("crates/rustai-plugin"), &sdk);
    standalone(&sdk.join("Cargo.toml"), &[("rustai-abi", &abi)]);

    let project = template_in(dir.path(), &sdk);
    let lib = build_external(&project, "rustai_plugin_template");
    let manager = PluginManager::new().unwrap();
    let rejected = manager.load_file(&lib).expect_err("must be refused");
    match &rejected.reason {
        RejectReason::AbiMismatch(summary) => {
            assert!(summary.len() < 600, "summarised, not abi_stable's whole report: {summary}");
            assert!(summary.contains("mismatched type (expected u32, found u64)"), "{summary}");
        }
        other => panic!("unexpected reason: {other}"),
    }
    assert!(rejected.to_string().contains("do not match this host"), "{rejected}");
}
