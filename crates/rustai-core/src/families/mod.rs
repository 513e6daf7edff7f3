//! Typed, safe host-side handles on the plugin families: [`Llm`] / [`LlmModel`] (text),
//! [`Embedder`] / [`EmbeddingModel`], [`Transcriber`] / [`SttModel`] (speech to text),
//! [`Synthesizer`] / [`TtsModel`] (text to speech) and [`Tools`].
//!
//! A family handle wraps one [`LoadedPlugin`] that implements the family; its `load`
//! returns a model that is unloaded when dropped. Every loadable model type implements
//! [`Family`], which is all the engine's pool needs to hold it. Panics in host
//! callbacks never cross the ABI.
//!
//! **Invariant:** a family handle exists only for a plugin that implements the family
//! (checked when it is made), so the calls behind it never find the family missing.

use std::sync::Arc;

use rustai_abi::LoadModelParams;

use crate::{error::Result, plugins::{FamilyKind, LoadedPlugin}};

/// A model of one family, as the engine's pool loads and holds it.
pub trait Family: Sized + Send + Sync + std::fmt::Debug + 'static {
    /// Which family.
    const KIND: FamilyKind;
    /// Load a model through `plugin`, which must implement the family.
    fn load_with(plugin: Arc<LoadedPlugin>, params: &LoadModelParams) -> Result<Self>;
    /// The plugin instance that loaded it.
    fn plugin(&self) -> &Arc<LoadedPlugin>;
}

/// Defines a family handle (`$handle`), its model (`$model`), and
/// `PluginManager::$field(id)`.
macro_rules! family {
    ($handle:ident, $model:ident, $field:ident, $boxed:ty, $kind:expr) => {
        #[doc = concat!("The `", stringify!($boxed), "` family of one plugin.")]
        #[derive(Debug, Clone)]
        pub struct $handle {
            plugin: Arc<LoadedPlugin>,
        }

        impl $handle {
            pub(crate) fn new(plugin: Arc<LoadedPlugin>) -> Result<Self> {
                if plugin.instance.$field.is_none() {
                    return Err(Error::MissingFamily { plugin: plugin.id().to_owned(), family: $kind.trait_name() });
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

        #[doc = concat!("A model loaded by a `", stringify!($handle), "`.")]
        #[derive(Debug)]
        pub struct $model {
            family: $handle,
            handle: rustai_abi::ModelHandle,
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

        impl crate::families::Family for $model {
            const KIND: FamilyKind = $kind;
            fn load_with(plugin: Arc<LoadedPlugin>, params: &LoadModelParams) -> Result<Self> {
                $handle::new(plugin)?.load(params)
            }
            fn plugin(&self) -> &Arc<LoadedPlugin> {
                &self.family.plugin
            }
        }

        impl PluginManager {
            #[doc = concat!("The `", stringify!($boxed), "` family of plugin `id` (its current instance).")]
            pub fn $field(&self, id: &str) -> Result<$handle> {
                self.with_family(id, $kind).and_then($handle::new)
            }
        }
    };
}

pub mod embedding;
pub mod llm;
pub mod stt;
pub mod tool;
pub mod tts;

pub use embedding::{Embedder, EmbeddingModel};
pub use llm::{CancelToken, Llm, LlmModel, Logprobs, StreamEvent, TextRequest, TokenStream};
pub use stt::{SttModel, Transcriber};
pub use tool::Tools;
pub use tts::{Synthesizer, TtsModel};
