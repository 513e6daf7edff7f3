//! Text to speech: [`Synthesizer`] (the family of one plugin) and [`TtsModel`], with
//! streamed audio through a panic-safe sink.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::Arc,
};

use rustai_abi::{AudioSink, AudioSink_TO, LoadModelParams, RSlice, SpeakRequest, SpeechInfo, TtsBox, Voice};

use super::llm::CancelToken;
use crate::{
    error::{Error, Result},
    plugins::{FamilyKind, LoadedPlugin, PluginManager},
};

family!(Synthesizer, TtsModel, tts, TtsBox, FamilyKind::Tts);

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
