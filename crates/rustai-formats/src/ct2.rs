//! CTranslate2 `model.bin` reader.
//!
//! Layout (little-endian), as written by CTranslate2's converters:
//! `u32` format version; from version 2 on, the spec name (a string, e.g.
//! `WhisperSpec`) and a `u32` spec revision; a `u32` variable count; then per
//! variable its name, `u8` rank, rank × `u32` dimensions, the element type
//! (version ≥ 4: `u8` type id and `u32` byte count; before: `u8` item size and
//! `u32` element count) and the raw bytes. From version 3 on, a `u32` alias
//! count and (alias, target) name pairs follow. Strings are a `u16` length that
//! counts a trailing NUL, then the bytes.
//!
//! [`Ct2Model::read`] parses the table and records where each variable's bytes
//! lie, without loading them; every length is checked against the file size
//! before anything is allocated or skipped, so a truncated or garbage file is
//! an error, never a panic or a huge allocation.

use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    path::Path,
};

use crate::{Error, Result};

/// Newest `model.bin` format version this reader knows.
pub const MAX_VERSION: u32 = 6;

/// Highest tensor rank accepted.
const MAX_RANK: u8 = 8;

/// Smallest possible variable entry (empty name, rank 0, type, byte count).
const MIN_ENTRY: u64 = 2 + 1 + 1 + 4;

/// Element type of a variable (CTranslate2's `DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    /// 32-bit float (id 0).
    F32,
    /// 8-bit integer (id 1), also used for booleans.
    I8,
    /// 16-bit integer (id 2).
    I16,
    /// 32-bit integer (id 3).
    I32,
    /// IEEE half float (id 4).
    F16,
    /// bfloat16 (id 5).
    BF16,
}

impl Ct2Dtype {
    /// The type with CTranslate2 id `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::BF16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::BF16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }

    /// Lower-case name (`float16`, `int8`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::I32 => "int32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
        }
    }

    /// Whether it is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F16 | Self::BF16)
    }
}

/// One variable of the model: its shape, type and where its bytes lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ct2Variable {
    /// Name, e.g. `encoder/conv1/weight` (trailing NUL removed).
    pub name: String,
    /// Dimensions, outermost first (row-major).
    pub shape: Vec<u64>,
    /// Element type.
    pub dtype: Ct2Dtype,
    /// Offset of the first data byte in the file.
    pub offset: u64,
    /// Number of data bytes (always elements × element size).
    pub len: u64,
}

impl Ct2Variable {
    /// Number of elements (1 for a scalar).
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// The variable table of a CTranslate2 `model.bin`.
#[derive(Debug, Clone)]
pub struct Ct2Model {
    /// Format version.
    pub version: u32,
    /// Spec name, e.g. `WhisperSpec` (empty before version 2).
    pub spec: String,
    /// Spec revision.
    pub revision: u32,
    /// Variables in file order.
    pub variables: Vec<Ct2Variable>,
    /// (alias, target) pairs, e.g. a tied output projection.
    pub aliases: Vec<(String, String)>,
    /// File size in bytes.
    pub file_size: u64,
    /// Where the model came from, for error messages.
    pub source: String,
}

impl Ct2Model {
    /// Parse the variable table of `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let source = path.display().to_string();
        let io = |e| Error::Io { path: source.clone(), source: e };
        let file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Self::parse(BufReader::new(file), size, source.clone())
    }

