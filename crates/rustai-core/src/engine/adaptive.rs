//! Adaptive inference: power profiles and device-state rules that adjust a
//! request's parameters before it reaches a plugin, reporting every change.
//!
//! The rules: a power profile caps
//! threads, tokens, batch, context, GPU use and caching; then thermal state,
//! battery (when discharging below a threshold) and memory pressure tighten
//! them further. Nothing here reads the machine: callers pass a
//! [`DeviceState`], so every state can be tested.

use std::fmt;

/// How hot the device runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThermalState {
    /// Normal operation.
    #[default]
    Nominal,
    /// Slightly warm.
    Fair,
    /// Throttling recommended.
    Serious,
    /// Load must drop immediately.
    Critical,
}

/// How short of memory the device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryPressure {
    /// Plenty available.
    #[default]
    Normal,
    /// Getting low.
    Warning,
    /// Nearly exhausted.
    Critical,
}

/// What the battery is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatteryState {
    /// On external power, charging.
    Charging,
    /// Running on battery.
    Discharging,
    /// On external power, full.
    Full,
    /// No battery, or not known.
    #[default]
    Unknown,
}

/// The device state the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceState {
    /// Thermal state.
    pub thermal: ThermalState,
    /// Memory pressure.
    pub memory: MemoryPressure,
    /// Battery level in percent, when there is a battery.
    pub battery_percent: Option<u8>,
    /// Battery state.
    pub battery: BatteryState,
}

/// The knobs adaptation may turn. `0` in `max_tokens`, `threads`, `batch_size`
/// or `context_length` means "plugin default / unlimited"; a cap replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InferenceParams {
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// CPU threads.
    pub threads: u32,
    /// Prompt batch size.
    pub batch_size: u32,
    /// Context length.
    pub context_length: u32,
    /// Whether a GPU may be used.
    pub use_gpu: bool,
    /// Whether a remote model should be preferred.
    pub prefer_cloud: bool,
    /// Whether caches (prompt/KV reuse) may be kept.
    pub cache_enabled: bool,
}

impl Default for InferenceParams {
    fn default() -> Self {
        Self { max_tokens: 0, threads: 0, batch_size: 0, context_length: 0, use_gpu: true, prefer_cloud: false, cache_enabled: true }
    }
}

/// Limits a power profile imposes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProfileLimits {
    /// Most CPU threads.
    pub max_threads: u32,
    /// Whether a GPU may be used.
    pub use_gpu: bool,
    /// Whether remote models are preferred.
    pub prefer_cloud: bool,
    /// Most tokens generated locally per request.
    pub max_local_tokens: u32,
    /// Quality floor for model selection (0..=1).
    pub quality: f32,
    /// Largest batch.
    pub batch_size: u32,
    /// Longest context.
    pub context_length: u32,
    /// Whether caches may be kept.
    pub caching: bool,
    /// Whether inference may run while the app is in the background.
    pub background: bool,
}

impl ProfileLimits {
    /// No limit at all: what a one-off command asks is what it gets (the CLI's
    /// `run`, `chat` and `bench`, where the user sets every knob explicitly).
    pub const fn unlimited() -> Self {
        Self {
            max_threads: u32::MAX,
            use_gpu: true,
            prefer_cloud: false,
            max_local_tokens: u32::MAX,
            quality: 0.0,
            batch_size: u32::MAX,
            context_length: u32::MAX,
            caching: true,
            background: true,
        }
    }
}

/// A power profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PowerProfile {
    /// Maximum performance, battery ignored.
    Performance,
    /// Balanced performance and battery.
    Balanced,
    /// Battery life first.
    PowerSaver,
    /// Extreme saving: remote models preferred, minimal local work.
    UltraSaver,
    /// Caller-defined limits.
    Custom(ProfileLimits),
}

impl PowerProfile {
    /// The limits of this profile.
    pub fn limits(self) -> ProfileLimits {
        let l = |max_threads, use_gpu, prefer_cloud, max_local_tokens, quality, batch_size, context_length, caching, background| {
            ProfileLimits { max_threads, use_gpu, prefer_cloud, max_local_tokens, quality, batch_size, context_length, caching, background }
        };
        match self {
            Self::Performance => l(8, true, false, 4096, 1.0, 8, 8192, true, true),
            Self::Balanced => l(4, true, false, 2048, 0.8, 4, 4096, true, false),
            Self::PowerSaver => l(2, false, true, 512, 0.6, 1, 2048, false, false),
            Self::UltraSaver => l(1, false, true, 128, 0.4, 1, 1024, false, false),
            Self::Custom(limits) => limits,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Performance => "performance",
            Self::Balanced => "balanced",
            Self::PowerSaver => "power-saver",
            Self::UltraSaver => "ultra-saver",
            Self::Custom(_) => "custom",
        }
    }
}

/// Which rules are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveConfig {
    /// Apply the battery rule.
    pub battery_aware: bool,
    /// Battery percent below which (while discharging) local load is reduced.
    pub battery_threshold: u8,
    /// Apply the thermal rules.
    pub thermal_aware: bool,
    /// Apply the memory-pressure rules.
    pub memory_aware: bool,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self { battery_aware: true, battery_threshold: 20, thermal_aware: true, memory_aware: true }
    }
}

/// One change made to a request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    /// The parameter, e.g. `max_tokens`.
    pub field: &'static str,
    /// Its value before.
    pub from: String,
    /// Its value after.
    pub to: String,
    /// Why, e.g. `thermal state critical`.
    pub reason: String,
}

impl fmt::Display for Adjustment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {} ({})", self.field, self.from, self.to, self.reason)
    }
}

