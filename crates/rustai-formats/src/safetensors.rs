//! safetensors: the JSON header of a `.safetensors` file, read without the tensors.
//!
//! Layout: a little-endian `u64` header length, that many bytes of JSON mapping
//! tensor names to `{dtype, shape, data_offsets}` (plus an optional
//! `__metadata__` map), then the tensor bytes. The reader checks that every
//! tensor's bytes lie inside the file, so a truncated file is caught here.

use std::{collections::BTreeMap, io::Read, path::Path};

use crate::{Error, Result};

/// Largest header accepted (the format's own reference limit is 100 MB).
pub const MAX_HEADER: u64 = 100 << 20;

/// One tensor entry of the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Element type, as written (`F32`, `F16`, `BF16`, `I64`, ...).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// Byte range inside the data section.
    pub data_offsets: (u64, u64),
}

/// The parsed header of a safetensors file.
#[derive(Debug, Clone, Default)]
pub struct SafetensorsHeader {
    /// Tensors by name.
    pub tensors: BTreeMap<String, TensorEntry>,
    /// The free-form `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
    /// File size in bytes.
    pub file_size: u64,
}

impl SafetensorsHeader {
    /// Read and check the header of `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let file_size = file.metadata().map_err(io)?.len();
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|_| Error::Truncated { needed: 8, actual: file_size })?;
        let len = u64::from_le_bytes(len);
        if len > MAX_HEADER {
            return Err(Error::Corrupt(format!("safetensors header of {len} bytes (limit {MAX_HEADER})")));
        }
        if 8 + len > file_size {
            return Err(Error::Truncated { needed: 8 + len, actual: file_size });
        }
        let mut json = vec![0u8; len as usize];
        file.read_exact(&mut json).map_err(io)?;
        let mut header = Self::parse(&json)?;
        header.file_size = file_size;
        let needed = 8 + len + header.data_len();
        if needed > file_size {
            return Err(Error::Truncated { needed, actual: file_size });
        }
        Ok(header)
    }

    /// Parse the JSON part of a header.
    pub fn parse(json: &[u8]) -> Result<Self> {
        let corrupt = |what: String| Error::Corrupt(format!("safetensors header: {what}"));
        let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?;
        let map = value.as_object().ok_or_else(|| corrupt("not a JSON object".into()))?;
        let mut header = Self::default();
        for (name, entry) in map {
            if name == "__metadata__" {
                for (k, v) in entry.as_object().into_iter().flatten() {
                    header.metadata.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
                }
                continue;
            }
            let dtype = entry.get("dtype").and_then(|d| d.as_str()).ok_or_else(|| corrupt(format!("{name}: no dtype")))?;
            let numbers = |key: &str| -> Result<Vec<u64>> {
                entry
                    .get(key)
                    .and_then(|v| v.as_array())
                    .ok_or_else(|| corrupt(format!("{name}: no {key}")))?
                    .iter()
                    .map(|n| n.as_u64().ok_or_else(|| corrupt(format!("{name}: {key} is not a list of integers"))))
                    .collect()
            };
            let shape = numbers("shape")?;
            let offsets = numbers("data_offsets")?;
            let [start, end] = offsets[..] else {
                return Err(corrupt(format!("{name}: data_offsets must have two entries")));
            };
            if end < start {
                return Err(corrupt(format!("{name}: data_offsets end before they start")));
            }
            header.tensors.insert(name.clone(), TensorEntry { dtype: dtype.to_owned(), shape, data_offsets: (start, end) });
        }
        Ok(header)
    }

    /// Bytes of tensor data the header refers to.
    pub fn data_len(&self) -> u64 {
        self.tensors.values().map(|t| t.data_offsets.1).max().unwrap_or(0)
    }

    /// Total number of elements over all tensors.
    pub fn parameter_count(&self) -> u64 {
        self.tensors.values().map(|t| t.shape.iter().product::<u64>()).sum()
    }

    /// The most common dtype (by element count), e.g. `F32`.
    pub fn dominant_dtype(&self) -> Option<String> {
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        for t in self.tensors.values() {
            *by_type.entry(&t.dtype).or_default() += t.shape.iter().product::<u64>();
        }
        by_type.into_iter().max_by_key(|(_, n)| *n).map(|(d, _)| d.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str, data: usize) -> tempfile::NamedTempFile {
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes.resize(bytes.len() + data, 0);
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), bytes).unwrap();
        f
    }

    const ONE: &str = r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#;

    #[test]
    fn reads_tensors_and_metadata() {
        let f = file(ONE, 24);
        let h = SafetensorsHeader::read(f.path()).unwrap();
        assert_eq!(h.parameter_count(), 6);
        assert_eq!(h.metadata["format"], "pt");
        assert_eq!(h.dominant_dtype().as_deref(), Some("F32"));
    }

    #[test]
    fn truncated_and_garbage_are_errors() {
        assert!(matches!(SafetensorsHeader::read(file(ONE, 10).path()), Err(Error::Truncated { needed, .. }) if needed == 8 + ONE.len() as u64 + 24));
        assert!(matches!(SafetensorsHeader::read(file("{not json", 0).path()), Err(Error::Corrupt(_))));
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), u64::MAX.to_le_bytes()).unwrap();
        assert!(matches!(SafetensorsHeader::read(f.path()), Err(Error::Corrupt(_))));
        std::fs::write(f.path(), b"abc").unwrap();
        assert!(matches!(SafetensorsHeader::read(f.path()), Err(Error::Truncated { .. })));
    }
}
