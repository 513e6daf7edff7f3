//! GGUF header reader.
//!
//! Reads the key/value metadata and the tensor table of a GGUF (v2 or v3) file,
//! computes how many bytes the tensor data needs and compares that with the file
//! size, so a truncated or corrupt file is reported before llama.cpp sees it.
//! Large arrays (the tokenizer vocabulary) are skipped, not stored.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    path::Path,
};

use crate::{Error, Result};

/// The four magic bytes at the start of every GGUF file.
pub const MAGIC: &[u8; 4] = b"GGUF";

/// Whether `bytes` (the start of a file) look like GGUF.
pub fn is_gguf(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && &bytes[..4] == MAGIC
}

/// A metadata value. Arrays keep their element type and length; string arrays
/// of up to [`SMALL_ARRAY`] entries keep their items.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Any unsigned integer type.
    Uint(u64),
    /// Any signed integer type.
    Int(i64),
    /// f32 or f64.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string (lossily decoded).
    String(String),
    /// An array: element type code, length, and the items when small.
    Array {
        /// GGUF type code of the elements.
        elem_type: u32,
        /// Number of elements.
        len: u64,
        /// The items, for small arrays of scalars or strings.
        items: Vec<MetaValue>,
    },
}

/// Longest string the reader accepts (chat templates and token texts are far smaller);
/// a corrupt length must not make it allocate gigabytes.
pub const MAX_STRING: u64 = 16 << 20;

/// Arrays up to this length are kept in full.
pub const SMALL_ARRAY: u64 = 64;

impl MetaValue {
    /// As an unsigned integer, when it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::Uint(v) => Some(v),
            Self::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// As a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Dimensions.
    pub dims: Vec<u64>,
    /// ggml type code.
    pub ggml_type: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().copied().fold(1u64, u64::saturating_mul)
    }
    /// Bytes of data, when the type is known.
    pub fn byte_size(&self) -> Option<u64> {
        let (block, size) = ggml_type_layout(self.ggml_type)?;
        Some(self.elements().div_ceil(block).saturating_mul(size))
    }
}

/// A parsed GGUF header.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    /// Format version (2 or 3).
    pub version: u32,
    /// Key/value metadata.
    pub metadata: BTreeMap<String, MetaValue>,
    /// The tensor table.
    pub tensors: Vec<TensorInfo>,
    /// Where tensor data starts.
    pub data_offset: u64,
    /// Bytes the file needs (data offset + end of the last tensor).
    pub required_size: u64,
    /// Bytes the file has.
    pub file_size: u64,
}

impl GgufHeader {
    /// Read and check the header of the file at `path`. Fails with
    /// [`Error::Truncated`] when the file is shorter than its header says.
    pub fn read(path: &Path) -> Result<Self> {
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let file = File::open(path).map_err(io)?;
        let file_size = file.metadata().map_err(io)?.len();
        let mut r = Reader { inner: BufReader::with_capacity(1 << 16, file), pos: 0, file_size };
        let header = r.header().map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                Error::Truncated { needed: r.pos.max(file_size + 1), actual: file_size }
            }
            Error::Io { source, .. } => io(source),
            other => other,
        })?;
        if header.required_size > file_size {
            return Err(Error::Truncated { needed: header.required_size, actual: file_size });
        }
        Ok(header)
    }

    /// A metadata string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(MetaValue::as_str)
    }

    /// A metadata unsigned integer.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.metadata.get(key).and_then(MetaValue::as_u64)
    }

    /// `general.architecture`, e.g. `llama`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// `<arch>.context_length`.
    pub fn context_length(&self) -> Option<u64> {
        self.get_u64(&format!("{}.context_length", self.architecture()?))
    }

    /// `<arch>.embedding_length`.
    pub fn embedding_length(&self) -> Option<u64> {
        self.get_u64(&format!("{}.embedding_length", self.architecture()?))
    }

    /// `<arch>.block_count` (layers).
    pub fn block_count(&self) -> Option<u64> {
        self.get_u64(&format!("{}.block_count", self.architecture()?))
    }

    /// Whether `tokenizer.chat_template` is present.
    pub fn has_chat_template(&self) -> bool {
        self.metadata.contains_key("tokenizer.chat_template")
    }

    /// Total parameters (elements over all tensors).
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::elements).fold(0u64, u64::saturating_add)
    }

    /// The quantization, from `general.file_type` or else the most common tensor type.
    pub fn quantization(&self) -> String {
        if let Some(ft) = self.get_u64("general.file_type") {
            if let Some(name) = file_type_name(ft) {
                return name.to_owned();
            }
        }
        let mut counts = BTreeMap::new();
        for t in &self.tensors {
            let n = counts.entry(t.ggml_type).or_insert(0u64);
            *n = n.saturating_add(t.elements());
        }
        counts
            .into_iter()
            .max_by_key(|&(_, n)| n)
            .and_then(|(ty, _)| ggml_type_name(ty))
            .unwrap_or("unknown")
            .to_owned()
    }
}

