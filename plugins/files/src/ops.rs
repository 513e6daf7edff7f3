//! The two tools' work, on a path `confine` has already checked: `read_file` (UTF-8 text,
//! at most `max_bytes`, then cut with a note saying so) and `list_dir` (sorted, at most
//! `max_entries`, then a note with how many more there are).

use std::{fs::File, io::Read, path::Path};

use crate::config::Settings;

/// Why a checked path cannot be read; the message is for the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// `read_file` on a folder.
    #[error("`{0}` is a folder; use list_dir to see what it holds")]
    IsFolder(String),
    /// `list_dir` on a file.
    #[error("`{0}` is a file, not a folder; use read_file to read it")]
    NotAFolder(String),
    /// A device, socket or pipe (reading one could block forever).
    #[error("`{0}` is not a regular file")]
    NotRegular(String),
    /// Content that is not UTF-8.
    #[error("`{path}` is not UTF-8 text (invalid byte at offset {offset}); this tool reads text files only")]
    NotText {
        /// As requested.
        path: String,
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// The OS refused.
    #[error("`{0}`: {1}")]
    Io(String, String),
}

fn io(requested: &str) -> impl Fn(std::io::Error) -> ReadError + '_ {
    move |e| ReadError::Io(requested.to_owned(), e.to_string())
}

/// The text of the file at `path` (`requested` is the path as asked, for messages). Past
/// `settings.max_bytes` the text is cut at a character boundary and a note says so.
pub fn read_file(settings: &Settings, path: &Path, requested: &str) -> Result<String, ReadError> {
    let meta = std::fs::metadata(path).map_err(io(requested))?;
    if meta.is_dir() {
        return Err(ReadError::IsFolder(requested.to_owned()));
    }
    if !meta.is_file() {
        return Err(ReadError::NotRegular(requested.to_owned()));
    }
    let limit = settings.max_bytes;
    let mut bytes = Vec::with_capacity(meta.len().min(limit + 1) as usize);
    File::open(path).map_err(io(requested))?.take(limit + 1).read_to_end(&mut bytes).map_err(io(requested))?;
    let truncated = bytes.len() as u64 > limit;
    bytes.truncate(limit as usize);
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let err = e.utf8_error();
            // A cut through the last character is ours, not the file's.
            if truncated && err.error_len().is_none() {
                let mut bytes = e.into_bytes();
                bytes.truncate(err.valid_up_to());
                String::from_utf8(bytes).expect("valid up to here")
            } else {
                return Err(ReadError::NotText { path: requested.to_owned(), offset: err.valid_up_to() });
            }
        }
    };
    if !truncated {
        return Ok(text);
    }
    let size = std::fs::metadata(path).map_or(meta.len(), |m| m.len());
    Ok(format!(
        "{text}\n\n[truncated: this is the first {} of {size} bytes; the files plugin returns at most {limit} bytes (`max_bytes` in plugins.toml)]",
        text.len()
    ))
}

/// One line per entry, sorted by name: `name/` a folder, `name@` a symbolic link, `name
/// (N bytes)` a file. Past `settings.max_entries` a note says how many more there are.
pub fn list_dir(settings: &Settings, path: &Path, requested: &str) -> Result<String, ReadError> {
    let meta = std::fs::metadata(path).map_err(io(requested))?;
    if !meta.is_dir() {
        return Err(ReadError::NotAFolder(requested.to_owned()));
    }
    let mut entries: Vec<(String, std::fs::DirEntry)> = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io(requested))? {
        let entry = entry.map_err(io(requested))?;
        entries.push((entry.file_name().to_string_lossy().into_owned(), entry));
    }
    if entries.is_empty() {
        return Ok("(empty folder)".to_owned());
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let total = entries.len();
    let mut lines: Vec<String> = entries
        .iter()
        .take(settings.max_entries)
        .map(|(name, entry)| match entry.file_type() {
            Ok(t) if t.is_dir() => format!("{name}/"),
            Ok(t) if t.is_symlink() => format!("{name}@"),
            Ok(t) if t.is_file() => match entry.metadata() {
                Ok(m) => format!("{name} ({} bytes)", m.len()),
                Err(_) => name.clone(),
            },
            _ => name.clone(),
        })
        .collect();
    if total > settings.max_entries {
        lines.push(format!(
            "[{} more entries not shown; the files plugin lists at most {} (`max_entries` in plugins.toml)]",
            total - settings.max_entries,
            settings.max_entries
        ));
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: u64, max_entries: usize) -> Settings {
        Settings { max_bytes, max_entries, ..Settings::default() }
    }

    #[test]
    fn reads_text_cuts_long_files_and_refuses_binary() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("a.txt"), "héllo\n").unwrap();
        std::fs::write(p("bin"), [0x66, 0xff, 0x00]).unwrap();
        std::fs::write(p("long.txt"), "é".repeat(10)).unwrap(); // 20 bytes

        assert_eq!(read_file(&limits(100, 10), &p("a.txt"), "a.txt").unwrap(), "héllo\n");
        assert_eq!(read_file(&limits(100, 10), &p("bin"), "bin"), Err(ReadError::NotText { path: "bin".into(), offset: 1 }));
        // 5 bytes cut the third `é` in half: four bytes are shown, and the note says so.
        let cut = read_file(&limits(5, 10), &p("long.txt"), "long.txt").unwrap();
        assert!(cut.starts_with("éé\n\n[truncated: this is the first 4 of 20 bytes"), "{cut}");
        assert!(cut.contains("`max_bytes`"));
        assert_eq!(read_file(&limits(20, 10), &p("long.txt"), "long.txt").unwrap(), "é".repeat(10));
        assert_eq!(read_file(&limits(100, 10), dir.path(), "."), Err(ReadError::IsFolder(".".into())));
    }

    #[test]
    fn lists_sorted_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("a.txt"), "abc").unwrap();
        std::fs::write(dir.path().join("c.txt"), "").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("a.txt", dir.path().join("d")).unwrap();

        let all = list_dir(&limits(1, 10), dir.path(), ".").unwrap();
        let expected = if cfg!(unix) { "a.txt (3 bytes)\nb/\nc.txt (0 bytes)\nd@" } else { "a.txt (3 bytes)\nb/\nc.txt (0 bytes)" };
        assert_eq!(all, expected);
        let capped = list_dir(&limits(1, 2), dir.path(), ".").unwrap();
        assert!(capped.starts_with("a.txt (3 bytes)\nb/\n["), "{capped}");
        assert!(capped.contains(if cfg!(unix) { "2 more entries" } else { "1 more entries" }));
        assert_eq!(list_dir(&limits(1, 2), &dir.path().join("b"), "b").unwrap(), "(empty folder)");
        assert_eq!(list_dir(&limits(1, 2), &dir.path().join("a.txt"), "a.txt"), Err(ReadError::NotAFolder("a.txt".into())));
    }
}
