//! Loading one plugin file: sniff, copy, dlopen, check, instantiate.
//!
//! Every step that can fail produces a [`RejectReason`] a person can act on.
//! Libraries are loaded with abi_stable's `lib_header_from_path` +
//! `init_root_module` (not `RootModule::load_from*`, which caches the first
//! module per type), from a private copy of the file: glibc hands back an
//! already-loaded library for a path it has seen, and a build that overwrites
//! the file in place would corrupt the mapped code. Libraries are never
//! unloaded (dlclose of llama.cpp crashes the process).

use std::{
    fmt,
    fs,
    io::Read,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use abi_stable::library::{lib_header_from_path, LibraryError};
use rustai_abi::{Handshake, PluginError, PluginInfo, PluginInstance, PluginModRef, API_VERSION};

/// Why a file was not loaded as a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// The file could not be read or copied.
    Unreadable(String),
    /// The file is empty or too short to be a library.
    TooShort {
        /// Its size in bytes.
        size: u64,
    },
    /// The file is not a shared library for any platform.
    NotASharedLibrary {
        /// What its first bytes look like.
        looks_like: String,
    },
    /// The dynamic loader refused the file.
    LoadFailed(String),
    /// The library image is truncated or corrupt (found before `dlopen`, which would crash on it).
    Corrupt(String),
    /// A shared library without RustAI's root module.
    NotAPlugin,
    /// Built against an incompatible `rustai-abi` version.
    IncompatibleApi {
        /// The plugin's API version.
        plugin: String,
        /// The host's API version.
        host: String,
    },
    /// The interface types differ from the host's (abi_stable layout check).
    AbiMismatch(String),
    /// The id is malformed or differs between handshake and info.
    BadId(String),
    /// Another plugin with this id is already loaded.
    DuplicateId {
        /// The id.
        id: String,
        /// Where the loaded one came from.
        loaded_from: PathBuf,
    },
    /// The plugin failed (or panicked) while starting.
    StartFailed(PluginError),
    /// The file or its folder can be changed by other users.
    UnsafeLocation(String),
    /// An allowlist is in force and does not list this file's digest.
    NotAllowed {
        /// The file's sha256.
        digest: String,
        /// The file's name, for the line that approves it.
        file: String,
    },
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "cannot read the file: {e}"),
            Self::TooShort { size: 0 } => write!(f, "the file is empty"),
            Self::TooShort { size } => write!(f, "the file is too short ({size} bytes) to be a shared library"),
            Self::NotASharedLibrary { looks_like } => {
                write!(f, "not a shared library (the file starts like {looks_like})")
            }
            Self::LoadFailed(e) => write!(f, "the dynamic loader refused it: {e}"),
            Self::Corrupt(e) => write!(
                f,
                "the library is truncated or corrupt (checked before loading; a half-copied file is tried again when it changes): {e}"
            ),
            Self::NotAPlugin => write!(
                f,
                "a shared library, but not a RustAI plugin (it exports no rustai root module; \
                 plugins use rustai_plugin::export_plugin!)"
            ),
            Self::IncompatibleApi { plugin, host } => write!(
                f,
                "built for plugin API {plugin}, but this host speaks API {host}; \
                 rebuild the plugin against the rustai-plugin SDK {host}"
            ),
            Self::AbiMismatch(summary) => write!(
                f,
                "its interface types do not match this host's (built against a different rustai-abi, through another rustai-plugin SDK? a plugin built \
                 against an older version whose types this host has since extended must be rebuilt against {API_VERSION}): {summary}"
            ),
            Self::BadId(e) => write!(f, "invalid plugin id: {e}"),
            Self::DuplicateId { id, loaded_from } => {
                write!(f, "a plugin with id `{id}` is already loaded from {}", loaded_from.display())
            }
            Self::StartFailed(e) => write!(f, "the plugin failed to start: {e}"),
            Self::UnsafeLocation(why) => write!(f, "refused for safety: {why}"),
            Self::NotAllowed { digest, file } => write!(
                f,
                "its sha256 {digest} is not in the allowlist; to approve it, add this line to {}: {digest}  {file}",
                super::trust::LOCK_FILE
            ),
        }
    }
}

