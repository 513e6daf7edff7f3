//! Typed access to the embedding, speech-to-text and text-to-speech families.
//!
//! Each family has a handle on the plugin ([`Embedder`], [`Transcriber`],
//! [`Synthesizer`]) whose `load` returns a model that is unloaded when dropped
//! ([`EmbeddingModel`], [`SttModel`], [`TtsModel`]). Panics in host callbacks
//! never cross the ABI.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
};

use rustai_abi::{
    AudioSink, AudioSink_TO, EmbeddingBox, EmbedRequest, Embeddings, LoadModelParams, ModelHandle, RSlice, SpeakRequest, SpeechInfo,
    SttBox, TranscribeRequest, Transcription, TtsBox, Voice,
};

use crate::{
    error::{Error, Result},
    llm::CancelToken,
    manager::{LoadedPlugin, PluginManager},
};

macro_rules! family {
    ($handle:ident, $model:ident, $field:ident, $boxed:ty, $trait_name:literal, $verb:literal) => {
        #[doc = concat!("The `", $trait_name, "` family of one plugin.")]
        #[derive(Debug, Clone)]
        pub struct $handle {
            plugin: Arc<LoadedPlugin>,
        }

        impl $handle {
            pub(crate) fn new(plugin: Arc<LoadedPlugin>) -> Result<Self> {
                if plugin.instance.$field.is_none() {
                    return Err(Error::MissingFamily { plugin: plugin.id().to_owned(), family: $trait_name });
                }
                Ok(Self { plugin })
            }

            fn api(&self) -> &$boxed {
                self.plugin.instance.$field.as_ref().into_option().expect("checked in new")
            }

            /// The plugin behind this interface.
            pub fn plugin(&self) -> &Arc<LoadedPlugin> {
                &self.plugin
            }

            /// Load a model; it is unloaded when the returned value is dropped.
            pub fn load(&self, params: &LoadModelParams) -> Result<$model> {
                let handle = self.api().load_model(params).into_result().map_err(|e| Error::plugin(self.plugin.id(), e))?;
                Ok($model { family: self.clone(), handle, path: params.path.to_string() })
            }
        }

        #[doc = concat!("A model loaded by a `", $trait_name, "`.")]
        #[derive(Debug)]
        pub struct $model {
            family: $handle,
            handle: ModelHandle,
            path: String,
        }

        impl Drop for $model {
            fn drop(&mut self) {
                let _ = self.family.api().unload_model(self.handle);
            }
        }

        impl $model {
            /// The plugin serving it.
            pub fn plugin(&self) -> &Arc<LoadedPlugin> {
                &self.family.plugin
            }
            /// The file or folder it was loaded from.
            pub fn path(&self) -> &str {
                &self.path
            }
            fn err(&self, e: rustai_abi::PluginError) -> Error {
                Error::plugin(self.family.plugin.id(), e)
            }
        }

        impl PluginManager {
            #[doc = concat!("The first plugin that ", $verb, " from `format` models.")]
            pub fn $field(&self, format: &str) -> Result<$handle> {
                self.plugins()
                    .into_iter()
                    .find(|p| p.instance.$field.is_some() && p.reads_format(format))
                    .ok_or_else(|| Error::NoPluginFor(format!("{} from {format} models", $verb)))
                    .and_then($handle::new)
            }
        }
    };
}

family!(Embedder, EmbeddingModel, embedding, EmbeddingBox, "EmbeddingPlugin", "computes embeddings");
family!(Transcriber, SttModel, stt, SttBox, "SttPlugin", "transcribes speech");
family!(Synthesizer, TtsModel, tts, TtsBox, "TtsPlugin", "synthesizes speech");

impl EmbeddingModel {
    /// Vector size.
    pub fn dimensions(&self) -> Result<u32> {
        self.family.api().dimensions(self.handle).into_result().map_err(|e| self.err(e))
    }
    /// Longest input in tokens (longer ones are truncated and reported).
    pub fn max_input_length(&self) -> Result<u32> {
        self.family.api().max_input_length(self.handle).into_result().map_err(|e| self.err(e))
    }
    /// Embed `inputs` (one vector each, in order); `normalize` = L2-normalised vectors.
    pub fn embed<S: AsRef<str>>(&self, inputs: &[S], normalize: bool) -> Result<Embeddings> {
        let request = EmbedRequest { inputs: inputs.iter().map(|s| s.as_ref().into()).collect(), normalize };
        self.family.api().embed(self.handle, &request).into_result().map_err(|e| self.err(e))
    }
}

impl SttModel {
    /// Transcribe 16 kHz mono PCM (see `request`).
    pub fn transcribe(&self, request: &TranscribeRequest) -> Result<Transcription> {
        self.family.api().transcribe(self.handle, request).into_result().map_err(|e| self.err(e))
    }
}

/// Forwards audio chunks to a closure, catching its panics.
struct FnAudio<F> {
    f: F,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

impl<F: FnMut(&[f32]) -> bool> AudioSink for FnAudio<F> {
    fn on_audio(&mut self, pcm: RSlice<'_, f32>) -> bool {
        if self.panic.is_some() {
            return false;
        }
        match catch_unwind(AssertUnwindSafe(|| (self.f)(pcm.as_slice()))) {
            Ok(go_on) => go_on,
            Err(p) => {
                self.panic = Some(p);
                false
            }
        }
    }
}

impl TtsModel {
    /// The voices (speakers) of the model.
    pub fn voices(&self) -> Result<Vec<Voice>> {
        self.family.api().voices(self.handle).into_result().map(|v| v.into_vec()).map_err(|e| self.err(e))
    }

    /// Synthesize `request`, streaming PCM chunks to `on_audio` (return `false` to stop).
    pub fn synthesize_with(&self, request: &SpeakRequest, on_audio: impl FnMut(&[f32]) -> bool) -> Result<SpeechInfo> {
        let mut sink = FnAudio { f: on_audio, panic: None };
        let result = self.family.api().synthesize(self.handle, request, AudioSink_TO::from_ptr(&mut sink, abi_stable::sabi_trait::TD_Opaque));
        if let Some(p) = sink.panic.take() {
            std::panic::resume_unwind(p);
        }
        result.into_result().map_err(|e| self.err(e))
    }

    /// Synthesize `request` into one buffer of samples.
    pub fn synthesize(&self, request: &SpeakRequest) -> Result<(SpeechInfo, Vec<f32>)> {
        self.synthesize_until(request, &CancelToken::new())
    }

    /// [`Self::synthesize`], stopping between chunks once `cancel` is set ([`Error::Cancelled`]).
    pub fn synthesize_until(&self, request: &SpeakRequest, cancel: &CancelToken) -> Result<(SpeechInfo, Vec<f32>)> {
        let mut pcm = Vec::new();
        let info = self.synthesize_with(request, |chunk| {
            pcm.extend_from_slice(chunk);
            !cancel.is_cancelled()
        })?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        Ok((info, pcm))
    }
}