    /// Parse a `model.bin` held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::parse(std::io::Cursor::new(bytes), bytes.len() as u64, "<memory>".into())
    }

    /// Parse from `src`, a reader positioned at the start of a file of `size` bytes.
    pub fn parse<R: Read + Seek>(src: R, size: u64, source: String) -> Result<Self> {
        let mut r = Reader { src, pos: 0, size, source };
        let version = r.u32()?;
        if version == 0 || version > MAX_VERSION {
            return Err(Error::UnsupportedCt2Version(version));
        }
        let (spec, revision) = if version >= 2 { (r.string()?, r.u32()?) } else { (String::new(), 1) };
        let count = u64::from(r.u32()?);
        r.need(count.saturating_mul(MIN_ENTRY))?;
        let mut variables = Vec::with_capacity(count as usize);
        for _ in 0..count {
            variables.push(r.variable(version)?);
        }
        let mut aliases = Vec::new();
        // Some writers end the file right after the variables; tolerate that.
        if version >= 3 && r.pos < r.size {
            let n = u64::from(r.u32()?);
            r.need(n.saturating_mul(4))?;
            for _ in 0..n {
                aliases.push((r.string()?, r.string()?));
            }
        }
        Ok(Self { version, spec, revision, variables, aliases, file_size: size, source: r.source })
    }

    /// The variable called `name`, following an alias if there is one.
    pub fn variable(&self, name: &str) -> Option<&Ct2Variable> {
        let find = |n: &str| self.variables.iter().find(|v| v.name == n);
        find(name).or_else(|| self.aliases.iter().find(|(a, _)| a == name).and_then(|(_, t)| find(t)))
    }

    /// The variable called `name`, or [`Error::Missing`].
    pub fn require(&self, name: &str) -> Result<&Ct2Variable> {
        self.variable(name).ok_or_else(|| Error::Missing(name.to_owned()))
    }

    /// Read `len` bytes of `var`'s data starting `start` bytes into it.
    pub fn read_bytes<R: Read + Seek>(&self, src: &mut R, var: &Ct2Variable, start: u64, len: u64) -> Result<Vec<u8>> {
        let end = start.checked_add(len).filter(|&e| e <= var.len).ok_or_else(|| {
            Error::Corrupt(format!("bytes {start}+{len} are outside variable `{}` ({} bytes)", var.name, var.len))
        })?;
        let needed = var.offset + end;
        if needed > self.file_size {
            return Err(Error::Truncated { needed, actual: self.file_size });
        }
        let io = |e| Error::Io { path: self.source.clone(), source: e };
        src.seek(SeekFrom::Start(var.offset + start)).map_err(io)?;
        let mut buf = vec![0u8; len as usize];
        src.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    /// The value of a scalar integer variable (num_heads, ...), if present.
    pub fn read_int<R: Read + Seek>(&self, src: &mut R, name: &str) -> Result<Option<i64>> {
        let Some(var) = self.variable(name) else { return Ok(None) };
        if var.elements() != 1 || var.dtype.is_float() {
            return Err(Error::Shape { name: name.into(), expected: vec![], found: var.shape.clone() });
        }
        let b = self.read_bytes(src, var, 0, var.len)?;
        Ok(Some(match var.dtype {
            Ct2Dtype::I8 => i64::from(b[0] as i8),
            Ct2Dtype::I16 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            _ => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        }))
    }
}

/// Bounds-checked little-endian reader that tracks its position.
struct Reader<R> {
    src: R,
    pos: u64,
    size: u64,
    source: String,
}

