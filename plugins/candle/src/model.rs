//! Loading a model folder: validation of every file, the BERT weights, the
//! tokenizer (our own padding and truncation), pooling and threads.
//!
//! A folder holds `config.json`, one or more `*.safetensors`, `tokenizer.json`
//! and optionally sentence-transformers' `modules.json` and
//! `1_Pooling/config.json`. Every problem with them is a
//! [`PluginError`] (`InvalidModel`), never a panic: safetensors headers are
//! checked with `rustai-formats` before candle reads the bytes, the config is
//! checked for sizes that would make candle divide by zero, and the tokenizer
//! vocabulary must fit the embedding table.

use rustai_plugin::serde_json;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use rustai_plugin::{LoadModelParams, PluginError};
use rustai_plugin::formats::SafetensorsHeader;
use serde_json::Value;
use tokenizers::{PostProcessor, Tokenizer, TruncationParams};

use crate::{batch::Padded, pooling::Pooling};

/// Inputs per forward pass when `LoadModelParams::batch_size` is 0.
pub const DEFAULT_CHUNK: usize = 32;
/// Largest accepted `batch_size` (bounds activation memory).
pub const MAX_CHUNK: usize = 256;

/// sentence-transformers modules this plugin reproduces; anything else
/// (e.g. a `Dense` projection) would give different vectors, so it is refused.
const KNOWN_MODULES: [&str; 3] =
    ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling", "sentence_transformers.models.Normalize"];

/// A loaded embedding model.
pub struct EmbedModel {
    bert: BertModel,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) pooling: Pooling,
    /// Hidden size of the transformer.
    pub(crate) hidden: usize,
    /// Vocabulary size of the embedding table (every token id must be below it).
    pub(crate) vocab: usize,
    /// Longest input in tokens, special tokens included.
    pub(crate) max_len: usize,
    pub(crate) pad_id: u32,
    /// Inputs per forward pass.
    pub(crate) chunk: usize,
    /// Dedicated thread pool when `threads` was set; else rayon's global pool.
    threads: Option<rayon::ThreadPool>,
    device: Device,
}

fn bad(folder: &Path, what: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_model(format!("{}: {what}", folder.display()))
}

fn read_text(folder: &Path, name: &str) -> Result<String, PluginError> {
    let path = folder.join(name);
    std::fs::read_to_string(&path).map_err(|e| bad(folder, format_args!("cannot read {name}: {e}")))
}

/// The model folder and its weight files for `path` (a folder, or one
/// `.safetensors` file inside one).
fn locate(path: &Path) -> Result<(PathBuf, Vec<PathBuf>), PluginError> {
    if !path.exists() {
        return Err(PluginError::not_found(format!("model folder {} does not exist", path.display())));
    }
    if path.is_file() {
        let folder = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        if path.extension().is_none_or(|x| x != "safetensors") {
            return Err(bad(path, "expected a model folder (config.json, *.safetensors, tokenizer.json) or a .safetensors file"));
        }
        return Ok((folder, vec![path.to_path_buf()]));
    }
    let entries = std::fs::read_dir(path).map_err(|e| bad(path, format_args!("cannot list the folder: {e}")))?;
    let mut weights: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    weights.sort();
    if weights.is_empty() {
        return Err(bad(path, "no *.safetensors weights in the folder"));
    }
    Ok((path.to_path_buf(), weights))
}

/// Parse and check `config.json`: a BERT model with usable sizes.
fn read_config(folder: &Path) -> Result<Config, PluginError> {
    let text = read_text(folder, "config.json")?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(folder, format_args!("config.json is not valid JSON: {e}")))?;
    let model_type = value.get("model_type").and_then(Value::as_str);
    let architectures: Vec<&str> =
        value.get("architectures").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let is_bert = match model_type {
        Some(t) => t == "bert",
        None => architectures.iter().any(|a| a.starts_with("Bert")),
    };
    if !is_bert {
        let what = model_type.map(str::to_owned).unwrap_or_else(|| format!("{architectures:?}"));
        return Err(bad(folder, format_args!("architecture {what} is not supported (this plugin runs BERT models, model_type \"bert\")")));
    }
    let config: Config =
        serde_json::from_value(value).map_err(|e| bad(folder, format_args!("config.json is not a usable BERT config: {e}")))?;
    let sizes = [
        ("vocab_size", config.vocab_size),
        ("hidden_size", config.hidden_size),
        ("num_hidden_layers", config.num_hidden_layers),
        ("num_attention_heads", config.num_attention_heads),
        ("intermediate_size", config.intermediate_size),
        ("max_position_embeddings", config.max_position_embeddings),
        ("type_vocab_size", config.type_vocab_size),
    ];
    if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
        return Err(bad(folder, format_args!("config.json: {name} is 0")));
    }
    if config.hidden_size % config.num_attention_heads != 0 {
        return Err(bad(
            folder,
            format_args!(
                "config.json: hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            ),
        ));
    }
    if config.pad_token_id >= config.vocab_size {
        return Err(bad(folder, format_args!("config.json: pad_token_id {} >= vocab_size {}", config.pad_token_id, config.vocab_size)));
    }
    Ok(config)
}

