//! The tool plugins from `plugins-dist/` (`calculator`, `files`), loaded with dlopen and
//! called through the engine's tool entry points (`Engine::tools`, `Engine::call_tool`):
//! exact arithmetic and its errors, the files plugin's confinement to its configured roots,
//! and, with the `slow-tool` fixture, timeouts and names two plugins share.

use std::{path::Path, time::Duration};

use rustai_core::{Engine, EngineConfig, Error, PluginConfigs, PluginManager, Registry, ToolResult};
use serde_json::json;
use test_support::{fixture, installed_plugin};

const WAIT: Duration = Duration::from_secs(30);

/// An engine over a private plugin folder holding `libs` (paths), each plugin configured
/// from `plugins_toml`; no models.
fn engine_with(libs: &[std::path::PathBuf], plugins_toml: &str) -> (tempfile::TempDir, Engine, PluginManager) {
    let dir = tempfile::tempdir().unwrap();
    for lib in libs {
        std::fs::copy(lib, dir.path().join(lib.file_name().unwrap())).unwrap();
    }
    let manager = PluginManager::new().unwrap();
    manager.set_configs(PluginConfigs::from_toml(plugins_toml, Path::new("plugins.toml")).unwrap());
    manager.load_dir(dir.path()).unwrap();
    let engine = Engine::new(manager.clone(), Registry::scan_only(Vec::<std::path::PathBuf>::new()), None, EngineConfig::default());
    (dir, engine, manager)
}

fn calculator() -> std::path::PathBuf {
    installed_plugin("rustai_calculator")
}

fn files() -> std::path::PathBuf {
    installed_plugin("rustai_files")
}

fn call(engine: &Engine, name: &str, args: serde_json::Value) -> ToolResult {
    engine.call_tool(name, &args, WAIT).unwrap_or_else(|e| panic!("{name} {args}: {e}"))
}

