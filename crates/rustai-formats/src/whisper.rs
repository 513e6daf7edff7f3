//! whisper.cpp's ggml model files: header reader.
//!
//! Layout (little-endian, no alignment):
//! 1. `u32` magic `0x67676d6c` (bytes `lmgg`);
//! 2. 11 `i32` hyper-parameters ([`WhisperHparams`], in field order);
//! 3. the mel filterbank: `i32` rows (= `n_mels`), `i32` columns (201), then
//!    rows × columns `f32`;
//! 4. the vocabulary: `i32` count, then per token an `i32` length and its bytes;
//! 5. tensors until the end of the file, each an `i32` rank, `i32` name length,
//!    `i32` ggml type (0 = f32, 1 = f16, or a quantized type), the dimensions
//!    innermost first (`i32` each), the name, then the data.
//!
//! [`WhisperHeader::read`] walks all of it (skipping the data), so a truncated
//! file or one missing tensors is reported before whisper.cpp sees it. The
//! writer (`convert_ct2`, from a CTranslate2 Whisper model, with the filterbank
//! and vocabulary it computes) is in the `rustai-convert` crate.

#[cfg(test)]
mod tests;

use std::{
    fs::File,
    io::{BufReader, Read},
    path::Path,
};

use crate::{gguf::ggml_type_layout, Error, Result};

/// The file's first four bytes, read as a little-endian `u32`.
pub const MAGIC: u32 = 0x6767_6d6c;

/// How many leading bytes [`is_whisper_ggml`] needs: magic, hyper-parameters
/// and the filterbank's dimensions.
pub const DETECT_LEN: usize = 4 + 11 * 4 + 8;

/// Longest tensor name accepted.
const MAX_NAME: u64 = 256;
/// Longest token accepted (whisper's longest is 128 bytes).
const MAX_TOKEN: u64 = 1024;

/// The hyper-parameters at the start of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhisperHparams {
    /// Vocabulary size, special tokens included (51864 English-only, 51865+ multilingual).
    pub n_vocab: u32,
    /// Encoder positions (1500 = 30 s).
    pub n_audio_ctx: u32,
    /// Encoder width.
    pub n_audio_state: u32,
    /// Encoder attention heads.
    pub n_audio_head: u32,
    /// Encoder layers.
    pub n_audio_layer: u32,
    /// Decoder positions (448).
    pub n_text_ctx: u32,
    /// Decoder width.
    pub n_text_state: u32,
    /// Decoder attention heads.
    pub n_text_head: u32,
    /// Decoder layers.
    pub n_text_layer: u32,
    /// Mel bins (80, or 128 for large-v3).
    pub n_mels: u32,
    /// Weight type: 0 f32, 1 f16; quantized files add 1000 × the quantization version.
    pub ftype: u32,
}

impl WhisperHparams {
    /// The fields in file order.
    pub fn to_array(&self) -> [u32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    /// The fields from file order (the inverse of [`Self::to_array`]).
    pub fn from_array(a: [u32; 11]) -> Self {
        let [n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype] =
            a;
        Self {
            n_vocab,
            n_audio_ctx,
            n_audio_state,
            n_audio_head,
            n_audio_layer,
            n_text_ctx,
            n_text_state,
            n_text_head,
            n_text_layer,
            n_mels,
            ftype,
        }
    }

    /// Model size by encoder depth, as whisper.cpp names it: `tiny`, `base`,
    /// `small`, `medium`, `large`, or `unknown`.
    pub fn model_type(&self) -> &'static str {
        match self.n_audio_layer {
            4 => "tiny",
            6 => "base",
            12 => "small",
            24 => "medium",
            32 => "large",
            _ => "unknown",
        }
    }

    /// Whether the vocabulary holds the language tokens (not an `.en` model).
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }

    /// How many tensors whisper.cpp loads for these dimensions.
    pub fn tensor_count(&self) -> usize {
        // Encoder: positions, 2 convolutions (weight, bias), final norm, and
        // per layer 15 (attention 7, its norm 2, MLP 4, its norm 2).
        // Decoder: positions, token embedding, final norm, and per layer 24
        // (self-attention 9, cross-attention 9, MLP 6).
        1 + 4 + 2 + 15 * self.n_audio_layer as usize + 2 + 2 + 24 * self.n_text_layer as usize
    }
}

/// Whether `head` (at least [`DETECT_LEN`] bytes from the start of a file)
/// looks like a whisper.cpp model. Besides the magic, which old llama.cpp
/// files share, it checks that the filterbank's row count equals `n_mels`.
pub fn is_whisper_ggml(head: &[u8]) -> bool {
    if head.len() < DETECT_LEN {
        return false;
    }
    let word = |i: usize| i32::from_le_bytes([head[4 * i], head[4 * i + 1], head[4 * i + 2], head[4 * i + 3]]);
    word(0) as u32 == MAGIC && (1..=10).all(|i| word(i) > 0) && word(12) == word(10) && (1..=4096).contains(&word(13))
}

/// One tensor of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhisperTensor {
    /// Name, e.g. `encoder.conv1.weight`.
    pub name: String,
    /// Dimensions, innermost first (ggml order).
    pub dims: Vec<u64>,
    /// ggml type (0 f32, 1 f16, ...).
    pub ggml_type: u32,
    /// Offset of the data in the file.
    pub offset: u64,
    /// Data size in bytes.
    pub size: u64,
}

