//! Embeddings: [`Embedder`] (the family of one plugin) and [`EmbeddingModel`].

use std::sync::Arc;

use rustai_abi::{EmbedRequest, EmbeddingBox, Embeddings, LoadModelParams};

use crate::{
    error::{Error, Result},
    plugins::{FamilyKind, LoadedPlugin, PluginManager},
};

family!(Embedder, EmbeddingModel, embedding, EmbeddingBox, FamilyKind::Embedding);

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
