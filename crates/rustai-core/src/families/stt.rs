//! Speech to text: [`Transcriber`] (the family of one plugin) and [`SttModel`].

use std::sync::Arc;

use rustai_abi::{LoadModelParams, SttBox, TranscribeRequest, Transcription};

use crate::{
    error::{Error, Result},
    plugins::{FamilyKind, LoadedPlugin, PluginManager},
};

family!(Transcriber, SttModel, stt, SttBox, FamilyKind::Stt);

impl SttModel {
    /// Transcribe 16 kHz mono PCM (see `request`).
    pub fn transcribe(&self, request: &TranscribeRequest) -> Result<Transcription> {
        self.family.api().transcribe(self.handle, request).into_result().map_err(|e| self.err(e))
    }
}
