//! CTranslate2 Whisper model (`model.bin` + `tokenizer.json`) to whisper.cpp ggml.
//!
//! The hyper-parameters and the tensor list with their sources come from
//! the private `plan` module; the filterbank is computed ([`crate::mel`]); the vocabulary
//! comes from `tokenizer.json` ([`crate::vocab`]). This module writes the file:
//! header, filterbank, vocabulary, then each tensor converted to f16 or f32,
//! through a `.partial` file renamed at the end.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write},
    path::{Path, PathBuf},
};

use half::{bf16, f16};

use rustai_formats::{
    ct2::{Ct2Dtype, Ct2Model, Ct2Variable},
    whisper::{WhisperHparams, MAGIC},
};

use crate::{
    mel::mel_filters,
    plan::{hparams, plan, Source},
    vocab::vocab_from_tokenizer_json,
    Error, Result,
};

/// Whisper's audio front end: 16 kHz, 400-sample FFT (201 bins).
const SAMPLE_RATE: u32 = 16_000;
const N_FFT: u32 = 400;

/// What [`convert_ct2`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertReport {
    /// The header written.
    pub hparams: WhisperHparams,
    /// Tensors written.
    pub tensors: usize,
    /// Tokens in the vocabulary section.
    pub vocab_tokens: usize,
    /// File size in bytes.
    pub bytes: u64,
    /// Whether the encoder positions were computed (absent from `model.bin`).
    pub computed_encoder_positions: bool,
}

/// Convert the CTranslate2 Whisper model in `src_dir` (`model.bin`,
/// `tokenizer.json`; float16, bfloat16 or float32 weights) into the whisper.cpp
/// file `out` (f16 weights). The file is written as `out` + `.partial` and
/// renamed when complete; on error nothing is left behind.
pub fn convert_ct2(src_dir: &Path, out: &Path) -> Result<ConvertReport> {
    let bin = src_dir.join("model.bin");
    if !bin.is_file() {
        return Err(Error::Missing(bin.display().to_string()));
    }
    let model = Ct2Model::read(&bin)?;
    if model.spec != "WhisperSpec" {
        return Err(Error::NotWhisper(model.spec));
    }
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| Error::Io { path: p, source }
    };
    let mut src = BufReader::new(File::open(&bin).map_err(io(&bin))?);
    let hparams = hparams(&model, &mut src)?;
    let tok_path = src_dir.join("tokenizer.json");
    if !tok_path.is_file() {
        return Err(Error::Missing(tok_path.display().to_string()));
    }
    let vocab = vocab_from_tokenizer_json(&std::fs::read_to_string(&tok_path).map_err(io(&tok_path))?)?;
    if vocab.len() > hparams.n_vocab as usize {
        return Err(Error::Tokenizer(format!("{} tokens, but the model embeds only {}", vocab.len(), hparams.n_vocab)));
    }
    let plan = plan(&model, &hparams)?;

    let mut partial_name = out.as_os_str().to_owned();
    partial_name.push(".partial");
    let mut partial = Partial { path: PathBuf::from(partial_name), done: false };
    let file = File::create(&partial.path).map_err(io(&partial.path))?;
    let mut w = Out { w: BufWriter::with_capacity(1 << 20, file), bytes: 0, path: partial.path.display().to_string() };

    w.u32(MAGIC)?;
    for v in hparams.to_array() {
        w.i32(v)?;
    }
    let bins = N_FFT / 2 + 1;
    w.i32(hparams.n_mels)?;
    w.i32(bins)?;
    w.f32s(&mel_filters(SAMPLE_RATE, N_FFT, hparams.n_mels))?;
    w.i32(vocab.len() as u32)?;
    for token in &vocab {
        w.i32(token.len() as u32)?;
        w.put(token)?;
    }
    let mut computed = false;
    for t in &plan {
        w.i32(t.shape.len() as u32)?;
        w.i32(t.name.len() as u32)?;
        w.i32(if t.f32 { 0 } else { 1 })?;
        for &d in t.shape.iter().rev() {
            w.i32(d as u32)?;
        }
        w.put(t.name.as_bytes())?;
        match t.src {
            Source::Rows { var, first } => {
                let row_bytes = var.len / var.shape[0].max(1);
                let raw = model.read_bytes(&mut src, var, first * row_bytes, t.shape[0] * row_bytes)?;
                w.put(&convert_floats(&raw, var, t.f32)?)?;
            }
            Source::Sinusoids => {
                computed = true;
                w.f32s(&sinusoids(t.shape[0] as usize, t.shape[1] as usize))?;
            }
        }
    }
    let bytes = w.bytes;
    let file =
        w.w.into_inner().map_err(|e| Error::Io { path: partial.path.display().to_string(), source: e.into_error() })?;
    file.sync_all().map_err(io(&partial.path))?;
    drop(file);
    std::fs::rename(&partial.path, out).map_err(io(out))?;
    partial.done = true;
    Ok(ConvertReport {
        hparams,
        tensors: plan.len(),
        vocab_tokens: vocab.len(),
        bytes,
        computed_encoder_positions: computed,
    })
}

