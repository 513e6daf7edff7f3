//! Finding and starting ONNX Runtime (`ort` with `load-dynamic`).
//!
//! The plugin does not link ONNX Runtime: it opens `libonnxruntime` (≥ 1.31) at
//! the first model load, from the first of these places that applies:
//!
//! 1. `$ORT_DYLIB_PATH`: the library file (ort's own convention);
//! 2. `$RUSTAI_ORT_LIB`: the library file, or a folder holding it;
//! 3. beside the voice being loaded: `<voice folder>/.runtime/`, then `<voice folder>/`
//!    (`scripts/fetch-models.sh` puts it in `models/.runtime/`);
//! 4. the user's folders: `~/.rustai/plugins/`, `~/.rustai/models/.runtime/`;
//! 5. the system's library search path (`libonnxruntime.so`, `LD_LIBRARY_PATH`).
//!
//! In a folder, `libonnxruntime.so` is preferred, else the highest versioned
//! `libonnxruntime.so.1.x.y`. When a variable is set, only that place is tried
//! (a file it names that does not exist is a `NotReady` error, not skipped).
//! ort allows one environment per process: it is created once and kept
//! (success is remembered; a failure is reported and retried on the next load,
//! so a user can fix the set-up without restarting the host).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use ort::environment::Environment;
use rustai_plugin::{ErrorKind, PluginError};

const LIB_PREFIX: &str = "libonnxruntime.so";

static ENV: OnceLock<Environment> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Whether ONNX Runtime is already running in this process.
pub(crate) fn is_started() -> bool {
    ENV.get().is_some()
}

/// Is `name` `libonnxruntime.so` or `libonnxruntime.so.<digits and dots>`?
fn is_library_name(name: &str) -> bool {
    match name.strip_prefix(LIB_PREFIX) {
        Some("") => true,
        Some(rest) => {
            rest.starts_with('.') && rest[1..].split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        }
        None => false,
    }
}

fn version_key(name: &str) -> Vec<u64> {
    name.trim_start_matches(LIB_PREFIX).split('.').filter_map(|p| p.parse().ok()).collect()
}

/// The library in `dir`, if any.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let plain = dir.join(LIB_PREFIX);
    if plain.is_file() {
        return Some(plain);
    }
    let mut found: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            (is_library_name(&name) && e.path().is_file()).then(|| (version_key(&name), e.path()))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// Where the library is, or why there is none to try.
#[derive(Debug, PartialEq, Eq)]
enum Located {
    /// Open this file.
    File(PathBuf),
    /// A variable names something unusable: say so (nothing else is tried).
    Missing(String),
    /// Not in any folder searched (listed): let the dynamic loader try its path.
    System(String),
}

/// Where to find the library for a voice at `model`, given the values of
/// `ORT_DYLIB_PATH`, `RUSTAI_ORT_LIB` and `HOME`.
fn locate(model: &Path, ort_dylib_path: Option<OsString>, rustai_ort_lib: Option<OsString>, home: Option<OsString>) -> Located {
    let file = |var: &str, p: PathBuf| match p.exists() || !p.is_absolute() {
        true => Located::File(p),
        false => Located::Missing(format!("{var}={} does not exist", p.display())),
    };
    if let Some(p) = ort_dylib_path.filter(|v| !v.is_empty()) {
        return file("ORT_DYLIB_PATH", PathBuf::from(p));
    }
    if let Some(p) = rustai_ort_lib.filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_dir() {
            return library_in(&p).map_or_else(
                || Located::Missing(format!("the folder RUSTAI_ORT_LIB={} holds no {LIB_PREFIX}*", p.display())),
                Located::File,
            );
        }
        return file("RUSTAI_ORT_LIB", p);
    }
    let mut dirs = Vec::new();
    if let Some(folder) = model.parent() {
        let folder = if folder.as_os_str().is_empty() { Path::new(".") } else { folder };
        dirs.push(folder.join(".runtime"));
        dirs.push(folder.to_path_buf());
    }
    if let Some(home) = home.filter(|v| !v.is_empty()) {
        let rustai = PathBuf::from(home).join(".rustai");
        dirs.push(rustai.join("plugins"));
        dirs.push(rustai.join("models").join(".runtime"));
    }
    match dirs.iter().find_map(|d| library_in(d)) {
        Some(found) => Located::File(found),
        None => Located::System(dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")),
    }
}

fn not_ready(problem: &str) -> PluginError {
    PluginError::new(
        ErrorKind::NotReady,
        format!(
            "ONNX Runtime (libonnxruntime.so, version 1.31 or newer) is needed to speak: {problem}. Put \
             libonnxruntime.so.1.31.1 (from the PyPI wheel onnxruntime==1.31.1; scripts/fetch-models.sh fetches it \
             into models/.runtime/) in a `.runtime` folder beside your voice or in ~/.rustai/plugins/, or set \
             ORT_DYLIB_PATH (or RUSTAI_ORT_LIB) to the file"
        ),
    )
}

