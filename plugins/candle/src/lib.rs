//! # candle: sentence embeddings with candle (pure Rust)
//!
//! A RustAI plugin (cdylib) implementing [`rustai_plugin::EmbeddingPlugin`] for
//! BERT-family models in Hugging Face / sentence-transformers folders
//! (`config.json`, `*.safetensors`, `tokenizer.json`, optional
//! `1_Pooling/config.json`), on the CPU with candle. No C or C++ code.
//!
//! ## Layout
//! - [`model`]: checking and loading a model folder; the forward pass.
//! - [`embed`]: one request: tokenize, batch by length, run, pool, normalise.
//! - [`batch`]: which inputs run together; padding and the attention mask.
//! - [`pooling`]: cls / mean / max / ... pooling and L2 normalisation.
//! - [`store`]: handles to loaded models.
//!
//! ## Behaviour
//! - Inputs are truncated to the model's limit (the smallest of
//!   `max_position_embeddings`, the tokenizer's own truncation length and
//!   `LoadModelParams::context_length` when non-zero); their indices are
//!   reported in `Embeddings::truncated`. A tokenizer's fixed padding is
//!   turned off: each batch is padded to its own longest input.
//! - `LoadModelParams::batch_size` = inputs per forward pass (0 = 32, at most 256).
//! - `LoadModelParams::threads` > 0 runs the model's requests in a rayon pool
//!   of that many threads (matrix products and softmax/layer-norm run there);
//!   0 uses rayon's global pool. candle's large element-wise kernels use its
//!   own process-wide pool, sized by `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS`
//!   (default: physical cores), and matrix products split into at most that
//!   many parts: those cannot be set per model.
//!
//! **Invariant:** this plugin never links the host (`rustai-core`), only the plugin SDK (`rustai-plugin`).

pub mod batch;
pub mod embed;
pub mod model;
pub mod pooling;
pub mod store;

use std::sync::Arc;

use rustai_plugin::{
    Capabilities, Category, EmbedRequest, EmbeddingPlugin, Embeddings, Families, GpuUse, Level, LoadModelParams,
    ModelHandle, Plugin, PluginError, PluginExport, PluginInfo, RResult, RString, RVec, ResourceRequirements,
};

use model::EmbedModel;
use store::ModelStore;

/// Features this plugin announces.
pub const FEATURES: [&str; 4] = ["embeddings", "normalize", "batch", "truncation"];

/// The plugin object.
#[derive(Default)]
pub struct CandlePlugin {
    models: ModelStore,
}


impl Plugin for CandlePlugin {
    fn info(&self) -> PluginInfo {
        let s = |v: &[&str]| v.iter().map(|x| RString::from(*x)).collect::<RVec<_>>();
        PluginInfo {
            capabilities: Capabilities { formats: s(&["safetensors"]), features: s(&FEATURES) },
            resources: ResourceRequirements {
                min_memory_mb: 32,
                recommended_memory_mb: 256,
                cores: 1,
                gpu: GpuUse::None,
                battery_draw: Level::Medium,
                thermal_impact: Level::Medium,
                background_capable: true,
            },
            ..PluginInfo::new("candle embeddings", Category::Embedding).describe("Sentence embeddings from BERT safetensors models on the CPU with candle (pure Rust)")
        }
    }

    fn shutdown(&self) -> RResult<(), PluginError> {
        self.models.clear();
        RResult::ROk(())
    }
}

impl EmbeddingPlugin for CandlePlugin {
    fn load_model(&self, params: &LoadModelParams) -> RResult<ModelHandle, PluginError> {
        RResult::from(EmbedModel::load(params).map(|m| self.models.insert(m)))
    }

    fn unload_model(&self, model: ModelHandle) -> RResult<(), PluginError> {
        RResult::from(self.models.remove(model))
    }

    fn dimensions(&self, model: ModelHandle) -> RResult<u32, PluginError> {
        RResult::from(self.models.get(model).map(|m| m.dimensions() as u32))
    }

    fn max_input_length(&self, model: ModelHandle) -> RResult<u32, PluginError> {
        RResult::from(self.models.get(model).map(|m| m.max_input_length() as u32))
    }

    fn embed(&self, model: ModelHandle, request: &EmbedRequest) -> RResult<Embeddings, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| embed::embed(&m, request.inputs.as_slice(), request.normalize)))
    }
}

impl PluginExport for CandlePlugin {

    fn create() -> Result<Self, PluginError> {
        Ok(Self::default())
    }

    fn families(this: &Arc<Self>) -> Families {
        Families::default().with_embedding(Arc::clone(this))
    }
}

rustai_plugin::export_plugin!(CandlePlugin, id = "candle");
