//! Recognising a model by its content and reading its metadata without loading it.
//!
//! Files: GGUF (magic `GGUF`), whisper.cpp ggml (magic `0x67676d6c`), ONNX
//! (protobuf `ModelProto` walk), and Piper voices (an ONNX file with a
//! `<name>.onnx.json` beside it holding a `phoneme_id_map`). Folders:
//! Hugging Face–style safetensors models (`config.json` + `*.safetensors` +
//! `tokenizer.json`). File names are never trusted for the format; they only
//! give the id.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use rustai_formats::{gguf, onnx, whisper, GgufHeader, OnnxHeader, SafetensorsHeader};
use serde_json::Value;

use super::{ModelFormat, ModelMeta, Task};

/// What a path turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Detected {
    pub(crate) format: ModelFormat,
    pub(crate) task: Task,
    pub(crate) meta: ModelMeta,
    /// Bytes on disk (for folders: all files in it).
    pub(crate) size: u64,
}

/// Files that live in model folders but are not models, never reported as unrecognised.
pub(crate) fn is_ignored_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || lower == "models.toml"
        || lower.starts_with("readme")
        || lower.starts_with("license")
        || lower.ends_with(".onnx.json")
        || lower.ends_with(".sha256")
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let len = whisper::DETECT_LEN.max(8) as u64;
    let mut head = Vec::with_capacity(len as usize);
    std::fs::File::open(path)?.take(len).read_to_end(&mut head)?;
    Ok(head)
}

/// Classify one file. `Err` carries the reason it is not a usable model.
pub(crate) fn detect_file(path: &Path) -> Result<Detected, String> {
    let size = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?.len();
    if path.extension().is_some_and(|e| e == "partial") {
        return Err("incomplete download (.partial)".into());
    }
    let head = read_head(path).map_err(|e| format!("cannot read: {e}"))?;
    if head.is_empty() {
        return Err("empty file".into());
    }
    if gguf::is_gguf(&head) {
        let h = GgufHeader::read(path).map_err(|e| format!("GGUF file, but {e}"))?;
        return Ok(Detected { format: ModelFormat::Gguf, task: gguf_task(&h), meta: gguf_meta(&h), size });
    }
    if whisper::is_whisper_ggml(&head) {
        let h = whisper::WhisperHeader::read(path).map_err(|e| format!("whisper.cpp ggml file, but {e}"))?;
        let meta = ModelMeta {
            architecture: Some(format!("whisper-{}", h.model_type())),
            context_length: Some(u64::from(h.hparams.n_text_ctx)),
            sample_rate: Some(16_000),
            language: Some(if h.is_multilingual() { "multilingual".into() } else { "en".into() }),
            quantization: Some(whisper_ftype(h.hparams.ftype).into()),
            ..ModelMeta::default()
        };
        return Ok(Detected { format: ModelFormat::WhisperGgml, task: Task::Stt, meta, size });
    }
    if onnx::may_be_onnx(&head) {
        let h = OnnxHeader::read(path).map_err(|e| format!("looks like ONNX, but {e}"))?;
        let opset = h.opsets.iter().find(|(d, _)| d.is_empty() || d == "ai.onnx").map(|(_, v)| *v);
        let mut meta = ModelMeta { architecture: Some("onnx".into()), ..ModelMeta::default() };
        meta.details.insert("producer".into(), format!("{} {}", h.producer_name, h.producer_version).trim().to_owned());
        if let Some(v) = opset {
            meta.details.insert("opset".into(), v.to_string());
        }
        let sidecar = PathBuf::from(format!("{}.json", path.display()));
        if let Some(voice) = piper_config(&sidecar) {
            piper_meta(&voice, &mut meta);
            let size = size + std::fs::metadata(&sidecar).map(|m| m.len()).unwrap_or(0);
            return Ok(Detected { format: ModelFormat::Piper, task: Task::Tts, meta, size });
        }
        return Ok(Detected { format: ModelFormat::Onnx, task: Task::Unknown, meta, size });
    }
    if head.starts_with(b"lmgg") {
        return Err("ggml file that is not a whisper.cpp model (old llama.cpp ggml files are not supported; use GGUF)".into());
    }
    if head.iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) {
        return Err("not a model file (text)".into());
    }
    Err(format!("unknown format (starts with {:02x?})", &head[..head.len().min(4)]))
}

/// A folder is a safetensors model when it holds `config.json`, a tokenizer and weights.
pub(crate) fn is_safetensors_dir(dir: &Path) -> bool {
    dir.join("config.json").is_file()
        && std::fs::read_dir(dir)
            .map(|rd| rd.flatten().any(|e| e.path().extension().is_some_and(|x| x == "safetensors")))
            .unwrap_or(false)
}

