//! The root module: the single symbol every plugin library exports.
//!
//! The host reads [`PluginMod::handshake`] first (API semver and features) and
//! only calls [`PluginMod::instantiate`] when it is compatible.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{ROption, RResult, RString, RVec},
    StableAbi,
};

use crate::{error::PluginError, traits::*};

/// What a plugin says about itself before it is instantiated.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The `rustai-abi` version the plugin was built against.
    pub api_version: RString,
    /// Interface features it was built with (see [`crate::API_FEATURES`]).
    pub features: RVec<RString>,
    /// The plugin's id.
    pub plugin_id: RString,
    /// The plugin's own version.
    pub plugin_version: RString,
}

/// A live plugin: the base object and whichever families it implements.
#[repr(C)]
#[derive(StableAbi)]
pub struct PluginInstance {
    /// Base trait: info, init, health, shutdown.
    pub plugin: PluginBox,
    /// Text generation, if offered.
    pub llm: ROption<LlmBox>,
    /// Embeddings, if offered.
    pub embedding: ROption<EmbeddingBox>,
    /// Speech to text, if offered.
    pub stt: ROption<SttBox>,
    /// Text to speech, if offered.
    pub tts: ROption<TtsBox>,
    /// Tools, if offered.
    pub tool: ROption<ToolBox>,
}

/// The root module of a plugin library.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Cheap, side-effect-free identification.
    pub handshake: extern "C" fn() -> Handshake,
    /// Create the plugin. Called once per loaded library.
    #[sabi(last_prefix_field)]
    pub instantiate: extern "C" fn() -> RResult<PluginInstance, PluginError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "rustai_plugin";
    const NAME: &'static str = "rustai_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
