//! The engine: one handle over plugins, the model registry, the model pool,
//! the resource monitor, the adaptive rules and the metrics, and the entry
//! points every request takes, whatever its family and whoever sends it
//! (server, CLI, applications embedding the core):
//!
//! 1. look the model up in the [`Registry`] once (id, prefix or `name:tag`);
//! 2. for text: read the device state and apply the power profile and the thermal /
//!    battery / memory rules once ([`adaptive`]); every change is kept in
//!    [`Prepared::adjustments`] for the response and logged;
//! 3. take a [`Lease`] on the model from the [`ModelPool`] (loading it within
//!    the budget, evicting idle models of any family);
//! 4. run it, and record the request in the [`Metrics`].
//!
//! Entry points: [`Engine::prepare_llm`] + [`Engine::record`] (text, which streams),
//! [`Engine::embed`], [`Engine::transcribe`], and [`Engine::with_model`] for any family
//! (speech synthesis streams through it); [`Engine::tools`] and [`Engine::call_tool`] for
//! tool plugins (no model, no pool).
//!
//! - [`pool`]: [`ModelPool`]: loaded models of every family within one budget.
//! - [`budget`]: [`Budget`], [`KeepAlive`] and the on-disk memory estimate.
//! - [`adaptive`]: power profiles and device rules that adjust a request.
//! - [`monitor`]: [`ResourceMonitor`]: memory, CPU, temperature and battery snapshots.
//! - [`metrics`]: [`Metrics`]: per-request records summed per model and in total.
//! - `prepare`: the text path (fallbacks, auto selection, adaptation, load options).
//! - `run`: the other families' entry points.
//! - `tools`: listing and calling tools, with a timeout.

pub mod adaptive;
mod agent;
pub mod budget;
pub mod metrics;
pub mod monitor;
pub mod pool;
mod prepare;
mod run;
mod tools;

pub use agent::TOOL_CALL_TIMEOUT;
pub use prepare::{LoadOptions, Prepared};
pub use run::Served;
pub use tools::{ToolInfo, ToolResult, MAX_RUNNING_TOOL_CALLS};

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use rustai_abi::{Completion, LoadModelParams};

use self::{
    adaptive::{AdaptiveConfig, DeviceState, PowerProfile},
    budget::Budget,
    metrics::{Metrics, RequestRecord},
    monitor::ResourceMonitor,
    pool::{Lease, ModelPool},
};
use crate::{
    error::{Error, Result},
    families::Family,
    models::{ModelEntry, Registry, Task},
    plugins::PluginManager,
};

/// The model name that lets the engine choose ([`Registry::select`]).
pub const AUTO: &str = "auto";

/// The engine's default context, in tokens, when neither the request nor `models.toml`
/// sets one (cut to what the model was trained with); the power profile may lower it.
pub const DEFAULT_CONTEXT: u32 = 4096;

/// Engine settings.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Memory budget and keep-alive default for loaded models.
    pub budget: Budget,
    /// The power profile.
    pub profile: PowerProfile,
    /// Which adaptive rules apply.
    pub adaptive: AdaptiveConfig,
    /// How often idle models are checked for expiry.
    pub reap_every: Duration,
    /// Requests a language model decodes together (its slots), passed to the plugin as
    /// `parallel` in the load options unless `models.toml` sets one; 0 = the plugin's default.
    pub slots: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            budget: Budget::unlimited(),
            profile: PowerProfile::Balanced,
            adaptive: AdaptiveConfig::default(),
            reap_every: Duration::from_secs(1),
            slots: 0,
        }
    }
}

/// CPU threads a request gets when nothing sets them: the physical cores this process may
/// use (its affinity mask and CPU quota), before the power profile's cap.
pub fn default_threads() -> u32 {
    rustai_abi::cpu::usable_cores()
}

