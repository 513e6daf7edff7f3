//! Finding model files on disk and resolving a name to one of them.
//!
//! Discovery walks the model folders and identifies files by content (GGUF
//! magic), not by name. The id of a model is its file name without extension.

use std::path::{Path, PathBuf};

use rustai_formats::gguf;

use crate::error::{Error, Result};

/// A model file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModelFormat {
    /// GGUF (llama.cpp).
    Gguf,
}

impl ModelFormat {
    /// Lower-case name, as plugins list it in their capabilities.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gguf => "gguf",
        }
    }
}

/// A model file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFile {
    /// Stable id: the file name without extension.
    pub id: String,
    /// Where it is.
    pub path: PathBuf,
    /// Its format.
    pub format: ModelFormat,
    /// Size in bytes.
    pub size: u64,
}

/// Identify a file by its first bytes.
pub fn detect_format(path: &Path) -> Option<ModelFormat> {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).ok()?;
    gguf::is_gguf(&head).then_some(ModelFormat::Gguf)
}

/// Every model file under `dirs` (folders that do not exist are skipped), sorted by id.
pub fn discover<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) -> Vec<ModelFile> {
    let mut found = Vec::new();
    for dir in dirs {
        for entry in walkdir::WalkDir::new(dir.as_ref()).follow_links(true).into_iter().flatten() {
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            if let Some(format) = detect_format(path) {
                let id = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                found.push(ModelFile { id, path: path.to_path_buf(), format, size });
            }
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id).then(a.path.cmp(&b.path)));
    found
}

/// Resolve `name` to a model file: an existing path, else an exact id, else a
/// case-insensitive id, else an unambiguous id prefix.
pub fn resolve<P: AsRef<Path>>(name: &str, dirs: impl IntoIterator<Item = P>) -> Result<ModelFile> {
    let as_path = Path::new(name);
    if as_path.is_file() {
        let format = detect_format(as_path);
        let size = std::fs::metadata(as_path).map_err(|e| Error::io(as_path, e))?.len();
        let id = as_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        // An unrecognised file is passed on as GGUF: the plugin reports what is wrong with it.
        return Ok(ModelFile { id, path: as_path.to_path_buf(), format: format.unwrap_or(ModelFormat::Gguf), size });
    }
    let all = discover(dirs);
    let pick = |matches: Vec<&ModelFile>| -> Option<Result<ModelFile>> {
        match matches.as_slice() {
            [] => None,
            [one] => Some(Ok((*one).clone())),
            many => Some(Err(Error::AmbiguousModel {
                name: name.to_owned(),
                candidates: many.iter().map(|m| m.path.display().to_string()).collect(),
            })),
        }
    };
    let lower = name.to_lowercase();
    pick(all.iter().filter(|m| m.id == name).collect())
        .or_else(|| pick(all.iter().filter(|m| m.id.to_lowercase() == lower).collect()))
        .or_else(|| pick(all.iter().filter(|m| m.id.to_lowercase().starts_with(&lower)).collect()))
        .unwrap_or_else(|| Err(Error::UnknownModel { name: name.to_owned(), known: all.iter().map(|m| m.id.clone()).collect() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_by_content_and_resolves_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("SmolLM2-135M.Q4.gguf"), b"GGUF\x03\0\0\0rest").unwrap();
        std::fs::write(dir.path().join("Other-7B.bin"), b"GGUF\x03\0\0\0rest").unwrap();
        std::fs::write(dir.path().join("notes.gguf"), b"just text").unwrap();
        let found = discover([dir.path()]);
        assert_eq!(found.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["Other-7B", "SmolLM2-135M.Q4"]);
        assert_eq!(resolve("smollm2", [dir.path()]).unwrap().id, "SmolLM2-135M.Q4");
        assert_eq!(resolve("Other-7B", [dir.path()]).unwrap().id, "Other-7B");
        assert!(matches!(resolve("llama", [dir.path()]), Err(Error::UnknownModel { .. })));
        std::fs::write(dir.path().join("SmolLM2-360M.gguf"), b"GGUF\x03\0\0\0rest").unwrap();
        assert!(matches!(resolve("smol", [dir.path()]), Err(Error::AmbiguousModel { .. })));
    }
}
