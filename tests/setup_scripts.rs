//! The set-up scripts prove themselves: `scripts/install-deps.sh --print` is run
//! against fake roots (`RUSTAI_DEPS_ROOT`), one probe at a time, and must name
//! exactly the packages a fresh Debian 12 would need.
//!
//! The case that broke a fresh machine: LLVM's `libclang-cpp.so.14` present
//! without `libclang-dev`. bindgen cannot load that library, so the probe must
//! not take it for libclang.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    process::Command,
};

use test_support::repo_root;

/// A fake root where every probe succeeds; tests then remove one thing each.
struct FakeRoot {
    dir: tempfile::TempDir,
}

impl FakeRoot {
    fn complete() -> Self {
        let root = Self { dir: tempfile::tempdir().unwrap() };
        for cmd in ["cmake", "cc", "c++", "make", "ccache", "espeak-ng", "cargo"] {
            root.exe(&format!("usr/bin/{cmd}"), "#!/bin/sh\nexit 0\n");
        }
        // A python3 whose venv works.
        root.exe("usr/bin/python3", "#!/bin/sh\nexit 0\n");
        root.file("usr/lib/llvm-14/lib/libclang-14.so.1");
        root.file("usr/lib/llvm-14/lib/libclang.so");
        root.file("usr/lib/x86_64-linux-gnu/libespeak-ng.so");
        root
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn file(&self, rel: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"").unwrap();
    }

    fn exe(&self, rel: &str, script: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, script).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn remove(&self, rel: &str) {
        fs::remove_file(self.path(rel)).unwrap();
    }

    /// The packages (`need`) and tools (`missing`) the script reports.
    fn probe(&self) -> (Vec<String>, Vec<String>) {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/install-deps.sh"))
            .arg("--print")
            .env("RUSTAI_DEPS_ROOT", self.dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "install-deps.sh --print failed: {text}{}", String::from_utf8_lossy(&out.stderr));
        let pick = |prefix: &str| {
            text.lines()
                .filter_map(|l| l.strip_prefix(prefix))
                .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };
        (pick("need "), pick("missing "))
    }
}

fn needs(root: &FakeRoot) -> Vec<String> {
    root.probe().0
}

#[test]
fn a_complete_machine_needs_nothing() {
    let root = FakeRoot::complete();
    assert_eq!(root.probe(), (Vec::new(), Vec::new()));
}

#[test]
fn libclang_cpp_alone_is_not_libclang() {
    // What Debian 12 has after installing LLVM without libclang-dev.
    let root = FakeRoot::complete();
    root.remove("usr/lib/llvm-14/lib/libclang-14.so.1");
    root.remove("usr/lib/llvm-14/lib/libclang.so");
    root.file("usr/lib/x86_64-linux-gnu/libclang-cpp.so.14");
    root.file("usr/lib/llvm-14/lib/libclang-cpp.so.14");
    assert_eq!(needs(&root), ["libclang-dev"]);
}

#[test]
fn every_name_bindgen_loads_counts_as_libclang() {
    for name in [
        "usr/lib/llvm-14/lib/libclang.so",
        "usr/lib/llvm-16/lib/libclang-16.so.1",
        "usr/lib/x86_64-linux-gnu/libclang-14.so.1",
        "usr/lib/x86_64-linux-gnu/libclang.so.1",
        "usr/local/lib/libclang-18.so",
    ] {
        let root = FakeRoot::complete();
        root.remove("usr/lib/llvm-14/lib/libclang-14.so.1");
        root.remove("usr/lib/llvm-14/lib/libclang.so");
        root.file(name);
        assert_eq!(needs(&root), Vec::<String>::new(), "{name} is a libclang bindgen loads");
    }
}

#[test]
fn each_missing_tool_names_its_package() {
    for (remove, package) in [
        ("usr/bin/cmake", "cmake"),
        ("usr/bin/cc", "build-essential"),
        ("usr/bin/c++", "build-essential"),
        ("usr/bin/make", "build-essential"),
        ("usr/bin/ccache", "ccache"),
        ("usr/bin/espeak-ng", "espeak-ng"),
        ("usr/lib/x86_64-linux-gnu/libespeak-ng.so", "libespeak-ng-dev"),
    ] {
        let root = FakeRoot::complete();
        root.remove(remove);
        assert_eq!(needs(&root), [package], "without {remove}");
    }
}

#[test]
fn a_python_without_venv_needs_python3_venv() {
    let root = FakeRoot::complete();
    root.exe("usr/bin/python3", "#!/bin/sh\ncase \"$*\" in *ensurepip*) exit 1;; esac\nexit 0\n");
    assert_eq!(needs(&root), ["python3-venv"]);
}

#[test]
fn missing_cargo_and_python_are_reported_not_installed() {
    let root = FakeRoot::complete();
    root.remove("usr/bin/cargo");
    root.remove("usr/bin/python3");
    let (need, missing) = root.probe();
    assert!(need.is_empty(), "{need:?}");
    assert_eq!(missing, ["cargo", "python3"]);
}

#[test]
fn an_empty_machine_needs_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = FakeRoot { dir };
    let (need, missing) = root.probe();
    assert_eq!(need, ["cmake", "build-essential", "ccache", "libclang-dev", "espeak-ng", "libespeak-ng-dev"]);
    assert_eq!(missing, ["cargo", "python3"]);
}