impl<R: Read + Seek> Reader<R> {
    /// Fail unless `n` more bytes exist.
    fn need(&self, n: u64) -> Result<()> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Error::Truncated { needed: self.pos.saturating_add(n), actual: self.size }),
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        self.need(buf.len() as u64)?;
        self.src.read_exact(buf).map_err(|e| Error::Io { path: self.source.clone(), source: e })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// A `u16`-length string; the length counts a trailing NUL, which is dropped.
    fn string(&mut self) -> Result<String> {
        let mut len = [0u8; 2];
        self.fill(&mut len)?;
        let mut bytes = vec![0u8; usize::from(u16::from_le_bytes(len))];
        self.fill(&mut bytes)?;
        if bytes.last() == Some(&0) {
            bytes.pop();
        }
        String::from_utf8(bytes).map_err(|_| Error::Corrupt(format!("a name at byte {} is not UTF-8", self.pos)))
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.need(n)?;
        let step = i64::try_from(n).map_err(|_| Error::Corrupt(format!("cannot skip {n} bytes")))?;
        self.src.seek(SeekFrom::Current(step)).map_err(|e| Error::Io { path: self.source.clone(), source: e })?;
        self.pos += n;
        Ok(())
    }

    fn variable(&mut self, version: u32) -> Result<Ct2Variable> {
        let name = self.string()?;
        let rank = self.u8()?;
        if rank > MAX_RANK {
            return Err(Error::Corrupt(format!("variable `{name}` has rank {rank} (limit {MAX_RANK})")));
        }
        let mut shape = Vec::with_capacity(usize::from(rank));
        for _ in 0..rank {
            shape.push(u64::from(self.u32()?));
        }
        let (dtype, len) = if version >= 4 {
            let id = self.u8()?;
            let dtype = Ct2Dtype::from_id(id)
                .ok_or_else(|| Error::Corrupt(format!("variable `{name}` has unknown type id {id}")))?;
            (dtype, u64::from(self.u32()?))
        } else {
            let item = self.u8()?;
            let dtype = match item {
                1 => Ct2Dtype::I8,
                2 => Ct2Dtype::I16,
                4 => Ct2Dtype::F32,
                _ => return Err(Error::Corrupt(format!("variable `{name}` has item size {item}"))),
            };
            (dtype, u64::from(self.u32()?) * u64::from(item))
        };
        let expected = shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
        if expected != Some(len) {
            return Err(Error::Corrupt(format!(
                "variable `{name}`: shape {shape:?} of {} needs {} bytes, but the file gives {len}",
                dtype.name(),
                expected.map_or_else(|| "too many".to_owned(), |e| e.to_string()),
            )));
        }
        let offset = self.pos;
        self.skip(len)?;
        Ok(Ct2Variable { name, shape, dtype, offset, len })
    }
}

