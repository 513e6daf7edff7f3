//! Plugins built the way a third party builds them: `examples/plugin-template`
//! is its own Cargo project outside the workspace. One build of it must load
//! and work; one against an interface whose types were changed must be refused
//! by abi_stable's layout check, with a reason a person can read. The plugin in
//! `docs/plugin-guide.md` must build, pass its own test, load and work exactly as
//! the guide writes it.

use std::path::{Path, PathBuf};

use rustai_core::{abi::ErrorKind, Error, PluginConfigs, PluginManager, RejectReason, Tools};
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
    // A missing argument is the tool's answer, for the model to fix.
    assert!(tools.execute("slugify", "{}").unwrap().is_error);
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
    // Its own library name: both template builds go to one target dir, and the test above
    // must not load this build (nor this test that one).
    let manifest = project.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("name = \"rustai-plugin-template\""), "{text}");
    std::fs::write(&manifest, text.replace("name = \"rustai-plugin-template\"", "name = \"changed-interface-template\"")).unwrap();
    let lib = build_external(&project, "changed_interface_template");
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

/// The fenced code block on the line after `<!-- guide-test: NAME -->` in `guide`.
fn guide_block(guide: &str, name: &str) -> String {
    let marker = format!("<!-- guide-test: {name} -->");
    let mut found = guide.match_indices(&marker).map(|(at, _)| at);
    let at = found.next().unwrap_or_else(|| panic!("docs/plugin-guide.md has no `{marker}` line"));
    assert!(found.next().is_none(), "`{marker}` appears more than once in docs/plugin-guide.md");
    // The rest of the marker's line, then the opening fence.
    let mut lines = guide[at + marker.len()..].lines().skip(1);
    let fence = lines.next().unwrap_or_default();
    assert!(fence.starts_with("```"), "`{marker}` must be followed by a fenced code block, not {fence:?}");
    let mut body = String::new();
    for line in lines {
        if line.trim_start().starts_with("```") {
            return body;
        }
        body.push_str(line);
        body.push('\n');
    }
    panic!("the code block after `{marker}` is never closed");
}

/// The string value of the first `key = "..."` line in `text`.
fn quoted_value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key)?.trim_start().strip_prefix('=')?.trim().strip_prefix('"')?.split('"').next())
        .unwrap_or_else(|| panic!("no `{key} = \"...\"` in:\n{text}"))
}

