//! Which plugin files the host is willing to load.
//!
//! - A plugin folder (or file) that other users can write to is refused: anyone
//!   with write access could make this process run their code.
//! - An optional allowlist of sha256 digests: `plugins.lock` in the plugin
//!   folder (lines as `sha256sum` prints them: `<hex digest>  <file name>`), or
//!   digests given in the configuration. When one exists, a plugin whose digest
//!   is not listed is refused, and the refusal prints the line that approves it.
//!   The digest is taken of the private copy that is actually loaded.

use std::{collections::HashSet, io::Read, path::Path};

use sha2::{Digest, Sha256};

/// Name of the allowlist file looked for in each plugin folder.
pub const LOCK_FILE: &str = "plugins.lock";

/// Trust settings of a [`crate::PluginManager`].
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// Digests approved by configuration, in addition to any `plugins.lock`.
    /// When empty and no `plugins.lock` exists, every digest is accepted.
    pub allowed_digests: HashSet<String>,
    /// Skip the ownership/permission check (for folders on file systems without Unix modes).
    pub skip_permission_check: bool,
}

/// The sha256 of a file, as lower-case hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Digests listed in `dir/plugins.lock`, or `None` when there is no such file.
pub(crate) fn lock_file_digests(dir: &Path) -> std::io::Result<Option<HashSet<String>>> {
    let text = match std::fs::read_to_string(dir.join(LOCK_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_ascii_lowercase)
            .collect(),
    ))
}

/// Why `path` (a plugin folder or file) is unsafe to load from, if it is.
#[cfg(unix)]
pub(crate) fn unsafe_location(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mode = meta.mode();
    if mode & 0o002 != 0 {
        return Some(format!("{} is writable by every user (mode {:o}); run `chmod o-w` on it", path.display(), mode & 0o777));
    }
    if mode & 0o020 != 0 && meta.uid() != me {
        return Some(format!(
            "{} is group-writable and owned by another user (uid {}); only its owner or root should be able to change plugins",
            path.display(),
            meta.uid()
        ));
    }
    if meta.uid() != me && meta.uid() != 0 {
        return Some(format!("{} belongs to another user (uid {})", path.display(), meta.uid()));
    }
    None
}

/// On platforms without Unix modes there is nothing to check here.
#[cfg(not(unix))]
pub(crate) fn unsafe_location(_path: &Path) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_is_sha256sum_format() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lock_file_digests(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(LOCK_FILE), "# approved\nABCDEF01  libx.so\n\n0123  liby.so\n").unwrap();
        let digests = lock_file_digests(dir.path()).unwrap().unwrap();
        assert!(digests.contains("abcdef01") && digests.contains("0123") && digests.len() == 2);
    }

    #[test]
    fn digest_of_a_known_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("abc");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(sha256_file(&f).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[cfg(unix)]
    #[test]
    fn world_writable_folders_are_unsafe() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(unsafe_location(dir.path()), None);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(unsafe_location(dir.path()).unwrap().contains("writable by every user"));
    }
}