struct Inner {
    plugins: PluginManager,
    registry: Registry,
    pool: ModelPool,
    monitor: Option<ResourceMonitor>,
    policy: RwLock<(PowerProfile, AdaptiveConfig)>,
    metrics: Metrics,
    slots: u32,
}

/// A cheap handle (clones share everything).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("registry", &self.inner.registry).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `plugins` and `registry`; `monitor` = `None` adapts to the profile only.
    /// Starts the idle-model reaper.
    pub fn new(plugins: PluginManager, registry: Registry, monitor: Option<ResourceMonitor>, config: EngineConfig) -> Self {
        let pool = ModelPool::with_budget(plugins.clone(), config.budget);
        pool.spawn_reaper(config.reap_every);
        let policy = RwLock::new((config.profile, config.adaptive));
        let slots = config.slots;
        Self { inner: Arc::new(Inner { plugins, registry, pool, monitor, policy, metrics: Metrics::new(), slots }) }
    }

    /// The plugins.
    pub fn plugins(&self) -> &PluginManager {
        &self.inner.plugins
    }
    /// The model registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }
    /// The loaded models.
    pub fn pool(&self) -> &ModelPool {
        &self.inner.pool
    }
    /// Request metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
    /// The resource monitor, if any.
    pub fn monitor(&self) -> Option<&ResourceMonitor> {
        self.inner.monitor.as_ref()
    }

    /// The power profile and rules in force.
    pub fn policy(&self) -> (PowerProfile, AdaptiveConfig) {
        *self.inner.policy.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Change the power profile and rules.
    pub fn set_policy(&self, profile: PowerProfile, config: AdaptiveConfig) {
        *self.inner.policy.write().unwrap_or_else(std::sync::PoisonError::into_inner) = (profile, config);
    }

    /// The device state now (all nominal without a monitor).
    pub fn device_state(&self) -> DeviceState {
        self.monitor().map(|m| m.sample().device_state()).unwrap_or_default()
    }

    /// Look `model` up; an error unless it serves `task`.
    pub fn resolve(&self, model: &str, task: Task) -> Result<ModelEntry> {
        let entry = self.inner.registry.lookup(model)?;
        if !entry.task.serves(task) && entry.task != Task::Unknown {
            return Err(Error::WrongTask { model: entry.id, task: entry.task.as_str(), wanted: task.as_str() });
        }
        Ok(entry)
    }

    /// Lease `entry` as family `M`, loaded with `params`, by the plugin the request or the
    /// model names (else the one that reads its format), kept alive as the request asks.
    fn lease_entry<M: Family>(&self, entry: &ModelEntry, params: &LoadModelParams, options: &LoadOptions) -> Result<Lease<M>> {
        let plugin = options.plugin.as_deref().or(entry.provider.as_deref());
        let keep_alive = options.keep_alive.unwrap_or(self.inner.pool.budget().default_keep_alive);
        self.inner.pool.acquire::<M>(&entry.pool_file(), params, plugin, keep_alive)
    }

    /// The first installed model for `task` that a loaded plugin can serve (for requests that
    /// name none, e.g. a voice-only `/v1/audio/speech`).
    pub fn default_model(&self, task: Task) -> Option<ModelEntry> {
        task.family()?;
        self.registry().entries().into_iter().find(|e| e.task == task && Registry::plugin_for(e, self.plugins()).is_some())
    }

    /// Step 4: record a finished text request (or a failed one) in the metrics.
    pub fn record(&self, prepared: &Prepared, outcome: std::result::Result<&Completion, &Error>) {
        let latency = prepared.started.elapsed();
        let record = match outcome {
            Ok(done) => RequestRecord::from_completion(&prepared.entry.id, prepared.plugin_id(), done, latency),
            Err(_) => RequestRecord {
                model: prepared.entry.id.clone(),
                plugin: prepared.plugin_id().to_owned(),
                tokens_in: 0,
                tokens_out: 0,
                latency,
                generation: Duration::ZERO,
                failed: true,
            },
        };
        self.inner.metrics.record(&record);
    }
}