/// What the host trusts, for the folder a file is in.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustCheck {
    /// When set, only these sha256 digests load.
    pub(crate) allowed: Option<std::collections::HashSet<String>>,
    /// Refuse files and folders other users can write to.
    pub(crate) check_permissions: bool,
}

/// A library that passed every check, instantiated and initialised.
pub(crate) struct Loaded {
    pub(crate) digest: String,
    pub(crate) handshake: Handshake,
    pub(crate) info: PluginInfo,
    pub(crate) instance: PluginInstance,
}

/// Smallest file that could be a shared library (an ELF header is 64 bytes).
const MIN_LIBRARY_SIZE: u64 = 64;

/// Whether `path` has a shared-library extension of any platform.
pub fn is_library_path(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("so" | "dylib" | "dll"))
}

/// Identify the file by its first bytes.
fn sniff(path: &Path) -> Result<(), RejectReason> {
    let size = fs::metadata(path).map_err(|e| RejectReason::Unreadable(e.to_string()))?.len();
    if size < MIN_LIBRARY_SIZE {
        return Err(RejectReason::TooShort { size });
    }
    let mut head = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| RejectReason::Unreadable(e.to_string()))?;
    let native = match head {
        [0x7f, b'E', b'L', b'F'] => true,                          // ELF (Linux, BSD)
        [0xcf, 0xfa, 0xed, 0xfe] | [0xca, 0xfe, 0xba, 0xbe] => true, // Mach-O 64 / universal
        [b'M', b'Z', _, _] => true,                                // PE (Windows)
        _ => false,
    };
    if native {
        return Ok(());
    }
    let looks_like = if head.iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) {
        "text".to_owned()
    } else if &head == b"GGUF" {
        "a GGUF model".to_owned()
    } else {
        format!("bytes {head:02x?}")
    };
    Err(RejectReason::NotASharedLibrary { looks_like })
}

/// Check that the library's headers parse and every segment and section it
/// asks to map lies inside the file.
fn check_image(path: &Path) -> Result<(), RejectReason> {
    use object::{Object, ObjectSection, ObjectSegment};
    let data = fs::read(path).map_err(|e| RejectReason::Unreadable(e.to_string()))?;
    let len = data.len() as u64;
    let broken = RejectReason::Corrupt;
    let file = object::File::parse(&*data).map_err(|e| broken(e.to_string()))?;
    for segment in file.segments() {
        let (offset, size) = segment.file_range();
        if offset.checked_add(size).is_none_or(|end| end > len) {
            return Err(broken(format!("a segment needs bytes {offset}..{} but the file has {len}", offset.saturating_add(size))));
        }
    }
    for section in file.sections() {
        if let Some((offset, size)) = section.file_range() {
            if offset.checked_add(size).is_none_or(|end| end > len) {
                let name = section.name().unwrap_or("?");
                return Err(broken(format!("section {name} needs bytes {offset}..{} but the file has {len}", offset.saturating_add(size))));
            }
        }
    }
    Ok(())
}

/// Copy `path` to a fresh name in `shadow_dir`, so each load gets its own file.
fn shadow_copy(path: &Path, shadow_dir: &Path) -> Result<PathBuf, RejectReason> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let copy = shadow_dir.join(format!("{n}-{name}"));
    fs::copy(path, &copy).map_err(|e| RejectReason::Unreadable(format!("copying to {}: {e}", copy.display())))?;
    Ok(copy)
}