/// Everything in a whisper.cpp model file but the data.
#[derive(Debug, Clone)]
pub struct WhisperHeader {
    /// Hyper-parameters.
    pub hparams: WhisperHparams,
    /// Columns of the mel filterbank (201).
    pub mel_bins: u32,
    /// Tokens in the vocabulary section.
    pub vocab_len: u32,
    /// The tensors, in file order.
    pub tensors: Vec<WhisperTensor>,
    /// File size in bytes.
    pub file_size: u64,
}

impl WhisperHeader {
    /// Read and check the whole file structure of `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let io = |source| Error::Io { path: path.display().to_string(), source };
        let file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let mut r = Walker { src: BufReader::new(file), pos: 0, size, path };
        let head = r.bytes(size.min(4))?;
        if head != MAGIC.to_le_bytes() {
            return Err(Error::NotWhisperGgml { found: head });
        }
        let mut fields = [0u32; 11];
        for (i, f) in fields.iter_mut().enumerate() {
            *f = r.count(if i == 10 { 0 } else { 1 }, "hyper-parameter")?;
        }
        let hparams = WhisperHparams::from_array(fields);
        let rows = r.count(1, "mel filterbank rows")?;
        let mel_bins = r.count(1, "mel filterbank columns")?;
        if rows != hparams.n_mels {
            return Err(Error::Corrupt(format!("{rows} mel filters for n_mels = {}", hparams.n_mels)));
        }
        r.skip(u64::from(rows) * u64::from(mel_bins) * 4)?;
        let vocab_len = r.count(0, "vocabulary size")?;
        if vocab_len > hparams.n_vocab {
            return Err(Error::Corrupt(format!("{vocab_len} tokens for n_vocab = {}", hparams.n_vocab)));
        }
        for _ in 0..vocab_len {
            let len = u64::from(r.count(0, "token length")?);
            if len > MAX_TOKEN {
                return Err(Error::Corrupt(format!("a {len}-byte token at byte {}", r.pos)));
            }
            r.skip(len)?;
        }
        let mut tensors = Vec::with_capacity(hparams.tensor_count().min(4096));
        while r.pos < size {
            tensors.push(r.tensor()?);
        }
        if tensors.len() != hparams.tensor_count() {
            return Err(Error::Corrupt(format!(
                "{} tensors, but a model with {} encoder and {} decoder layers has {}: the file is cut short or not for whisper.cpp",
                tensors.len(),
                hparams.n_audio_layer,
                hparams.n_text_layer,
                hparams.tensor_count()
            )));
        }
        Ok(Self { hparams, mel_bins, vocab_len, tensors, file_size: size })
    }

    /// See [`WhisperHparams::model_type`].
    pub fn model_type(&self) -> &'static str {
        self.hparams.model_type()
    }

    /// See [`WhisperHparams::is_multilingual`].
    pub fn is_multilingual(&self) -> bool {
        self.hparams.is_multilingual()
    }
}

/// Bounds-checked walk over the file.
struct Walker<'p> {
    src: BufReader<File>,
    pos: u64,
    size: u64,
    path: &'p Path,
}

impl Walker<'_> {
    fn need(&self, n: u64) -> Result<()> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Error::Truncated { needed: self.pos.saturating_add(n), actual: self.size }),
        }
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io { path: self.path.display().to_string(), source }
    }

    fn bytes(&mut self, n: u64) -> Result<Vec<u8>> {
        self.need(n)?;
        let mut buf = vec![0u8; n as usize];
        self.src.read_exact(&mut buf).map_err(|e| self.io(e))?;
        self.pos += n;
        Ok(buf)
    }

    /// An `i32` that must be at least `min`.
    fn count(&mut self, min: i32, what: &str) -> Result<u32> {
        let b = self.bytes(4)?;
        let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if v < min {
            return Err(Error::Corrupt(format!("{what} is {v} at byte {}", self.pos - 4)));
        }
        Ok(v as u32)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        self.need(n)?;
        let step = i64::try_from(n).map_err(|_| Error::Corrupt(format!("cannot skip {n} bytes")))?;
        self.src.seek_relative(step).map_err(|e| self.io(e))?;
        self.pos += n;
        Ok(())
    }

    fn tensor(&mut self) -> Result<WhisperTensor> {
        let start = self.pos;
        let rank = self.count(1, "tensor rank")?;
        let name_len = u64::from(self.count(1, "tensor name length")?);
        let ggml_type = self.count(0, "tensor type")?;
        if rank > 4 || name_len > MAX_NAME {
            return Err(Error::Corrupt(format!("tensor at byte {start}: rank {rank}, name of {name_len} bytes")));
        }
        let mut dims = Vec::with_capacity(rank as usize);
        for _ in 0..rank {
            dims.push(u64::from(self.count(1, "tensor dimension")?));
        }
        let name = String::from_utf8_lossy(&self.bytes(name_len)?).into_owned();
        let elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::Corrupt(format!("tensor `{name}` has dimensions {dims:?}")))?;
        let (block, block_bytes) = ggml_type_layout(ggml_type)
            .ok_or_else(|| Error::Corrupt(format!("tensor `{name}` has unknown ggml type {ggml_type}")))?;
        if elements % block != 0 {
            return Err(Error::Corrupt(format!("tensor `{name}`: {elements} elements in blocks of {block}")));
        }
        let size = elements / block * block_bytes;
        let offset = self.pos;
        self.skip(size)?;
        Ok(WhisperTensor { name, dims, ggml_type, offset, size })
    }
}