/// `cargo test --release` in an external project, in the target dir `build_external` uses
/// (so the dependencies it built are reused).
fn test_external(project: &Path, lib: &Path) {
    let target = lib.parent().and_then(Path::parent).expect("<target>/release/<lib>");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["test", "--release", "--offline", "--quiet", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "`cargo test` of {} failed:\n{}\n{}",
        project.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_plugin_guide_builds_as_written_outside_the_workspace() {
    let guide = std::fs::read_to_string(repo_root().join("docs/plugin-guide.md")).unwrap();
    let cargo_toml = guide_block(&guide, "Cargo.toml");
    let lib_rs = guide_block(&guide, "src/lib.rs");
    let plugins_toml = guide_block(&guide, "plugins.toml");

    // A fresh project with the guide's two files; only the path placeholder is filled in.
    const PLACEHOLDER: &str = "/path/to/rustai";
    assert!(cargo_toml.contains(&format!("{PLACEHOLDER}/crates/rustai-plugin")), "{cargo_toml}");
    let deps = cargo_toml.split("[dependencies]").nth(1).expect("a [dependencies] table");
    let deps: Vec<&str> = deps.lines().map(str::trim).take_while(|l| !l.starts_with('[')).filter(|l| !l.is_empty()).collect();
    assert_eq!(deps.len(), 1, "the guide's plugin depends on the SDK alone: {deps:?}");
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("my-plugin");
    std::fs::create_dir_all(project.join("src")).unwrap();
    let root = repo_root().to_string_lossy().replace('\\', "/");
    let mut manifest = cargo_toml.replace(PLACEHOLDER, &root);
    // Kept out of a workspace around the temporary folder, if there is one (as the guide says).
    let in_a_workspace = dir.path().ancestors().skip(1).any(|d| {
        std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]"))
    });
    if in_a_workspace && !manifest.contains("[workspace]") {
        manifest.push_str("\n[workspace]\n");
    }
    std::fs::write(project.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(project.join("src/lib.rs"), &lib_rs).unwrap();

    let package = quoted_value(&cargo_toml, "name");
    let version = quoted_value(&cargo_toml, "version");
    let id = lib_rs
        .split_once("export_plugin!(")
        .and_then(|(_, rest)| rest.split_once("id = \"")?.1.split('"').next())
        .expect("an `export_plugin!(.., id = \"..\")` line");
    let lib: PathBuf = build_external(&project, &package.replace('-', "_"));
    // The guide's own in-process test (`instantiate`) passes.
    test_external(&project, &lib);

    // Loaded by the host, configured from the guide's plugins.toml.
    let configs = PluginConfigs::from_toml(&plugins_toml, Path::new("plugins.toml")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&configs.for_plugin(id)).unwrap();
    let max_chars = config["max_chars"].as_u64().unwrap_or_else(|| panic!("plugins.toml has no `max_chars` for `{id}`: {plugins_toml}"));
    let manager = PluginManager::new().unwrap();
    manager.set_configs(configs);
    let plugin = manager.load_file(&lib).unwrap_or_else(|r| panic!("{r}"));
    // The id from export_plugin!, the version from Cargo.toml, filled in by the SDK.
    assert_eq!(plugin.id(), id);
    assert_eq!(plugin.version(), version);
    assert_eq!(plugin.info().api_version.as_str(), rustai_core::abi::API_VERSION);
    assert_eq!(plugin.info().name.as_str(), "Reverse");
    assert_eq!(plugin.families(), ["tool"]);
    assert_eq!(plugin.health().status, rustai_core::abi::HealthStatus::Healthy);

    let tools = Tools::new(plugin).expect("a tool plugin");
    let defs = tools.definitions();
    assert_eq!(defs.len(), 1);
    assert_eq!(defs[0].name.as_str(), "reverse");
    let schema: serde_json::Value = serde_json::from_str(&defs[0].parameters_schema).unwrap();
    assert_eq!(schema["required"], serde_json::json!(["text"]));

    let run = |args: &str| tools.execute("reverse", args).unwrap_or_else(|e| panic!("{args}: {e}"));
    let out = run(r#"{"text": "Hello, world"}"#);
    assert_eq!((out.content.as_str(), out.is_error), ("dlrow ,olleH", false));
    let out = run(r#"{"text": "one two  three", "words": true}"#);
    assert_eq!((out.content.as_str(), out.is_error), ("three two one", false));
    // Arguments the model can fix: the tool's answer, with is_error.
    for bad in [r#"{}"#, r#"{"text": 5}"#, r#"{"text": "x", "words": "yes"}"#, "[]"] {
        let out = run(bad);
        assert!(out.is_error, "{bad}: {}", out.content);
        assert!(out.content.contains('`'), "names the argument: {}", out.content);
    }
    // The limit from plugins.toml reached init.
    let limit = usize::try_from(max_chars).unwrap();
    let at_limit = serde_json::json!({ "text": "a".repeat(limit) }).to_string();
    assert!(!run(&at_limit).is_error);
    let over = run(&serde_json::json!({ "text": "a".repeat(limit + 1) }).to_string());
    assert!(over.is_error && over.content.contains(&format!("at most {limit}")), "{}", over.content);
    // The call itself failed: an Err of the right kind.
    let kind = |name: &str, args: &str| match tools.execute(name, args) {
        Err(Error::Plugin { source, .. }) => source.kind,
        other => panic!("{name}({args}): expected a plugin error, got {other:?}"),
    };
    assert_eq!(kind("nope", "{}"), ErrorKind::NotFound);
    assert_eq!(kind("reverse", "not json"), ErrorKind::InvalidInput);

    // A bad setting in plugins.toml refuses the build at load, with the plugin's reason.
    let manager = PluginManager::new().unwrap();
    manager.set_configs(PluginConfigs::from_toml(&format!("[{id}]\nmax_chars = \"many\"\n"), Path::new("plugins.toml")).unwrap());
    let rejected = manager.load_file(&lib).expect_err("a bad setting is refused");
    assert!(matches!(rejected.reason, RejectReason::StartFailed(_)), "{rejected}");
    assert!(rejected.to_string().contains("max_chars"), "{rejected}");
}
