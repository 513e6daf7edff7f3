//! Plugin-side glue: exporting a type as a plugin, with panic containment.
//!
//! A plugin author implements [`crate::Plugin`] (and the family traits it
//! offers) on ordinary Rust types, implements [`PluginExport`], and writes
//! `rustai_plugin::export_plugin!(MyPlugin, id = "my-plugin");`. The macro declares the
//! plugin's id and takes its version from the crate's `Cargo.toml`
//! ([`PluginIdentity`]); the glue writes both, with the API version, into the
//! handshake and into the [`PluginInfo`] the host sees, so they cannot disagree.
//! Every call from the host then goes
//! through a `Guarded` wrapper that runs it inside `catch_unwind`: a panic
//! becomes a [`PluginError`] of kind [`ErrorKind::Panicked`] for that call, and
//! the plugin's health turns [`HealthStatus::Degraded`]. Panics never unwind
//! across the ABI (which would abort the host).

use std::{
    panic::catch_unwind,
    sync::{Arc, Mutex},
};

use abi_stable::{
    library::{CheckTypeLayout, LibHeader, RootModuleResult},
    prefix_type::WithMetadata,
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RString},
};
use rustai_abi::{
    error::{ErrorKind, PluginError},
    module::{Handshake, PluginInstance, PluginMod, PluginModRef},
    traits::*,
    API_FEATURES, API_VERSION,
};

use crate::guard::{panic_message, GuardState, Guarded};

/// The plugin's id and version, declared once: [`crate::export_plugin!`] implements it
/// (the id given to the macro, the version from the plugin crate's `Cargo.toml`).
pub trait PluginIdentity {
    /// The plugin id (`[a-z0-9_-]+`, at most 64 bytes), known without instantiating.
    const ID: &'static str;
    /// The plugin's own semver version.
    const VERSION: &'static str;
}

/// Implemented by the type a plugin library exports.
pub trait PluginExport: Plugin + PluginIdentity + Sized + 'static {
    /// Create the plugin. Heavy work (loading models) belongs in later calls.
    fn create() -> Result<Self, PluginError>;
    /// The families this plugin implements, built from the shared instance.
    fn families(this: &Arc<Self>) -> Families {
        let _ = this;
        Families::default()
    }
}

type Make<B> = Box<dyn FnOnce(&Arc<GuardState>) -> B>;

/// The family trait objects a plugin offers; see [`PluginExport::families`].
#[derive(Default)]
pub struct Families {
    llm: Option<Make<LlmBox>>,
    embedding: Option<Make<EmbeddingBox>>,
    stt: Option<Make<SttBox>>,
    tts: Option<Make<TtsBox>>,
    tool: Option<Make<ToolBox>>,
}

impl std::fmt::Debug for Families {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Families")
            .field("llm", &self.llm.is_some())
            .field("embedding", &self.embedding.is_some())
            .field("stt", &self.stt.is_some())
            .field("tts", &self.tts.is_some())
            .field("tool", &self.tool.is_some())
            .finish()
    }
}

impl Families {
    /// Offer text generation.
    pub fn with_llm<T: LlmPlugin + 'static>(mut self, imp: Arc<T>) -> Self {
        self.llm = Some(Box::new(move |s| LlmPlugin_TO::from_value(Guarded::new(imp, s), TD_Opaque)));
        self
    }
    /// Offer embeddings.
    pub fn with_embedding<T: EmbeddingPlugin + 'static>(mut self, imp: Arc<T>) -> Self {
        self.embedding = Some(Box::new(move |s| EmbeddingPlugin_TO::from_value(Guarded::new(imp, s), TD_Opaque)));
        self
    }
    /// Offer speech to text.
    pub fn with_stt<T: SttPlugin + 'static>(mut self, imp: Arc<T>) -> Self {
        self.stt = Some(Box::new(move |s| SttPlugin_TO::from_value(Guarded::new(imp, s), TD_Opaque)));
        self
    }
    /// Offer text to speech.
    pub fn with_tts<T: TtsPlugin + 'static>(mut self, imp: Arc<T>) -> Self {
        self.tts = Some(Box::new(move |s| TtsPlugin_TO::from_value(Guarded::new(imp, s), TD_Opaque)));
        self
    }
    /// Offer tools.
    pub fn with_tool<T: ToolPlugin + 'static>(mut self, imp: Arc<T>) -> Self {
        self.tool = Some(Box::new(move |s| ToolPlugin_TO::from_value(Guarded::new(imp, s), TD_Opaque)));
        self
    }
}

/// The handshake of plugin `T`: its id and version, and this crate's API version and features.
pub fn handshake_of<T: PluginExport>() -> Handshake {
    Handshake {
        api_version: RString::from(API_VERSION),
        features: API_FEATURES.iter().map(|f| RString::from(*f)).collect(),
        plugin_id: RString::from(T::ID),
        plugin_version: RString::from(T::VERSION),
    }
}

extern "C" fn handshake<T: PluginExport>() -> Handshake {
    // Only builds constant data; nothing here can panic short of allocation failure.
    handshake_of::<T>()
}