/// Applies caps and records what changed.
struct Adjuster {
    params: InferenceParams,
    changes: Vec<Adjustment>,
}

fn show(v: u32) -> String {
    if v == 0 { "default".to_owned() } else { v.to_string() }
}

impl Adjuster {
    /// Cap a "0 = unlimited" number at `limit`.
    fn cap(&mut self, field: &'static str, slot: fn(&mut InferenceParams) -> &mut u32, limit: u32, reason: &str) {
        let value = slot(&mut self.params);
        // No limit: 0 ("the default") stays the default rather than becoming u32::MAX.
        if limit == u32::MAX {
            return;
        }
        if *value == 0 || *value > limit {
            let from = show(*value);
            *value = limit;
            self.changes.push(Adjustment { field, from, to: limit.to_string(), reason: reason.to_owned() });
        }
    }

    /// Set a flag to `to` if it differs.
    fn flag(&mut self, field: &'static str, slot: fn(&mut InferenceParams) -> &mut bool, to: bool, reason: &str) {
        let value = slot(&mut self.params);
        if *value != to {
            let from = value.to_string();
            *value = to;
            self.changes.push(Adjustment { field, from, to: to.to_string(), reason: reason.to_owned() });
        }
    }
}

const MAX_TOKENS: fn(&mut InferenceParams) -> &mut u32 = |p| &mut p.max_tokens;
const THREADS: fn(&mut InferenceParams) -> &mut u32 = |p| &mut p.threads;
const BATCH: fn(&mut InferenceParams) -> &mut u32 = |p| &mut p.batch_size;
const CONTEXT: fn(&mut InferenceParams) -> &mut u32 = |p| &mut p.context_length;
const GPU: fn(&mut InferenceParams) -> &mut bool = |p| &mut p.use_gpu;
const CLOUD: fn(&mut InferenceParams) -> &mut bool = |p| &mut p.prefer_cloud;
const CACHE: fn(&mut InferenceParams) -> &mut bool = |p| &mut p.cache_enabled;

/// Adjust `params` for `profile`, `config` and the device `state`. Returns the
/// adjusted parameters and every change, in the order applied. Each change is
/// also logged.
pub fn adapt(
    params: InferenceParams,
    profile: PowerProfile,
    config: &AdaptiveConfig,
    state: &DeviceState,
) -> (InferenceParams, Vec<Adjustment>) {
    let (params, changes) = adapt_quietly(params, profile, config, state);
    for change in &changes {
        tracing::info!(target: "rustai::adaptive", "{change}");
    }
    (params, changes)
}

/// The battery level when the battery rule applies (discharging below the threshold).
fn low_battery(config: &AdaptiveConfig, state: &DeviceState) -> Option<u8> {
    if !config.battery_aware || state.battery != BatteryState::Discharging {
        return None;
    }
    state.battery_percent.filter(|&p| p < config.battery_threshold)
}

/// Whether the rules prefer a remote model now (the profile says so, or the battery rule
/// applies): what choosing among candidates needs to know before adapting a request.
pub(crate) fn prefers_cloud(profile: PowerProfile, config: &AdaptiveConfig, state: &DeviceState) -> bool {
    profile.limits().prefer_cloud || low_battery(config, state).is_some()
}

/// [`adapt`] without logging.
fn adapt_quietly(
    params: InferenceParams,
    profile: PowerProfile,
    config: &AdaptiveConfig,
    state: &DeviceState,
) -> (InferenceParams, Vec<Adjustment>) {
    let mut a = Adjuster { params, changes: Vec::new() };
    let limits = profile.limits();
    let why = format!("power profile {}", profile.name());
    a.cap("threads", THREADS, limits.max_threads, &why);
    a.cap("max_tokens", MAX_TOKENS, limits.max_local_tokens, &why);
    a.cap("batch_size", BATCH, limits.batch_size, &why);
    a.cap("context_length", CONTEXT, limits.context_length, &why);
    if !limits.use_gpu {
        a.flag("use_gpu", GPU, false, &why);
    }
    if limits.prefer_cloud {
        a.flag("prefer_cloud", CLOUD, true, &why);
    }
    if !limits.caching {
        a.flag("cache_enabled", CACHE, false, &why);
    }

    if config.thermal_aware {
        match state.thermal {
            ThermalState::Critical => {
                let why = "thermal state critical";
                a.cap("max_tokens", MAX_TOKENS, 50, why);
                a.cap("batch_size", BATCH, 1, why);
                a.flag("use_gpu", GPU, false, why);
            }
            ThermalState::Serious => {
                let why = "thermal state serious";
                a.cap("max_tokens", MAX_TOKENS, 200, why);
                a.cap("batch_size", BATCH, 2, why);
            }
            ThermalState::Fair => a.cap("batch_size", BATCH, 4, "thermal state fair"),
            ThermalState::Nominal => {}
        }
    }
    if let Some(level) = low_battery(config, state) {
        let why = format!("battery at {level}% and discharging (threshold {}%)", config.battery_threshold);
        a.flag("prefer_cloud", CLOUD, true, &why);
        a.cap("threads", THREADS, 2, &why);
    }
    if config.memory_aware {
        match state.memory {
            MemoryPressure::Critical => {
                let why = "memory pressure critical";
                a.cap("context_length", CONTEXT, 1024, why);
                a.flag("cache_enabled", CACHE, false, why);
            }
            MemoryPressure::Warning => a.cap("context_length", CONTEXT, 2048, "memory pressure warning"),
            MemoryPressure::Normal => {}
        }
    }
    (a.params, a.changes)
}

#[cfg(test)]
mod tests;