/// The pooling of the model: sentence-transformers' config when there is one, else mean.
fn read_pooling(folder: &Path, hidden: usize) -> Result<Pooling, PluginError> {
    let mut pooling_dir = PathBuf::from("1_Pooling");
    if folder.join("modules.json").is_file() {
        let text = read_text(folder, "modules.json")?;
        let modules: Value =
            serde_json::from_str(&text).map_err(|e| bad(folder, format_args!("modules.json is not valid JSON: {e}")))?;
        for m in modules.as_array().into_iter().flatten() {
            let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
            if !KNOWN_MODULES.contains(&kind) {
                return Err(bad(folder, format_args!("modules.json: module type {kind:?} is not supported (only Transformer, Pooling, Normalize)")));
            }
            if kind.ends_with(".Pooling") {
                if let Some(p) = m.get("path").and_then(Value::as_str) {
                    pooling_dir = PathBuf::from(p);
                }
            }
        }
    }
    let config = pooling_dir.join("config.json");
    if !folder.join(&config).is_file() {
        return Ok(Pooling::default());
    }
    let text = read_text(folder, &config.to_string_lossy())?;
    Pooling::from_json(&text, hidden).map_err(|e| bad(folder, format_args!("{}: {e}", config.display())))
}

/// Load the tokenizer with padding off and truncation at the model's limit.
/// Returns it with that limit (special tokens included).
fn read_tokenizer(folder: &Path, config: &Config, context_length: u32) -> Result<(Tokenizer, usize), PluginError> {
    let path = folder.join("tokenizer.json");
    if !path.is_file() {
        return Err(bad(folder, "tokenizer.json is missing"));
    }
    let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| bad(folder, format_args!("tokenizer.json cannot be read: {e}")))?;
    let vocab = tokenizer.get_vocab_size(true);
    if vocab > config.vocab_size {
        return Err(bad(folder, format_args!("the tokenizer has {vocab} tokens but the model only {}", config.vocab_size)));
    }
    let mut max_len = config.max_position_embeddings;
    if let Some(t) = tokenizer.get_truncation() {
        max_len = max_len.min(t.max_length);
    }
    if context_length > 0 {
        max_len = max_len.min(context_length as usize);
    }
    let specials = tokenizer.get_post_processor().map_or(0, |p| p.added_tokens(false));
    if max_len <= specials {
        return Err(PluginError::invalid_input(format!(
            "an input length of {max_len} tokens leaves no room for text ({specials} special tokens)"
        )));
    }
    tokenizer.with_padding(None);
    let truncation = TruncationParams { max_length: max_len, stride: 0, ..TruncationParams::default() };
    tokenizer.with_truncation(Some(truncation)).map_err(|e| bad(folder, format_args!("tokenizer truncation: {e}")))?;
    Ok((tokenizer, max_len))
}

/// Read every weight file (checked first) into one name → tensor map.
fn read_weights(folder: &Path, files: &[PathBuf], device: &Device) -> Result<HashMap<String, Tensor>, PluginError> {
    let mut all = HashMap::new();
    for file in files {
        let name = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
        SafetensorsHeader::read(file).map_err(|e| bad(folder, format_args!("{name} is not a valid safetensors file: {e}")))?;
        let bytes = std::fs::read(file).map_err(|e| bad(folder, format_args!("cannot read {name}: {e}")))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, device)
            .map_err(|e| bad(folder, format_args!("{name} is not a valid safetensors file: {e}")))?;
        for (key, tensor) in tensors {
            if all.insert(key.clone(), tensor).is_some() {
                return Err(bad(folder, format_args!("tensor {key} appears in more than one weight file")));
            }
        }
    }
    Ok(all)
}