/// Classify a safetensors model folder.
pub(crate) fn detect_safetensors_dir(dir: &Path) -> Result<Detected, String> {
    let config = read_json(&dir.join("config.json")).map_err(|e| format!("config.json: {e}"))?;
    if !dir.join("tokenizer.json").is_file() {
        return Err("safetensors model folder without tokenizer.json".into());
    }
    let mut weights: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    weights.sort();
    let mut meta = ModelMeta::default();
    let mut params = 0;
    let mut dtype = None;
    for w in &weights {
        let h = SafetensorsHeader::read(w).map_err(|e| format!("{}: {e}", w.file_name().unwrap_or_default().to_string_lossy()))?;
        params += h.parameter_count();
        dtype = dtype.or_else(|| h.dominant_dtype());
    }
    meta.parameters = Some(params);
    meta.quantization = dtype.map(|d| d.to_lowercase());
    let text = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_owned);
    let num = |k: &str| config.get(k).and_then(Value::as_u64);
    meta.architecture = text("model_type");
    meta.context_length = num("max_position_embeddings").or_else(|| num("n_positions"));
    meta.embedding_dim = num("hidden_size").or_else(|| num("d_model"));
    let architectures: Vec<String> = config
        .get("architectures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if !architectures.is_empty() {
        meta.details.insert("architectures".into(), architectures.join(","));
    }
    let pooling = read_json(&dir.join("1_Pooling/config.json")).ok();
    if let Some(p) = &pooling {
        let mode = ["mean_tokens", "cls_token", "max_tokens", "mean_sqrt_len_tokens"]
            .into_iter()
            .find(|m| p.get(format!("pooling_mode_{m}")).and_then(Value::as_bool) == Some(true));
        meta.details.insert("pooling".into(), mode.unwrap_or("unknown").into());
        if let Some(d) = p.get("word_embedding_dimension").and_then(Value::as_u64) {
            meta.embedding_dim = Some(d);
        }
    }
    let tokenizer_config = read_json(&dir.join("tokenizer_config.json")).ok();
    meta.chat_template = tokenizer_config.as_ref().is_some_and(|t| t.get("chat_template").is_some());
    let causal = architectures.iter().any(|a| a.ends_with("ForCausalLM") || a.ends_with("LMHeadModel"));
    let encoder = matches!(meta.architecture.as_deref(), Some("bert" | "roberta" | "xlm-roberta" | "mpnet" | "nomic_bert" | "distilbert"));
    let task = if pooling.is_some() || (encoder && !causal) {
        Task::Embedding
    } else if causal && meta.chat_template {
        Task::Chat
    } else if causal {
        Task::Completion
    } else {
        Task::Unknown
    };
    Ok(Detected { format: ModelFormat::Safetensors, task, meta, size: dir_size(dir) })
}

fn read_json(path: &Path) -> Result<Value, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON: {e}"))
}

fn dir_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir).into_iter().flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
}

fn piper_config(sidecar: &Path) -> Option<Value> {
    let v = read_json(sidecar).ok()?;
    v.get("phoneme_id_map").is_some().then_some(v)
}

fn piper_meta(voice: &Value, meta: &mut ModelMeta) {
    let at = |path: &[&str]| path.iter().try_fold(voice, |v, k| v.get(k));
    meta.architecture = Some("piper-vits".into());
    meta.sample_rate = at(&["audio", "sample_rate"]).and_then(Value::as_u64).map(|r| r as u32);
    meta.speakers = at(&["num_speakers"]).and_then(Value::as_u64).map(|n| n as u32);
    meta.language = at(&["language", "code"]).or_else(|| at(&["espeak", "voice"])).and_then(Value::as_str).map(str::to_owned);
    if let Some(q) = at(&["audio", "quality"]).and_then(Value::as_str) {
        meta.quantization = Some(q.to_owned());
    }
    if let Some(v) = at(&["espeak", "voice"]).and_then(Value::as_str) {
        meta.details.insert("espeak_voice".into(), v.to_owned());
    }
}

fn gguf_task(h: &GgufHeader) -> Task {
    let arch = h.architecture().unwrap_or_default();
    let pooling = h.get_u64(&format!("{arch}.pooling_type")).unwrap_or(0);
    if pooling > 0 || matches!(arch, "bert" | "nomic-bert" | "jina-bert-v2" | "t5encoder") {
        Task::Embedding
    } else if h.has_chat_template() {
        Task::Chat
    } else {
        Task::Completion
    }
}

fn gguf_meta(h: &GgufHeader) -> ModelMeta {
    let mut meta = ModelMeta {
        architecture: h.architecture().map(str::to_owned),
        parameters: Some(h.parameter_count()),
        context_length: h.context_length(),
        quantization: Some(h.quantization()),
        chat_template: h.has_chat_template(),
        embedding_dim: h.embedding_length(),
        ..ModelMeta::default()
    };
    if let Some(name) = h.get_str("general.name") {
        meta.details.insert("name".into(), name.to_owned());
    }
    if let Some(layers) = h.block_count() {
        meta.details.insert("layers".into(), layers.to_string());
    }
    meta
}

fn whisper_ftype(ftype: u32) -> &'static str {
    match ftype {
        0 => "f32",
        1 => "f16",
        _ => "quantized",
    }
}