/// Reduce abi_stable's error (which can be hundreds of lines) to what a person needs.
fn summarize(err: &LibraryError) -> RejectReason {
    match err {
        LibraryError::OpenError { err, .. } => RejectReason::LoadFailed(err.to_string()),
        LibraryError::GetSymbolError { .. } => RejectReason::NotAPlugin,
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => {
            RejectReason::IncompatibleApi { plugin: actual_version.to_string(), host: expected_version.to_string() }
        }
        LibraryError::RootModule { err, .. } => {
            RejectReason::StartFailed(PluginError::internal(format!("root module failed: {err}")))
        }
        other => {
            let text = other.to_string();
            let mut summary = abi_errors(&text).join("; ");
            if summary.is_empty() {
                summary = text.lines().map(str::trim).filter(|l| !l.is_empty()).take(3).collect::<Vec<_>>().join(" / ");
            }
            if summary.len() > 400 {
                let cut = (0..=400).rev().find(|&i| summary.is_char_boundary(i)).unwrap_or(0);
                summary.truncate(cut);
                summary.push('…');
            }
            RejectReason::AbiMismatch(summary)
        }
    }
}

/// The `Error:` entries of abi_stable's layout report, each with its expected
/// and found values: "mismatched type (expected u32, found u64)".
fn abi_errors(report: &str) -> Vec<String> {
    let lines: Vec<&str> = report.lines().map(str::trim).collect();
    let mut errors: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(what) = line.strip_prefix("Error:") else { continue };
        let value_after = |label: &str| {
            lines[i + 1..].iter().take(6).position(|l| *l == label).and_then(|p| lines.get(i + 2 + p)).copied()
        };
        let entry = match (value_after("Expected:"), value_after("Found:")) {
            (Some(e), Some(f)) => format!("{} (expected {e}, found {f})", what.trim()),
            _ => what.trim().to_owned(),
        };
        if !errors.contains(&entry) {
            errors.push(entry);
        }
    }
    errors
}