/// Create an instance of `T` with every family wrapped in a panic guard.
///
/// This is what the exported root module calls; plugin authors can call it in
/// their own unit tests to exercise the plugin in-process, without `dlopen`.
pub extern "C" fn instantiate<T: PluginExport>() -> RResult<PluginInstance, PluginError> {
    let built = catch_unwind(|| -> Result<PluginInstance, PluginError> {
        let plugin = Arc::new(T::create()?);
        let mut info = plugin.info();
        // Declared once (the export macro and Cargo.toml): the info cannot disagree with the handshake.
        info.id = RString::from(T::ID);
        info.version = RString::from(T::VERSION);
        info.api_version = RString::from(API_VERSION);
        let state = Arc::new(GuardState { info, last_panic: Mutex::new(None) });
        let families = T::families(&plugin);
        Ok(PluginInstance {
            llm: ROption::from(families.llm.map(|m| m(&state))),
            embedding: ROption::from(families.embedding.map(|m| m(&state))),
            stt: ROption::from(families.stt.map(|m| m(&state))),
            tts: ROption::from(families.tts.map(|m| m(&state))),
            tool: ROption::from(families.tool.map(|m| m(&state))),
            plugin: Plugin_TO::from_value(Guarded::new(plugin, &state), TD_Opaque),
        })
    });
    match built {
        Ok(Ok(instance)) => RResult::ROk(instance),
        Ok(Err(e)) => RResult::RErr(e),
        Err(payload) => RResult::RErr(PluginError::new(
            ErrorKind::Panicked,
            format!("plugin `{}` panicked while starting: {}", T::ID, panic_message(&*payload)),
        )),
    }
}

/// The root module for plugin `T`. Used by [`crate::export_plugin!`].
pub fn module<T: PluginExport>() -> PluginModRef {
    const fn build<T: PluginExport>() -> PluginMod {
        PluginMod { handshake: handshake::<T>, instantiate: instantiate::<T> }
    }
    let with_meta: &'static WithMetadata<PluginMod> = Box::leak(Box::new(WithMetadata::new(build::<T>())));
    PluginModRef(with_meta.static_as_prefix())
}

extern "C" fn root_loader<T: PluginExport>() -> RootModuleResult {
    abi_stable::library::__call_root_module_loader(module::<T>)
}

/// The library header abi_stable's loader looks for, for plugin `T` (what
/// `#[export_root_module]` would generate, without the plugin naming `abi_stable`).
#[doc(hidden)]
pub const fn lib_header<T: PluginExport>() -> LibHeader {
    // SAFETY: `root_loader::<T>` returns the root module of type `PluginModRef`, the type
    // given here, whose layout the host checks against its own.
    unsafe { LibHeader::from_constructor::<PluginModRef>(root_loader::<T>, CheckTypeLayout::Yes) }
}

/// Export `$ty` (which implements [`PluginExport`]) as this library's RustAI plugin,
/// with id `$id`; the version is the plugin crate's `CARGO_PKG_VERSION`.
///
/// ```ignore
/// rustai_plugin::export_plugin!(MyPlugin, id = "my-plugin");
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty, id = $id:expr $(,)?) => {
        impl $crate::PluginIdentity for $ty {
            const ID: &'static str = $id;
            const VERSION: &'static str = ::core::env!("CARGO_PKG_VERSION");
        }

        /// The plugin's root module, found by the host under abi_stable's symbol name.
        #[doc(hidden)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static __RUSTAI_PLUGIN_ROOT: $crate::__private::LibHeader = $crate::export::lib_header::<$ty>();
    };
}

#[cfg(test)]
mod tests {
    use rustai_abi::types::*;

    use super::*;

    #[derive(Default)]
    struct Sized42;

    impl Plugin for Sized42 {
        fn info(&self) -> PluginInfo {
            PluginInfo::new("Sized", Category::Llm)
        }
        fn estimate_memory(&self, params: &LoadModelParams) -> RResult<u64, PluginError> {
            if params.path.is_empty() {
                panic!("no path");
            }
            RResult::ROk(42)
        }
    }

    impl PluginIdentity for Sized42 {
        const ID: &'static str = "sized";
        const VERSION: &'static str = "1.2.3";
    }

    impl PluginExport for Sized42 {
        fn create() -> Result<Self, PluginError> {
            Ok(Self)
        }
    }

    #[test]
    fn the_guard_forwards_every_call_and_fills_the_identity() {
        let instance = instantiate::<Sized42>().unwrap();
        let info = instance.plugin.info();
        assert_eq!((info.id.as_str(), info.version.as_str(), info.api_version.as_str()), ("sized", "1.2.3", API_VERSION));
        assert_eq!(instance.plugin.estimate_memory(&LoadModelParams::new("m.bin")).unwrap(), 42);
        // A panic in it is an error for that call, not an unwind across the boundary.
        let err = instance.plugin.estimate_memory(&LoadModelParams::new("")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Panicked);
        assert_eq!(instance.plugin.health().status, HealthStatus::Degraded);
    }

    #[test]
    fn the_export_symbol_is_abi_stables() {
        assert_eq!(crate::__private::ROOT_SYMBOL, abi_stable::library::ROOT_MODULE_LOADER_NAME);
    }
}