/// Builds synthetic CTranslate2 `model.bin` files, for tests here and in crates that read
/// them (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing {

    /// Builds synthetic `model.bin` files (version 6).
    #[derive(Default)]
    pub struct Ct2Builder {
        vars: Vec<u8>,
        count: u32,
        aliases: Vec<(String, String)>,
    }

    /// A length-prefixed, NUL-terminated string as `model.bin` stores names.
    pub fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    impl Ct2Builder {
        /// Add a variable with raw bytes and an explicit byte count.
        pub fn raw(&mut self, name: &str, shape: &[u32], dtype: u8, len: u32, data: &[u8]) -> &mut Self {
            put_str(&mut self.vars, name);
            self.vars.push(shape.len() as u8);
            for d in shape {
                self.vars.extend_from_slice(&d.to_le_bytes());
            }
            self.vars.push(dtype);
            self.vars.extend_from_slice(&len.to_le_bytes());
            self.vars.extend_from_slice(data);
            self.count += 1;
            self
        }

        /// Add a float16 variable whose elements are `f(i)`.
        pub fn f16(&mut self, name: &str, shape: &[u32], f: impl Fn(usize) -> f32) -> &mut Self {
            let n: u32 = shape.iter().product();
            let data: Vec<u8> =
                (0..n as usize).flat_map(|i| half::f16::from_f32(f(i)).to_bits().to_le_bytes()).collect();
            self.raw(name, shape, 4, n * 2, &data)
        }

        /// Add an int16 scalar.
        pub fn i16(&mut self, name: &str, v: i16) -> &mut Self {
            self.raw(name, &[], 2, 2, &v.to_le_bytes())
        }

        /// Add an alias.
        pub fn alias(&mut self, alias: &str, target: &str) -> &mut Self {
            self.aliases.push((alias.into(), target.into()));
            self
        }

        /// The file bytes.
        pub fn build(&self, spec: &str) -> Vec<u8> {
            let mut out = 6u32.to_le_bytes().to_vec();
            put_str(&mut out, spec);
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(&self.count.to_le_bytes());
            out.extend_from_slice(&self.vars);
            out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
            for (a, t) in &self.aliases {
                put_str(&mut out, a);
                put_str(&mut out, t);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        testing::{put_str, Ct2Builder},
        *,
    };

    fn sample() -> Vec<u8> {
        Ct2Builder::default()
            .f16("a/weight", &[2, 3], |i| i as f32)
            .i16("a/num_heads", 6)
            .raw("flag", &[], 1, 1, &[1])
            .alias("b/weight", "a/weight")
            .build("TestSpec")
    }

    #[test]
    fn reads_variables_and_aliases() {
        let bytes = sample();
        let m = Ct2Model::from_bytes(&bytes).unwrap();
        assert_eq!((m.version, m.spec.as_str(), m.revision), (6, "TestSpec", 3));
        assert_eq!(m.variables.len(), 3);
        let w = m.variable("b/weight").unwrap();
        assert_eq!((w.name.as_str(), w.shape.as_slice(), w.dtype, w.len), ("a/weight", &[2, 3][..], Ct2Dtype::F16, 12));
        let mut cur = std::io::Cursor::new(&bytes);
        let data = m.read_bytes(&mut cur, w, 2, 2).unwrap();
        assert_eq!(half::f16::from_le_bytes([data[0], data[1]]).to_f32(), 1.0);
        assert_eq!(m.read_int(&mut cur, "a/num_heads").unwrap(), Some(6));
        assert_eq!(m.read_int(&mut cur, "flag").unwrap(), Some(1));
        assert_eq!(m.read_int(&mut cur, "nope").unwrap(), None);
        assert!(m.read_bytes(&mut cur, w, 10, 4).is_err());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        // Cutting inside the alias table is also an error; cutting right after
        // the variables is tolerated (no alias table).
        let vars_end = bytes.len() - (4 + 2 + 9 + 2 + 9);
        for cut in 0..bytes.len() {
            let r = Ct2Model::from_bytes(&bytes[..cut]);
            if cut == vars_end {
                assert!(r.is_ok(), "cut at {cut}");
            } else {
                assert!(matches!(r, Err(Error::Truncated { .. })), "cut at {cut}: {r:?}");
            }
        }
    }

    #[test]
    fn rejects_bad_counts_types_and_versions() {
        // Byte count disagreeing with shape × type.
        let b = Ct2Builder::default().raw("x", &[4], 4, 6, &[0; 6]).build("S");
        assert!(matches!(Ct2Model::from_bytes(&b), Err(Error::Corrupt(_))));
        // A huge byte count (with a matching shape) must not allocate: it is truncated.
        let b = Ct2Builder::default().raw("x", &[0x3fff_ffff], 0, u32::MAX - 3, &[0; 8]).build("S");
        assert!(matches!(Ct2Model::from_bytes(&b), Err(Error::Truncated { .. })));
        // Overflowing shape.
        let b = Ct2Builder::default().raw("x", &[u32::MAX; 8], 0, 4, &[0; 4]).build("S");
        assert!(matches!(Ct2Model::from_bytes(&b), Err(Error::Corrupt(_))));
        // Unknown type id.
        let b = Ct2Builder::default().raw("x", &[1], 9, 1, &[0]).build("S");
        assert!(matches!(Ct2Model::from_bytes(&b), Err(Error::Corrupt(_))));
        // Rank beyond the limit.
        let b = Ct2Builder::default().raw("x", &[1; 9], 1, 1, &[0]).build("S");
        assert!(matches!(Ct2Model::from_bytes(&b), Err(Error::Corrupt(_))));
        // Garbage variable count.
        let mut b = Ct2Builder::default().build("S");
        let at = 4 + 2 + 2 + 4;
        b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Ct2Model::from_bytes(&b), Err(Error::Truncated { .. })));
        // Versions.
        for v in [0u32, 7, 0x6767_6d6c] {
            let mut b = sample();
            b[..4].copy_from_slice(&v.to_le_bytes());
            assert!(matches!(Ct2Model::from_bytes(&b), Err(Error::UnsupportedCt2Version(x)) if x == v));
        }
    }

    #[test]
    fn reads_version_3_item_sizes() {
        let mut b = 3u32.to_le_bytes().to_vec();
        put_str(&mut b, "S");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        put_str(&mut b, "x");
        b.push(1);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.push(4); // item size 4 = float32
        b.extend_from_slice(&2u32.to_le_bytes()); // element count
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&0u32.to_le_bytes());
        let m = Ct2Model::from_bytes(&b).unwrap();
        assert_eq!((m.variables[0].dtype, m.variables[0].len), (Ct2Dtype::F32, 8));
    }
}
