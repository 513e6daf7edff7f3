//! # whisper: speech to text with whisper.cpp
//!
//! A RustAI plugin (cdylib) implementing [`rustai_plugin::SttPlugin`] with
//! `whisper-rs` (whisper.cpp 1.8, its own statically linked, private ggml). It
//! reads whisper.cpp's ggml model files (format `whisper-ggml`, e.g.
//! `ggml-tiny.en.bin`), takes 16 kHz mono f32 PCM, and returns the text, the
//! language (given, detected, or `en` for English-only models) and timed segments.
//!
//! ## Layout
//! - [`model`]: file validation (the whole file structure is walked with
//!   `rustai-formats` before whisper.cpp sees it, so a corrupt or truncated file
//!   is an `InvalidModel` error, not a crash), loading, handles, decoder states,
//!   and silencing whisper.cpp's log (unless `RUSTAI_WHISPER_LOG` is set).
//! - [`transcribe`]: request checks (16 kHz, not empty, finite samples, language,
//!   temperature) and the call into whisper.cpp.
//!
//! **Invariant:** no other crate knows about whisper.cpp; this plugin never
//! links the host (`rustai-core`), only the plugin SDK (`rustai-plugin`).

pub mod model;
pub mod transcribe;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use rustai_plugin::{
    Capabilities, Category, Families, GpuUse, Level, LoadModelParams, ModelHandle, Plugin, PluginError, PluginExport,
    PluginInfo, RResult, RString, RVec, ResourceRequirements, SttPlugin, TranscribeRequest, Transcription,
};

use model::{LoadedModel, ModelStore};

/// The model format this plugin reads.
pub const FORMAT: &str = "whisper-ggml";

/// The plugin object.
#[derive(Default)]
pub struct WhisperPlugin {
    models: ModelStore,
}


/// The CPU features whisper.cpp was compiled with, as whisper.cpp prints them
/// (e.g. `AVX2 = 1 | ... | AVX512 = 0`). Shows whether the build is portable.
pub fn system_info() -> &'static str {
    whisper_rs::print_system_info()
}

impl Plugin for WhisperPlugin {
    fn info(&self) -> PluginInfo {
        let s = |v: &[&str]| v.iter().map(|x| RString::from(*x)).collect::<RVec<_>>();
        PluginInfo {
            capabilities: Capabilities {
                formats: s(&[FORMAT]),
                features: s(&["timestamps", "language_detection", "translate", "initial_prompt"]),
            },
            resources: ResourceRequirements {
                min_memory_mb: 64,
                recommended_memory_mb: 256,
                cores: 2,
                gpu: GpuUse::None,
                battery_draw: Level::High,
                thermal_impact: Level::Medium,
                background_capable: true,
            },
            ..PluginInfo::new("Whisper (whisper.cpp)", Category::Stt).describe(format!("Transcribes 16 kHz speech with whisper.cpp {} ggml models on the CPU", whisper_rs::WHISPER_CPP_VERSION))
        }
    }

    fn shutdown(&self) -> RResult<(), PluginError> {
        self.models.clear();
        RResult::ROk(())
    }
}

impl SttPlugin for WhisperPlugin {
    fn load_model(&self, params: &LoadModelParams) -> RResult<ModelHandle, PluginError> {
        RResult::from(LoadedModel::load(params).map(|m| self.models.insert(m)))
    }

    fn unload_model(&self, model: ModelHandle) -> RResult<(), PluginError> {
        RResult::from(self.models.remove(model))
    }

    fn transcribe(&self, model: ModelHandle, request: &TranscribeRequest) -> RResult<Transcription, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| {
            let language = transcribe::check(&m, request)?;
            transcribe::run(&m, request, &language)
        }))
    }
}

impl PluginExport for WhisperPlugin {

    fn create() -> Result<Self, PluginError> {
        model::quiet_native_logs();
        Ok(Self::default())
    }

    fn families(this: &Arc<Self>) -> Families {
        Families::default().with_stt(Arc::clone(this))
    }
}

rustai_plugin::export_plugin!(WhisperPlugin, id = "whisper");
