//! # piper: Piper voices (text to speech) through ONNX Runtime and espeak-ng
//!
//! A RustAI plugin (cdylib) implementing [`rustai_plugin::TtsPlugin`]. A Piper
//! voice is a VITS model in ONNX form (`voice.onnx`) with its config beside it
//! (`voice.onnx.json`); `LoadModelParams::path` names the `.onnx`.
//!
//! ## Layout
//! - [`runtime`]: finds `libonnxruntime` at run time (`ort`'s `load-dynamic`) and
//!   starts the one ONNX Runtime environment of the process.
//! - [`espeak`]: text → IPA phonemes, clause by clause, through espeak-ng's C
//!   library, behind a process-wide lock (espeak-ng is not thread-safe).
//! - `process_lock`: that lock, shared by every copy of this plugin in the process
//!   (a hot reload loads a second copy while the first finishes).
//! - [`voice`]: the `.onnx.json` (sample rate, scales, speakers, phoneme ids).
//! - [`synth`]: the ONNX session and sentence-by-sentence streaming synthesis.
//!
//! Output: mono f32 PCM in `[-1, 1]` at the voice's sample rate, one chunk per
//! sentence. Requests may run concurrently; runs on one voice take turns per sentence.
//!
//! **Native needs at run time:** `libespeak-ng.so.1` with its data (Debian
//! `espeak-ng`), and `libonnxruntime.so` ≥ 1.31 (see [`runtime`] for where it is
//! looked for). A missing ONNX Runtime is a `NotReady` error at model load, not a
//! failure to load the plugin.

mod espeak;
mod process_lock;
mod runtime;
mod synth;
mod voice;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
};

use rustai_plugin::{
    feature, AudioSinkMut, Capabilities, Category, Families, GpuUse, Level, LoadModelParams, ModelHandle, Plugin,
    PluginError, PluginExport, PluginInfo, RResult, RString, RVec, ResourceRequirements, SpeakRequest, SpeechInfo,
    TtsPlugin, Voice,
};

use synth::LoadedVoice;

/// The plugin object.
#[derive(Default)]
pub struct PiperPlugin {
    next: AtomicU64,
    models: RwLock<HashMap<u64, Arc<LoadedVoice>>>,
}


impl PiperPlugin {
    fn get(&self, handle: ModelHandle) -> Result<Arc<LoadedVoice>, PluginError> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&handle.0)
            .cloned()
            .ok_or_else(|| PluginError::not_found(format!("no loaded voice with handle {}", handle.0)))
    }
}

impl Plugin for PiperPlugin {
    fn info(&self) -> PluginInfo {
        let s = |v: &[&str]| v.iter().map(|x| RString::from(*x)).collect::<RVec<_>>();
        PluginInfo {
            capabilities: Capabilities { formats: s(&["piper"]), features: s(&[feature::STREAMING]) },
            resources: ResourceRequirements {
                min_memory_mb: 128,
                recommended_memory_mb: 256,
                cores: 2,
                gpu: GpuUse::None,
                battery_draw: Level::Medium,
                thermal_impact: Level::Medium,
                background_capable: true,
            },
            ..PluginInfo::new("Piper (ONNX Runtime + espeak-ng)", Category::Tts).describe("Speaks text with Piper voices on the CPU (ONNX Runtime, espeak-ng phonemes)")
        }
    }

    fn health(&self) -> rustai_plugin::Health {
        let mut health = rustai_plugin::Health::healthy();
        if !runtime::is_started() {
            health.message = RString::from("ONNX Runtime starts with the first voice loaded");
        }
        health
    }

    fn shutdown(&self) -> RResult<(), PluginError> {
        self.models.write().unwrap_or_else(|p| p.into_inner()).clear();
        RResult::ROk(())
    }
}

impl TtsPlugin for PiperPlugin {
    fn load_model(&self, params: &LoadModelParams) -> RResult<ModelHandle, PluginError> {
        RResult::from(LoadedVoice::load(params).map(|voice| {
            let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
            self.models.write().unwrap_or_else(|p| p.into_inner()).insert(id, Arc::new(voice));
            ModelHandle(id)
        }))
    }

    fn unload_model(&self, model: ModelHandle) -> RResult<(), PluginError> {
        let removed = self.models.write().unwrap_or_else(|p| p.into_inner()).remove(&model.0);
        RResult::from(removed.map(drop).ok_or_else(|| PluginError::not_found(format!("no loaded voice with handle {}", model.0))))
    }

    fn voices(&self, model: ModelHandle) -> RResult<RVec<Voice>, PluginError> {
        RResult::from(self.get(model).map(|v| v.config.voices().into()))
    }

    fn synthesize(&self, model: ModelHandle, request: &SpeakRequest, sink: AudioSinkMut<'_>) -> RResult<SpeechInfo, PluginError> {
        RResult::from(self.get(model).and_then(|v| v.synthesize(request, sink)))
    }
}

impl PluginExport for PiperPlugin {

    fn create() -> Result<Self, PluginError> {
        Ok(Self::default())
    }

    fn families(this: &Arc<Self>) -> Families {
        Families::default().with_tts(Arc::clone(this))
    }
}

rustai_plugin::export_plugin!(PiperPlugin, id = "piper");
