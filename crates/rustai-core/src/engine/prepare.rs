//! The text path: [`Engine::prepare_llm`] resolves a model (or chooses one for `auto`),
//! walks its fallbacks, adapts the request to the power profile and the device once, and
//! leases the model; [`Prepared`] carries it to [`Engine::record`].

use std::time::{Duration, Instant};

use rustai_abi::{LoadModelParams, SamplingParams};

use super::{
    adaptive::{adapt, prefers_cloud, AdaptiveConfig, Adjustment, DeviceState, InferenceParams, PowerProfile},
    budget::KeepAlive,
    default_threads,
    monitor::ResourceMonitor,
    pool::Lease,
    Engine, AUTO, DEFAULT_CONTEXT,
};
use crate::{
    error::{Error, Result},
    models::{ModelEntry, SelectContext, SelectionCriteria, Task},
};

/// Whether a failure to prepare one model should move on to the next candidate.
fn falls_back(e: &Error) -> bool {
    match e {
        Error::OverBudget { .. } | Error::NoPluginFor(_) | Error::UnknownPlugin(_) | Error::MissingFamily { .. } => true,
        Error::Plugin { source, .. } => matches!(
            source.kind,
            rustai_abi::ErrorKind::NotReady | rustai_abi::ErrorKind::ResourceExhausted | rustai_abi::ErrorKind::Backend
        ),
        _ => false,
    }
}

/// `extra` (a JSON object, or empty) with `key` set to `value` unless it already has it.
fn with_default_option(extra: &str, key: &str, value: serde_json::Value) -> String {
    let mut map = match serde_json::from_str::<serde_json::Value>(extra) {
        Ok(serde_json::Value::Object(m)) => m,
        // Not an object: left for the plugin to refuse with its own message.
        _ if !extra.trim().is_empty() => return extra.to_owned(),
        _ => serde_json::Map::new(),
    };
    map.entry(key.to_owned()).or_insert(value);
    serde_json::Value::Object(map).to_string()
}

/// Per-request load settings (0 = from `models.toml`, else the default).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Context length.
    pub context_length: u32,
    /// CPU threads.
    pub threads: u32,
    /// GPU layers (-1 = all).
    pub gpu_layers: i32,
    /// Keep-alive after this request (`None` = the budget's default).
    pub keep_alive: Option<KeepAlive>,
    /// Use this plugin instead of the model's.
    pub plugin: Option<String>,
}

/// A request ready to run: the model leased, the parameters adapted.
#[derive(Debug)]
pub struct Prepared {
    /// The registry entry that serves the request.
    pub entry: ModelEntry,
    /// The model; held until the request ends.
    pub lease: Lease,
    /// What the adaptive rules changed, and why.
    pub adjustments: Vec<Adjustment>,
    /// Time spent looking up and (if needed) loading the model.
    pub load_duration: Duration,
    /// When preparation started.
    pub started: Instant,
    /// Models tried before this one, with why they could not serve.
    pub fell_back_from: Vec<(String, String)>,
    /// CPU threads for this request (after the adaptive rules): the physical cores available
    /// unless the request or `models.toml` says otherwise, capped by the power profile.
    /// Pass it on in [`crate::abi::SamplingExtras::threads`].
    pub threads: u32,
}

impl Prepared {
    /// The plugin serving the model.
    pub fn plugin_id(&self) -> &str {
        self.lease.plugin_id()
    }
}