/// The process-wide ONNX Runtime environment, started on first use for a voice at `model`.
pub(crate) fn environment(model: &Path) -> Result<&'static Environment, PluginError> {
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    let located = locate(
        model,
        std::env::var_os("ORT_DYLIB_PATH"),
        std::env::var_os("RUSTAI_ORT_LIB"),
        std::env::var_os("HOME"),
    );
    let (library, searched) = match located {
        Located::File(path) => (path, None),
        Located::Missing(why) => return Err(not_ready(&why)),
        Located::System(searched) => (PathBuf::from(LIB_PREFIX), Some(searched)),
    };
    let builder = ort::init_from(&library).map_err(|e| match &searched {
        Some(dirs) => not_ready(&format!("it is not in {dirs} nor on the system library path ({e})")),
        None => PluginError::new(
            ErrorKind::Backend,
            format!(
                "cannot use ONNX Runtime at {}: {e}. The piper plugin needs libonnxruntime 1.31 or newer \
                 (the PyPI wheel onnxruntime==1.31.1 ships libonnxruntime.so.1.31.1)",
                library.display()
            ),
        ),
    })?;
    let env = builder
        .with_name("rustai-piper")
        .with_telemetry(false)
        .build()
        .map_err(|e| PluginError::new(ErrorKind::Backend, format!("ONNX Runtime ({}) failed to start: {e}", library.display())))?;
    Ok(ENV.get_or_init(|| env))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names() {
        assert!(is_library_name("libonnxruntime.so"));
        assert!(is_library_name("libonnxruntime.so.1.31.1"));
        assert!(!is_library_name("libonnxruntime.so.1.31.1.partial"));
        assert!(!is_library_name("libonnxruntime.so."));
        assert!(!is_library_name("libonnxruntime_providers_shared.so"));
    }

    #[test]
    fn highest_version_wins() {
        let dir = std::env::temp_dir().join(format!("piper-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for n in ["libonnxruntime.so.1.9.0", "libonnxruntime.so.1.31.1", "libonnxruntime.so.1.31.1.partial"] {
            std::fs::write(dir.join(n), b"x").expect("write");
        }
        assert_eq!(library_in(&dir), Some(dir.join("libonnxruntime.so.1.31.1")));
        std::fs::write(dir.join("libonnxruntime.so"), b"x").expect("write");
        assert_eq!(library_in(&dir), Some(dir.join("libonnxruntime.so")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lookup_order() {
        let tmp = std::env::temp_dir().join(format!("piper-lookup-{}", std::process::id()));
        let voice_dir = tmp.join("voices");
        std::fs::create_dir_all(voice_dir.join(".runtime")).expect("dirs");
        let voice = voice_dir.join("v.onnx");
        let lib = voice_dir.join(".runtime/libonnxruntime.so.1.31.1");
        let os = |p: &Path| Some(p.as_os_str().to_owned());
        // Nothing anywhere: the system path is tried, and the folders are named.
        match locate(&voice, None, None, os(&tmp)) {
            Located::System(searched) => assert!(searched.contains(".runtime"), "{searched}"),
            other => panic!("{other:?}"),
        }
        std::fs::write(&lib, b"x").expect("write");
        assert_eq!(locate(&voice, None, None, None), Located::File(lib.clone()));
        // Variables win, and a missing file they name is reported, not skipped.
        let other = tmp.join("elsewhere.so");
        assert!(matches!(locate(&voice, os(&other), None, None), Located::Missing(m) if m.contains("ORT_DYLIB_PATH")));
        assert!(matches!(locate(&voice, None, os(&tmp), None), Located::Missing(m) if m.contains("RUSTAI_ORT_LIB")));
        assert_eq!(locate(&voice, None, os(&voice_dir.join(".runtime")), None), Located::File(lib.clone()));
        assert_eq!(locate(&voice, os(&lib), os(&other), None), Located::File(lib));
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn a_bad_library_is_a_clean_error() {
        let tmp = std::env::temp_dir().join(format!("piper-badlib-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("dir");
        let fake = tmp.join("libonnxruntime.so.1.31.1");
        std::fs::write(&fake, b"not a library").expect("write");
        let err = ort::init_from(&fake).map(drop).map_err(|e| e.to_string());
        assert!(err.is_err(), "a text file is not ONNX Runtime");
        assert_eq!(not_ready("x").kind, ErrorKind::NotReady);
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
