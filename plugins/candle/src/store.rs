//! Handles to loaded models, shared between threads (the SDK's handle table).

use crate::model::EmbedModel;

/// Loaded models by handle. A model removed while a request runs on it is
/// freed when that request ends.
pub type ModelStore = rustai_plugin::ModelStore<EmbedModel>;