impl Engine {
    /// Steps 1–3 for a text request: resolve, adapt `sampling` and the load settings, lease the model.
    ///
    /// `model` may be [`AUTO`]: the registry's selection picks (preferring local models, or
    /// remote ones when the power profile or battery says so). A model whose `models.toml`
    /// config names a `fallback` falls back to it when it cannot be loaded (over the memory
    /// budget, plugin missing or not ready); [`Prepared::entry`] is the model that served and
    /// [`Prepared::fell_back_from`] says what was tried first and why it failed.
    pub fn prepare_llm(&self, model: &str, options: &LoadOptions, sampling: &mut SamplingParams) -> Result<Prepared> {
        // Every value in range before anything is loaded or allocated.
        sampling.validate()?;
        let started = Instant::now();
        let (profile, rules) = self.policy();
        let state = self.device_state();
        // Which candidate comes first depends on this; the request itself is adapted once, below.
        let prefer_cloud = prefers_cloud(profile, &rules, &state);
        let mut chain = self.candidates(model, prefer_cloud)?;
        let mut reordered = None;
        if prefer_cloud && model != AUTO {
            // Remote fallbacks first when the device should save power.
            if let Some(pos) = chain.iter().position(|e| !e.is_local()).filter(|p| *p > 0) {
                let remote = chain.remove(pos);
                reordered = Some(Adjustment {
                    field: "model",
                    from: chain[0].id.clone(),
                    to: remote.id.clone(),
                    reason: "the power profile / battery prefers a remote model".into(),
                });
                chain.insert(0, remote);
            }
        }
        let mut fell_back_from = Vec::new();
        let mut last = None;
        for entry in chain {
            let mut attempt = sampling.clone();
            match self.prepare_entry(&entry, options, &mut attempt, &state, profile, rules) {
                Ok(mut prepared) => {
                    *sampling = attempt;
                    prepared.adjustments.extend(reordered);
                    prepared.fell_back_from = fell_back_from;
                    prepared.started = started;
                    prepared.load_duration = started.elapsed();
                    return Ok(prepared);
                }
                Err(e) if falls_back(&e) => {
                    tracing::warn!(model = %entry.id, "cannot serve from this model ({e}); trying the next candidate");
                    fell_back_from.push((entry.id.clone(), e.to_string()));
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::NoSuitableModel { task: "completion".into(), reasons: vec!["no candidates".into()] }))
    }

    /// The models to try for `model`, in order.
    fn candidates(&self, model: &str, prefer_cloud: bool) -> Result<Vec<ModelEntry>> {
        if model == AUTO {
            let criteria = SelectionCriteria { prefer_local: !prefer_cloud, prefer_cloud, ..SelectionCriteria::new(Task::Chat) };
            let snapshot = self.monitor().map(ResourceMonitor::current);
            let ctx = SelectContext { resources: snapshot.as_ref(), plugins: Some(&self.inner.plugins), observed_tokens_per_s: None };
            let selection = self.inner.registry.select(&criteria, &ctx)?;
            tracing::info!(explanation = %selection.explain(), "auto model selection");
            return Ok(selection.ranking.into_iter().map(|c| c.entry).collect());
        }
        let mut chain = vec![self.resolve(model, Task::Completion)?];
        while chain.len() < 4 {
            let Some(next) = chain.last().and_then(|e| e.config.get("fallback")).and_then(serde_json::Value::as_str) else { break };
            let entry = match self.resolve(next, Task::Completion) {
                Ok(e) => e,
                Err(e) => {
                    // A broken fallback must not break the model it backs up.
                    tracing::warn!(model = %chain.last().map_or("", |m| m.id.as_str()), "fallback `{next}` is unusable: {e}");
                    break;
                }
            };
            if chain.iter().any(|e| e.id == entry.id) {
                break;
            }
            chain.push(entry);
        }
        Ok(chain)
    }

    fn prepare_entry(
        &self,
        entry: &ModelEntry,
        options: &LoadOptions,
        sampling: &mut SamplingParams,
        state: &DeviceState,
        profile: PowerProfile,
        rules: AdaptiveConfig,
    ) -> Result<Prepared> {
        let started = Instant::now();
        let from_config = |key: &str| entry.config.get(key).and_then(serde_json::Value::as_i64);
        let pick = |asked: u32, key: &str, default: u32| match asked {
            0 => from_config(key).and_then(|v| u32::try_from(v).ok()).unwrap_or(default),
            n => n,
        };
        let trained = entry.meta.context_length.map_or(DEFAULT_CONTEXT, |c| u32::try_from(c).unwrap_or(u32::MAX));
        let asked = InferenceParams {
            max_tokens: sampling.max_tokens,
            threads: pick(options.threads, "threads", default_threads()),
            batch_size: 0,
            context_length: pick(options.context_length, "context_length", DEFAULT_CONTEXT.min(trained)),
            use_gpu: options.gpu_layers != 0 || from_config("gpu_layers").is_some_and(|g| g != 0),
            prefer_cloud: false,
            cache_enabled: true,
        };
        let (mut adapted, mut adjustments) = adapt(asked, profile, &rules, state);
        // A context beyond what the model was trained with is cut to it (the plugin would do so
        // silently): say so, with the true origin.
        if entry.meta.context_length.is_some() && adapted.context_length > trained {
            adjustments.push(Adjustment {
                field: "context_length",
                from: adapted.context_length.to_string(),
                to: trained.to_string(),
                reason: format!("the model was trained with a context of {trained} tokens"),
            });
            adapted.context_length = trained;
        }
        // The design's batch_size (requests batched together) has no per-request knob in the
        // plugins yet, so it is not applied and not reported as applied.
        adjustments.retain(|a| a.field != "batch_size");
        sampling.max_tokens = adapted.max_tokens;
        let gpu_layers = if options.gpu_layers != 0 { options.gpu_layers } else { from_config("gpu_layers").map_or(0, |g| g as i32) };
        let mut params = LoadModelParams {
            context_length: adapted.context_length,
            threads: adapted.threads,
            gpu_layers: if adapted.use_gpu { gpu_layers } else { 0 },
            ..entry.load_params()
        };
        if self.inner.slots > 0 && entry.is_local() {
            params.extra_json = with_default_option(params.extra_json.as_str(), "parallel", self.inner.slots.into()).into();
        }
        let lease = self.lease_entry(entry, &params, options)?;
        Ok(Prepared {
            entry: entry.clone(),
            lease,
            adjustments,
            load_duration: started.elapsed(),
            started,
            fell_back_from: Vec::new(),
            threads: adapted.threads,
        })
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_option_is_added_unless_the_model_config_sets_it() {
        assert_eq!(with_default_option("", "parallel", 4.into()), r#"{"parallel":4}"#);
        let kept: serde_json::Value = serde_json::from_str(&with_default_option(r#"{"parallel":2,"x":1}"#, "parallel", 4.into())).unwrap();
        assert_eq!(kept, serde_json::json!({"parallel": 2, "x": 1}));
        assert_eq!(with_default_option("[1]", "parallel", 4.into()), "[1]");
    }

    #[test]
    fn default_threads_never_exceed_the_cores_available() {
        let granted = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let t = default_threads();
        assert!(t >= 1 && t <= granted, "{t} threads for {granted} CPUs");
        // Every profile caps the default; none raises it.
        for profile in [PowerProfile::Performance, PowerProfile::Balanced, PowerProfile::PowerSaver, PowerProfile::UltraSaver] {
            let asked = InferenceParams { threads: t, ..InferenceParams::default() };
            let (p, _) = adapt(asked, profile, &AdaptiveConfig::default(), &DeviceState::default());
            assert!(p.threads <= t && p.threads <= profile.limits().max_threads, "{profile:?}");
        }
    }
}