/// Whether the plugin's API version can work with this host: the same major version (for
/// 0.x, the same minor), patch levels in either direction. What else must hold is decided by
/// abi_stable's layout check, which runs first: a plugin may be built against a newer interface
/// than the host's (the host ignores trait methods appended after the prefix marker), but not
/// against an older one whose types the host has since extended (it is then refused as an
/// interface mismatch, and must be rebuilt).
pub(crate) fn api_compatible(plugin_api: &str) -> Result<(), RejectReason> {
    let incompatible = || RejectReason::IncompatibleApi { plugin: plugin_api.to_owned(), host: API_VERSION.to_owned() };
    let plugin = semver::Version::parse(plugin_api).map_err(|_| incompatible())?;
    let host = semver::Version::parse(API_VERSION).map_err(|_| incompatible())?;
    let same_line = plugin.major == host.major && (host.major > 0 || plugin.minor == host.minor);
    if same_line && plugin.pre.is_empty() {
        Ok(())
    } else {
        Err(incompatible())
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Load and check the plugin at `path`.
/// `config` gives the JSON configuration `init` receives for a plugin id.
pub(crate) fn load(path: &Path, shadow_dir: &Path, trust: &TrustCheck, config: &dyn Fn(&str) -> String) -> Result<Loaded, RejectReason> {
    // A symlinked plugin is loaded from its target, so the target and its folder are checked too.
    let target = if path.is_symlink() {
        Some(std::fs::canonicalize(path).map_err(|e| {
            let to = std::fs::read_link(path).map_or_else(|_| "?".to_owned(), |t| t.display().to_string());
            RejectReason::Unreadable(format!("it is a symbolic link to {to}, which cannot be read ({e})"))
        })?)
    } else {
        None
    };
    if trust.check_permissions {
        let mut locations = vec![path.parent().unwrap_or(Path::new(".")), path];
        if let Some(t) = &target {
            locations.extend([t.parent().unwrap_or(Path::new("/")), t.as_path()]);
        }
        for location in locations {
            if let Some(why) = super::trust::unsafe_location(location) {
                return Err(RejectReason::UnsafeLocation(why));
            }
        }
    }
    sniff(path)?;
    let copy = shadow_copy(path, shadow_dir)?;
    // The loader maps segments without checking them against the file size: a
    // truncated (half-written) library would crash this process with SIGBUS.
    if let Err(reason) = check_image(&copy) {
        let _ = fs::remove_file(&copy);
        return Err(reason);
    }
    // The digest is of the bytes that will actually be mapped, not of a file that may change.
    let digest = super::trust::sha256_file(&copy).map_err(|e| RejectReason::Unreadable(e.to_string()))?;
    if let Some(allowed) = &trust.allowed {
        if !allowed.contains(&digest) {
            let _ = fs::remove_file(&copy);
            let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            return Err(RejectReason::NotAllowed { digest, file });
        }
    }
    let header = lib_header_from_path(&copy);
    // The mapping stays valid after the copy is removed (on Unix); the library is never unloaded.
    #[cfg(unix)]
    let _ = fs::remove_file(&copy);
    let module = header.and_then(|h| h.init_root_module::<PluginModRef>()).map_err(|e| summarize(&e))?;

    let handshake = (module.handshake())();
    api_compatible(handshake.api_version.as_str())?;
    if !valid_id(handshake.plugin_id.as_str()) {
        return Err(RejectReason::BadId(format!(
            "`{}` (ids use lower-case letters, digits, `-` and `_`)",
            handshake.plugin_id
        )));
    }
    let instance = (module.instantiate())().into_result().map_err(RejectReason::StartFailed)?;
    let info = instance.plugin.info();
    if info.id != handshake.plugin_id {
        return Err(RejectReason::BadId(format!(
            "the handshake says `{}` but the plugin says `{}`",
            handshake.plugin_id, info.id
        )));
    }
    instance.plugin.init(config(info.id.as_str()).as_str().into()).into_result().map_err(RejectReason::StartFailed)?;
    Ok(Loaded { digest, handshake, info, instance })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_match_on_the_breaking_part_only() {
        let host = semver::Version::parse(API_VERSION).unwrap();
        assert!(api_compatible(API_VERSION).is_ok());
        // Newer and older patch levels pass here; abi_stable's layout check decides between them.
        assert!(api_compatible(&format!("{}.{}.{}", host.major, host.minor, host.patch + 7)).is_ok());
        assert!(api_compatible(&format!("{}.{}.0", host.major, host.minor)).is_ok());
        assert!(matches!(api_compatible(&format!("{}.{}.0", host.major, host.minor + 1)), Err(RejectReason::IncompatibleApi { .. })));
        assert!(matches!(api_compatible("99.0.0"), Err(RejectReason::IncompatibleApi { .. })));
        assert!(matches!(api_compatible("not-a-version"), Err(RejectReason::IncompatibleApi { .. })));
    }

    #[test]
    fn abi_reports_are_summarised() {
        // The shape of abi_stable's report for a field changed from u32 to u64.
        let report = "Compared <this>:\n    --- Type Layout ---\n\nError:incompatible type size\nExpected:\n    24\nFound:\n    32\n\
                      1 error(s)inside:\n    <other>\n\nError:mismatched type\nExpected:\n    u32\nFound:\n    u64\n";
        assert_eq!(
            abi_errors(report),
            ["incompatible type size (expected 24, found 32)", "mismatched type (expected u32, found u64)"]
        );
        assert!(abi_errors("no errors here").is_empty());
    }

    #[test]
    fn ids_are_restricted() {
        assert!(valid_id("gguf"));
        assert!(valid_id("my-plugin_2"));
        assert!(!valid_id(""));
        assert!(!valid_id("Bad Id"));
        assert!(!valid_id("../x"));
    }

    #[test]
    fn sniff_rejects_non_libraries() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.so");
        fs::write(&empty, b"").unwrap();
        assert_eq!(sniff(&empty), Err(RejectReason::TooShort { size: 0 }));
        let text = dir.path().join("text.so");
        fs::write(&text, "#!/bin/sh\necho this is a script, not a library, padded to be long enough\n").unwrap();
        assert!(matches!(sniff(&text), Err(RejectReason::NotASharedLibrary { .. })));
    }
}