/// (block size in elements, bytes per block) of a ggml tensor type.
pub fn ggml_type_layout(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),     // F32
        1 => (1, 2),     // F16
        2 => (32, 18),   // Q4_0
        3 => (32, 20),   // Q4_1
        6 => (32, 22),   // Q5_0
        7 => (32, 24),   // Q5_1
        8 => (32, 34),   // Q8_0
        9 => (32, 36),   // Q8_1
        10 => (256, 84), // Q2_K
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 => (256, 66),
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        20 => (32, 18),
        21 => (256, 110),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),
        29 => (256, 56),
        30 => (1, 2), // BF16
        34 => (256, 54),
        35 => (256, 66),
        39 => (32, 17), // MXFP4
        _ => return None,
    })
}

/// Name of a ggml tensor type.
pub fn ggml_type_name(ty: u32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "F32", "F16", "Q4_0", "Q4_1", "", "", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
        "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32",
        "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES.get(ty as usize).copied().filter(|n| !n.is_empty())
}

/// Name of a `general.file_type` value (llama.cpp's `llama_ftype`).
pub fn file_type_name(ft: u64) -> Option<&'static str> {
    Some(match ft {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

struct Reader<R> {
    inner: R,
    pos: u64,
    file_size: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b).map_err(|source| Error::Io { path: String::new(), source })?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    /// A length that must fit in what is left of the file.
    fn len(&mut self) -> Result<u64> {
        let n = self.u64()?;
        if n > self.file_size.saturating_sub(self.pos) {
            return Err(Error::Truncated { needed: self.pos.saturating_add(n), actual: self.file_size });
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String> {
        let n = self.len()?;
        if n > MAX_STRING {
            return Err(Error::Corrupt(format!("a {n}-byte string at offset {} (limit {MAX_STRING})", self.pos)));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner.read_exact(&mut buf).map_err(|source| Error::Io { path: String::new(), source })?;
        self.pos += n;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    fn skip(&mut self, n: u64) -> Result<()> {
        if n > self.file_size.saturating_sub(self.pos) {
            return Err(Error::Truncated { needed: self.pos.saturating_add(n), actual: self.file_size });
        }
        self.inner.seek(SeekFrom::Current(n as i64)).map_err(|source| Error::Io { path: String::new(), source })?;
        self.pos += n;
        Ok(())
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::Uint(u64::from(self.bytes::<1>()?[0])),
            1 => MetaValue::Int(i64::from(self.bytes::<1>()?[0] as i8)),
            2 => MetaValue::Uint(u64::from(u16::from_le_bytes(self.bytes()?))),
            3 => MetaValue::Int(i64::from(i16::from_le_bytes(self.bytes()?))),
            4 => MetaValue::Uint(u64::from(self.u32()?)),
            5 => MetaValue::Int(i64::from(i32::from_le_bytes(self.bytes()?))),
            6 => MetaValue::Float(f64::from(f32::from_le_bytes(self.bytes()?))),
            7 => MetaValue::Bool(self.bytes::<1>()?[0] != 0),
            8 => MetaValue::String(self.string()?),
            9 => {
                if depth > 2 {
                    return Err(Error::Corrupt("arrays nested too deeply".into()));
                }
                let elem_type = self.u32()?;
                let len = self.u64()?;
                let mut items = Vec::new();
                match (elem_type, scalar_size(elem_type)) {
                    (_, Some(size)) if len > SMALL_ARRAY => self.skip(len.saturating_mul(size))?,
                    _ => {
                        for _ in 0..len {
                            let v = self.value(elem_type, depth + 1)?;
                            if len <= SMALL_ARRAY {
                                items.push(v);
                            }
                        }
                    }
                }
                MetaValue::Array { elem_type, len, items }
            }
            10 => MetaValue::Uint(self.u64()?),
            11 => MetaValue::Int(i64::from_le_bytes(self.bytes()?)),
            12 => MetaValue::Float(f64::from_le_bytes(self.bytes()?)),
            other => return Err(Error::Corrupt(format!("unknown metadata value type {other}"))),
        })
    }

    fn header(&mut self) -> Result<GgufHeader> {
        let magic: [u8; 4] = self.bytes().map_err(|_| Error::NotGguf { found: Vec::new() })?;
        if &magic != MAGIC {
            return Err(Error::NotGguf { found: magic.to_vec() });
        }
        let version = self.u32()?;
        if !(2..=3).contains(&version) {
            return Err(Error::UnsupportedVersion(version));
        }
        let tensor_count = self.u64()?;
        let kv_count = self.u64()?;
        // Every tensor entry and every key/value pair takes at least 8 bytes.
        let room = self.file_size / 8;
        if tensor_count > room || kv_count > room {
            return Err(Error::Corrupt(format!(
                "{tensor_count} tensors and {kv_count} metadata entries cannot fit in {} bytes",
                self.file_size
            )));
        }
        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let key = self.string()?;
            let ty = self.u32()?;
            let value = self.value(ty, 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::with_capacity(tensor_count.min(4096) as usize);
        for _ in 0..tensor_count {
            let name = self.string()?;
            let n_dims = self.u32()?;
            if n_dims > 4 {
                return Err(Error::Corrupt(format!("tensor `{name}` has {n_dims} dimensions (at most 4)")));
            }
            let dims = (0..n_dims).map(|_| self.u64()).collect::<Result<Vec<_>>>()?;
            let ggml_type = self.u32()?;
            let offset = self.u64()?;
            tensors.push(TensorInfo { name, dims, ggml_type, offset });
        }
        let alignment = metadata.get("general.alignment").and_then(MetaValue::as_u64).unwrap_or(32).max(1);
        let data_offset = self.pos.div_ceil(alignment) * alignment;
        let data_end = tensors
            .iter()
            .filter_map(|t| t.byte_size().map(|s| t.offset.saturating_add(s)))
            .max()
            .unwrap_or(0);
        Ok(GgufHeader {
            version,
            metadata,
            tensors,
            data_offset,
            required_size: data_offset.saturating_add(data_end),
            file_size: self.file_size,
        })
    }
}

/// Size of a scalar metadata type, `None` for strings and arrays.
fn scalar_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A tiny but complete GGUF v3 file: two metadata entries, one F32 tensor.
    fn tiny_gguf() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes()); // tensors
        b.extend_from_slice(&2u64.to_le_bytes()); // kv
        let s = |b: &mut Vec<u8>, t: &str| {
            b.extend_from_slice(&(t.len() as u64).to_le_bytes());
            b.extend_from_slice(t.as_bytes());
        };
        s(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes());
        s(&mut b, "llama");
        s(&mut b, "llama.context_length");
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&2048u32.to_le_bytes());
        s(&mut b, "w");
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&4u64.to_le_bytes());
        b.extend_from_slice(&2u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // F32
        b.extend_from_slice(&0u64.to_le_bytes());
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.extend(std::iter::repeat_n(0u8, 8 * 4));
        b
    }

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn reads_metadata_and_tensors() {
        let f = write(&tiny_gguf());
        let h = GgufHeader::read(f.path()).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.architecture(), Some("llama"));
        assert_eq!(h.context_length(), Some(2048));
        assert_eq!(h.parameter_count(), 8);
        assert_eq!(h.required_size, h.file_size);
        assert_eq!(h.quantization(), "F32");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let full = tiny_gguf();
        for cut in 0..full.len() {
            let f = write(&full[..cut]);
            let err = GgufHeader::read(f.path()).unwrap_err();
            assert!(
                matches!(err, Error::Truncated { .. } | Error::NotGguf { .. }),
                "cut at {cut}: unexpected {err}"
            );
        }
    }

    #[test]
    fn rejects_other_files() {
        let f = write(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        assert!(matches!(GgufHeader::read(f.path()), Err(Error::NotGguf { .. })));
        let mut bad = tiny_gguf();
        bad[4] = 9;
        let f = write(&bad);
        assert!(matches!(GgufHeader::read(f.path()), Err(Error::UnsupportedVersion(9))));
    }
}