#[test]
fn calculator_is_exact_and_says_what_is_wrong() {
    let (_dir, engine, _) = engine_with(&[calculator()], "");
    let tools = engine.tools();
    assert_eq!(tools.len(), 1, "{tools:?}");
    assert_eq!((tools[0].plugin.as_str(), tools[0].name.as_str(), tools[0].call_name.as_str()), ("calculator", "calculator", "calculator"));
    assert_eq!(tools[0].parameters["required"], json!(["expression"]));
    assert_eq!(tools[0].parameters["properties"]["expression"]["type"], "string");

    let ok = call(&engine, "calculator", json!({"expression": "1234*5678"}));
    assert_eq!(ok, ToolResult { plugin: "calculator".into(), name: "calculator".into(), content: "7006652".into(), is_error: false });
    assert_eq!(call(&engine, "calculator.calculator", json!({"expression": "2^62 + (2^62 - 1)"})).content, "9223372036854775807");
    assert_eq!(call(&engine, "calculator", json!({"expression": "7 / 2"})).content, "3.5");

    for (expr, says) in [
        ("9223372036854775807 + 1", "integer overflow"),
        ("1/0", "division by zero"),
        ("x + 1", "unknown name `x`"),
        ("a = 3", "only arithmetic"),
        (&"1+".repeat(600), "at most 1000"),
    ] {
        let out = call(&engine, "calculator", json!({ "expression": expr }));
        assert!(out.is_error && out.content.contains(says), "{expr}: {out:?}");
    }

    // Arguments the model can fix are answers too; arguments that are not an object are the
    // caller's error.
    let out = call(&engine, "calculator", json!({"expr": "1"}));
    assert!(out.is_error && out.content.contains("`expression` (a string) is required"), "{out:?}");
    assert!(matches!(engine.call_tool("calculator", &json!("1+1"), WAIT), Err(Error::ToolArguments { got: "a string", .. })));
    match engine.call_tool("abacus", &json!({}), WAIT) {
        Err(e @ Error::UnknownTool { .. }) => assert!(e.to_string().contains("calculator.calculator"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// A root with a few files, a folder outside it, and links from the one to the other.
struct Tree {
    root: tempfile::TempDir,
    outside: tempfile::TempDir,
}

fn tree() -> Tree {
    let (root, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(root.path().join("sub")).unwrap();
    std::fs::write(root.path().join("notes.txt"), "remember the milk\n").unwrap();
    std::fs::write(root.path().join("sub/big.txt"), "0123456789".repeat(20)).unwrap();
    std::fs::write(root.path().join("image.bin"), [0x89, b'P', b'N', b'G', 0xff, 0x00]).unwrap();
    std::fs::write(outside.path().join("secret.txt"), "the secret").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.path().join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("leakdir")).unwrap();
        std::os::unix::fs::symlink("notes.txt", root.path().join("alias.txt")).unwrap();
    }
    Tree { root, outside }
}

fn files_config(t: &Tree, max_bytes: u64) -> String {
    format!("[files]\nroots = [{:?}]\nmax_bytes = {max_bytes}\n", t.root.path().display().to_string())
}

#[test]
fn files_reads_inside_its_roots_and_refuses_the_way_out() {
    let t = tree();
    let (_dir, engine, _) = engine_with(&[files()], &files_config(&t, 64));
    let names: Vec<String> = engine.tools().into_iter().map(|t| t.call_name).collect();
    assert_eq!(names, ["read_file", "list_dir"]);
    let read = |path: &str| call(&engine, "read_file", json!({ "path": path }));

    assert_eq!(read("notes.txt"), ToolResult { plugin: "files".into(), name: "read_file".into(), content: "remember the milk\n".into(), is_error: false });
    let abs = t.root.path().join("notes.txt");
    assert_eq!(read(abs.to_str().unwrap()).content, "remember the milk\n");

    // `..`, absolute paths outside the root, and links out of it are refused, saying why.
    let outside = t.outside.path().join("secret.txt");
    let escape = format!("../{}/secret.txt", t.outside.path().file_name().unwrap().to_string_lossy());
    for (path, says) in [
        (escape.as_str(), "`..` is not allowed"),
        ("sub/../notes.txt", "`..` is not allowed"),
        (outside.to_str().unwrap(), "outside the folders"),
        ("/etc/passwd", "outside the folders"),
        ("missing.txt", "does not exist"),
        ("image.bin", "not UTF-8 text"),
        ("sub", "is a folder"),
    ] {
        let out = read(path);
        assert!(out.is_error && out.content.contains(says), "{path}: {out:?}");
        assert!(!out.content.contains("the secret"), "{path}: {out:?}");
    }
    #[cfg(unix)]
    {
        for path in ["leak.txt", "leakdir/secret.txt"] {
            let out = read(path);
            assert!(out.is_error && out.content.contains("through a symbolic link"), "{path}: {out:?}");
        }
        let out = call(&engine, "list_dir", json!({"path": "leakdir"}));
        assert!(out.is_error && out.content.contains("through a symbolic link"), "{out:?}");
        assert_eq!(read("alias.txt").content, "remember the milk\n", "a link that stays inside is followed");
    }

    // The size cap: the first max_bytes, then a note.
    let big = read("sub/big.txt");
    assert!(!big.is_error, "{big:?}");
    let (text, note) = big.content.split_once("\n\n").unwrap();
    assert_eq!(text, &"0123456789".repeat(20)[..64]);
    assert!(note.contains("first 64 of 200 bytes") && note.contains("max_bytes"), "{note}");

    let listing = call(&engine, "list_dir", json!({"path": ""}));
    assert!(!listing.is_error, "{listing:?}");
    assert!(listing.content.lines().any(|l| l == "notes.txt (18 bytes)") && listing.content.lines().any(|l| l == "sub/"), "{}", listing.content);
    assert_eq!(call(&engine, "list_dir", json!({"path": "sub"})).content, "big.txt (200 bytes)");
}

#[test]
fn files_without_roots_says_how_to_set_them_and_bad_settings_are_refused() {
    let (_dir, engine, _) = engine_with(&[files()], "");
    let out = call(&engine, "list_dir", json!({"path": "."}));
    assert!(out.is_error && out.content.contains("[files]") && out.content.contains("roots = "), "{out:?}");

    let (_dir, engine, manager) = engine_with(&[files()], "[files]\nroots = [\"relative\"]\nmode = \"rw\"\n");
    assert!(engine.tools().is_empty());
    let rejected = manager.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].reason.to_string().contains("unknown field `mode`"), "{}", rejected[0].reason);
}

#[test]
fn shared_names_need_the_plugin_and_slow_tools_time_out() {
    let t = tree();
    let (_dir, engine, _) = engine_with(&[files(), fixture("fixture_slow_tool")], &files_config(&t, 1024));
    let mut shared: Vec<String> = engine.tools().into_iter().filter(|t| t.name == "read_file").map(|t| t.call_name).collect();
    shared.sort();
    assert_eq!(shared, ["files.read_file", "slow-tool.read_file"]);
    match engine.call_tool("read_file", &json!({"path": "notes.txt"}), WAIT) {
        Err(e @ Error::AmbiguousTool { .. }) => assert!(e.to_string().contains("files.read_file"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(call(&engine, "files.read_file", json!({"path": "notes.txt"})).content, "remember the milk\n");
    assert_eq!(call(&engine, "slow-tool.read_file", json!({})).content, "fixture");
    // Names only one plugin has need no prefix.
    assert_eq!(call(&engine, "list_dir", json!({"path": "sub"})).content, "big.txt (200 bytes)");

    assert_eq!(call(&engine, "sleep", json!({"ms": 10})).content, "slept 10 ms");
    let started = std::time::Instant::now();
    match engine.call_tool("sleep", &json!({"ms": 3000}), Duration::from_millis(200)) {
        Err(e @ Error::ToolTimeout { .. }) => assert!(e.to_string().contains("slow-tool.sleep") && e.to_string().contains("0.2 s"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());
    // The engine still answers while the timed-out call finishes in the background.
    assert_eq!(call(&engine, "sleep", json!({"ms": 1})).content, "slept 1 ms");
}