impl EmbedModel {
    /// Load and check the model at `params.path`.
    pub fn load(params: &LoadModelParams) -> Result<Self, PluginError> {
        let (folder, files) = locate(Path::new(params.path.as_str()))?;
        let config = read_config(&folder)?;
        let pooling = read_pooling(&folder, config.hidden_size)?;
        let (tokenizer, max_len) = read_tokenizer(&folder, &config, params.context_length)?;
        let device = Device::Cpu;
        let tensors = read_weights(&folder, &files, &device)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let bert = BertModel::load(vb, &config)
            .map_err(|e| bad(&folder, format_args!("the weights do not match config.json (BERT): {e}")))?;
        let threads = match params.threads {
            0 => None,
            n => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n as usize)
                    .thread_name(|i| format!("rustai-candle-{i}"))
                    .build()
                    .map_err(|e| PluginError::internal(format!("cannot start {n} threads: {e}")))?,
            ),
        };
        let chunk = match params.batch_size {
            0 => DEFAULT_CHUNK,
            n => (n as usize).min(MAX_CHUNK),
        };
        Ok(Self {
            bert,
            tokenizer,
            pooling,
            hidden: config.hidden_size,
            vocab: config.vocab_size,
            max_len,
            pad_id: config.pad_token_id as u32,
            chunk,
            threads,
            device,
        })
    }

    /// Width of the vectors this model produces.
    pub fn dimensions(&self) -> usize {
        self.pooling.width(self.hidden)
    }

    /// Longest input in tokens (special tokens included).
    pub fn max_input_length(&self) -> usize {
        self.max_len
    }

    /// Run `f` on this model's threads.
    pub(crate) fn on_threads<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.threads {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// The last hidden states of a padded batch, row-major `rows × width × hidden`.
    pub(crate) fn forward(&self, batch: &Padded) -> candle_core::Result<Vec<f32>> {
        let shape = (batch.rows, batch.width);
        let ids = Tensor::from_slice(&batch.ids, shape, &self.device)?;
        let mask = Tensor::from_slice(&batch.mask, shape, &self.device)?;
        let types = ids.zeros_like()?;
        self.bert.forward(&ids, &types, Some(&mask))?.flatten_all()?.to_vec1::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use rustai_plugin::ErrorKind;

    use super::*;

    const CONFIG: &str = r#"{"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 100,
        "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "max_position_embeddings": 32,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0}"#;

    fn folder_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    fn config_error(text: &str) -> String {
        let dir = folder_with(&[("config.json", text)]);
        let err = read_config(dir.path()).expect_err("bad config");
        assert_eq!(err.kind, ErrorKind::InvalidModel);
        err.message.to_string()
    }

    #[test]
    fn a_bert_config_is_accepted() {
        let dir = folder_with(&[("config.json", CONFIG)]);
        let config = read_config(dir.path()).expect("config");
        assert_eq!((config.hidden_size, config.max_position_embeddings), (8, 32));
    }

    #[test]
    fn bad_configs_are_invalid_models() {
        assert!(config_error(&CONFIG.replace("\"bert\"", "\"llama\"")).contains("llama"));
        assert!(config_error(&CONFIG.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 0")).contains("num_attention_heads is 0"));
        assert!(config_error(&CONFIG.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3")).contains("multiple"));
        assert!(config_error(&CONFIG.replace("\"pad_token_id\": 0", "\"pad_token_id\": 100")).contains("pad_token_id"));
        assert!(config_error(&CONFIG.replace("\"gelu\"", "\"swish\"")).contains("BERT config"));
        assert!(config_error("{ not json").contains("not valid JSON"));
        let dir = folder_with(&[]);
        assert!(read_config(dir.path()).expect_err("missing").message.contains("config.json"));
    }

    #[test]
    fn locating_weights() {
        let err = locate(Path::new("/nonexistent/rustai/model")).expect_err("missing");
        assert_eq!(err.kind, ErrorKind::NotFound);
        let dir = folder_with(&[("config.json", CONFIG)]);
        assert!(locate(dir.path()).expect_err("no weights").message.contains("safetensors"));
        let dir = folder_with(&[("b.safetensors", ""), ("a.safetensors", ""), ("config.json", CONFIG)]);
        let (folder, files) = locate(dir.path()).expect("weights");
        assert_eq!(folder, dir.path());
        let names: Vec<_> = files.iter().filter_map(|f| f.file_name()).collect();
        assert_eq!(names, ["a.safetensors", "b.safetensors"]);
        let (_, one) = locate(&dir.path().join("b.safetensors")).expect("one file");
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn garbage_weights_are_invalid_models() {
        let dir = folder_with(&[("model.safetensors", "definitely not safetensors")]);
        let files = vec![dir.path().join("model.safetensors")];
        let err = read_weights(dir.path(), &files, &Device::Cpu).expect_err("garbage");
        assert_eq!(err.kind, ErrorKind::InvalidModel);
        assert!(err.message.contains("model.safetensors"));
    }

    #[test]
    fn pooling_follows_sentence_transformers_files() {
        let dir = folder_with(&[]);
        assert_eq!(read_pooling(dir.path(), 8).expect("default"), Pooling::default());
        let cls = r#"{"pooling_mode_cls_token": true}"#;
        let modules = r#"[{"idx": 0, "type": "sentence_transformers.models.Transformer", "path": ""},
            {"idx": 1, "type": "sentence_transformers.models.Pooling", "path": "pool"}]"#;
        let dir = folder_with(&[("modules.json", modules), ("pool/config.json", cls)]);
        assert_eq!(read_pooling(dir.path(), 8).expect("cls").modes(), [crate::pooling::Mode::Cls]);
        let dense = r#"[{"type": "sentence_transformers.models.Dense", "path": "2_Dense"}]"#;
        let dir = folder_with(&[("modules.json", dense)]);
        assert!(read_pooling(dir.path(), 8).expect_err("dense").message.contains("Dense"));
    }
}