/// Whisper's sinusoidal encoder positions, `[length, channels]` row-major:
/// `sin(t / 10000^(i / (c/2 - 1)))` for `i < c/2`, then the matching cosines,
/// computed in f32 as OpenAI's code does and rounded through f16 as its
/// checkpoints store them.
pub fn sinusoids(length: usize, channels: usize) -> Vec<f32> {
    let half = channels / 2;
    let step = 10000f64.ln() / (half.saturating_sub(1).max(1)) as f64;
    let inv: Vec<f32> = (0..half).map(|i| ((-step) as f32 * i as f32).exp()).collect();
    let mut out = Vec::with_capacity(length * channels);
    for t in 0..length {
        let scaled = inv.iter().map(|&f| t as f32 * f);
        out.extend(scaled.clone().map(f32::sin).chain(scaled.map(f32::cos)).map(|v| f16::from_f32(v).to_f32()));
    }
    out
}

/// Removes the partial file unless the conversion completed.
struct Partial {
    path: PathBuf,
    done: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Little-endian writer that counts bytes.
struct Out {
    w: BufWriter<File>,
    bytes: u64,
    path: String,
}

impl Out {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b).map_err(|e| Error::Io { path: self.path.clone(), source: e })?;
        self.bytes += b.len() as u64;
        Ok(())
    }
    fn u32(&mut self, v: u32) -> Result<()> {
        self.put(&v.to_le_bytes())
    }
    /// A value known to be at most `i32::MAX` (checked in [`hparams`] / [`plan`]).
    fn i32(&mut self, v: u32) -> Result<()> {
        self.put(&(v as i32).to_le_bytes())
    }
    fn f32s(&mut self, v: &[f32]) -> Result<()> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.put(&bytes)
    }
}

/// `raw` (elements of `var`'s type) as f32 or f16 little-endian bytes.
fn convert_floats(raw: &[u8], var: &Ct2Variable, to_f32: bool) -> Result<Vec<u8>> {
    match (var.dtype, to_f32) {
        (Ct2Dtype::F16, false) | (Ct2Dtype::F32, true) => Ok(raw.to_vec()),
        (Ct2Dtype::F16, true) => {
            Ok(raw.chunks_exact(2).flat_map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32().to_le_bytes()).collect())
        }
        (Ct2Dtype::BF16, true) => {
            Ok(raw.chunks_exact(2).flat_map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32().to_le_bytes()).collect())
        }
        (Ct2Dtype::F32, false) => Ok(raw
            .chunks_exact(4)
            .flat_map(|c| f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
            .collect()),
        (Ct2Dtype::BF16, false) => Ok(raw
            .chunks_exact(2)
            .flat_map(|c| f16::from_f32(bf16::from_le_bytes([c[0], c[1]]).to_f32()).to_le_bytes())
            .collect()),
        (dtype, _) => Err(Error::UnsupportedDtype { name: var.name.clone(), dtype: dtype.name().into() }),
    }
}
