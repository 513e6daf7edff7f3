//! Keeping every path inside the configured roots.
//!
//! A requested path is refused before the file system is touched when it has a `..`
//! component or is absolute outside every root. A relative path is looked up in each root
//! in order (the first where it exists wins). The result is then canonicalised (links
//! resolved) and must lie inside a root's canonical form: a symbolic link inside a root that
//! points outside it is refused.
//!
//! Residual risk, by design: someone who can write inside a root could swap a checked folder
//! for a link between the check and the read. The roots are the user's own folders.

use std::path::{Component, Path, PathBuf};

use crate::config::Settings;

/// Why a path cannot be used; the message is for the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No roots configured.
    #[error(
        "the files plugin has no folders to read: add `roots = [\"/path/to/folder\"]` under `[files]` in plugins.toml \
         (~/.rustai/plugins.toml, or the file given with --plugins-config) and restart or reload"
    )]
    NoRoots,
    /// A `..` component.
    #[error("`{0}`: `..` is not allowed in paths; use a path inside the folders ({1})")]
    ParentDir(String, String),
    /// An absolute path outside the roots.
    #[error("`{0}` is outside the folders this tool may read ({1})")]
    Outside(String, String),
    /// A path that leads outside the roots through a symbolic link.
    #[error("`{0}` leads outside the folders this tool may read (through a symbolic link)")]
    Escapes(String),
    /// Nothing there.
    #[error("`{0}` does not exist in the folders this tool may read ({1})")]
    NotFound(String, String),
    /// Not readable.
    #[error("`{0}`: {1}")]
    Io(String, String),
}

/// The canonical path of `requested`, checked to be inside one of `settings.roots`.
pub fn resolve(settings: &Settings, requested: &str) -> Result<PathBuf, Refused> {
    if settings.roots.is_empty() {
        return Err(Refused::NoRoots);
    }
    let roots = || settings.root_list();
    let path = Path::new(requested);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(Refused::ParentDir(requested.to_owned(), roots()));
    }
    let candidate = if path.is_absolute() {
        let inside = settings.roots.iter().any(|r| path.starts_with(&r.configured) || path.starts_with(&r.canonical));
        if !inside {
            return Err(Refused::Outside(requested.to_owned(), roots()));
        }
        path.to_path_buf()
    } else {
        settings
            .roots
            .iter()
            .map(|r| r.canonical.join(path))
            .find(|p| p.symlink_metadata().is_ok())
            .ok_or_else(|| Refused::NotFound(requested.to_owned(), roots()))?
    };
    let canonical = candidate.canonicalize().map_err(|e| match e.kind() {
        // A dangling link, or an absolute path to nothing.
        std::io::ErrorKind::NotFound => Refused::NotFound(requested.to_owned(), roots()),
        _ => Refused::Io(requested.to_owned(), e.to_string()),
    })?;
    if settings.roots.iter().any(|r| canonical.starts_with(&r.canonical)) {
        Ok(canonical)
    } else {
        Err(Refused::Escapes(requested.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Root;

    fn settings(roots: &[&Path]) -> Settings {
        let roots = roots.iter().map(|p| Root { configured: p.to_path_buf(), canonical: p.canonicalize().unwrap() }).collect();
        Settings { roots, ..Settings::default() }
    }

    #[test]
    fn inside_is_found_and_everything_else_refused() {
        let (a, b, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir(a.path().join("sub")).unwrap();
        std::fs::write(a.path().join("sub/one.txt"), "1").unwrap();
        std::fs::write(b.path().join("two.txt"), "2").unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
        let s = settings(&[a.path(), b.path()]);
        let canon = |p: &Path| p.canonicalize().unwrap();

        assert_eq!(resolve(&s, "sub/one.txt").unwrap(), canon(&a.path().join("sub/one.txt")));
        assert_eq!(resolve(&s, "./sub/one.txt").unwrap(), canon(&a.path().join("sub/one.txt")));
        // Relative paths are looked up in each root in order.
        assert_eq!(resolve(&s, "two.txt").unwrap(), canon(&b.path().join("two.txt")));
        assert_eq!(resolve(&s, "").unwrap(), canon(a.path()));
        let abs = b.path().join("two.txt");
        assert_eq!(resolve(&s, abs.to_str().unwrap()).unwrap(), canon(&abs));

        assert!(matches!(resolve(&s, "sub/../sub/one.txt"), Err(Refused::ParentDir(..))));
        assert!(matches!(resolve(&s, "../secret.txt"), Err(Refused::ParentDir(..))));
        let secret = outside.path().join("secret.txt");
        assert!(matches!(resolve(&s, secret.to_str().unwrap()), Err(Refused::Outside(..))));
        assert!(matches!(resolve(&s, "/etc/passwd"), Err(Refused::Outside(..))));
        assert!(matches!(resolve(&s, "missing.txt"), Err(Refused::NotFound(..))));
        assert_eq!(resolve(&settings(&[]), "x"), Err(Refused::NoRoots));
        assert!(Refused::NoRoots.to_string().contains("[files]"));
    }

    #[cfg(unix)]
    #[test]
    fn links_out_of_a_root_are_refused_and_links_within_followed() {
        let (root, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
        std::fs::write(root.path().join("real.txt"), "r").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.path().join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("leakdir")).unwrap();
        std::os::unix::fs::symlink(root.path().join("real.txt"), root.path().join("alias.txt")).unwrap();
        std::os::unix::fs::symlink(root.path().join("nowhere"), root.path().join("dangling")).unwrap();
        let s = settings(&[root.path()]);

        assert_eq!(resolve(&s, "leak.txt"), Err(Refused::Escapes("leak.txt".into())));
        assert_eq!(resolve(&s, "leakdir/secret.txt"), Err(Refused::Escapes("leakdir/secret.txt".into())));
        assert_eq!(resolve(&s, "leakdir"), Err(Refused::Escapes("leakdir".into())));
        assert_eq!(resolve(&s, "alias.txt").unwrap(), root.path().join("real.txt").canonicalize().unwrap());
        assert!(matches!(resolve(&s, "dangling"), Err(Refused::NotFound(..))));
        // An absolute path through the link is refused too.
        let through = root.path().join("leakdir/secret.txt");
        assert_eq!(resolve(&s, through.to_str().unwrap()), Err(Refused::Escapes(through.display().to_string())));
    }
}
