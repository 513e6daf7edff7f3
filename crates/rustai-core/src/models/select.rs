//! Choosing a model for a request: filter by what is required, score by what
//! is preferred, and say why (the design document's section 3.3).
//!
//! Every point of a score comes with a line of explanation, and every model
//! left out comes with the reason, so `rustai select --explain` and logs can
//! show exactly why a model was chosen.

use std::collections::BTreeMap;

use super::{registry::Registry, ModelEntry, Task};
use crate::{
    error::{Error, Result},
    engine::monitor::ResourceSnapshot,
    plugins::PluginManager,
};

/// What the caller needs and prefers.
#[derive(Debug, Clone)]
pub struct SelectionCriteria {
    /// The task.
    pub task: Task,
    /// +50 for models on this machine.
    pub prefer_local: bool,
    /// +50 for remote models (set by power profiles that prefer the cloud).
    pub prefer_cloud: bool,
    /// + half the known tokens/s.
    pub prefer_speed: bool,
    /// + 20 × quality (0–1; from `models.toml` or estimated from the parameter count).
    pub prefer_quality: bool,
    /// + 30 × power efficiency.
    pub battery_sensitive: bool,
    /// Leave out models whose typical time to first token is longer.
    pub max_latency_ms: Option<u64>,
    /// Tags a model must have.
    pub required_tags: Vec<String>,
    /// +10 for each of these tags a model has.
    pub preferred_tags: Vec<String>,
    /// Capabilities a model must have (`chat_template`, `grammar`, `streaming`, ...).
    pub required_capabilities: Vec<String>,
}

impl SelectionCriteria {
    /// Criteria for `task` with no preferences.
    pub fn new(task: Task) -> Self {
        Self {
            task,
            prefer_local: false,
            prefer_cloud: false,
            prefer_speed: false,
            prefer_quality: false,
            battery_sensitive: false,
            max_latency_ms: None,
            required_tags: Vec::new(),
            preferred_tags: Vec::new(),
            required_capabilities: Vec::new(),
        }
    }
}

/// What selection can know beyond the registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct SelectContext<'a> {
    /// Current machine state (memory available).
    pub resources: Option<&'a ResourceSnapshot>,
    /// Loaded plugins: a model no plugin can serve is left out; plugin features count as capabilities.
    pub plugins: Option<&'a PluginManager>,
    /// Observed tokens/s per model id (from [`crate::Metrics`]).
    pub observed_tokens_per_s: Option<&'a BTreeMap<String, f64>>,
}

/// A model that meets the requirements, with its score.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The model.
    pub entry: ModelEntry,
    /// Its score.
    pub score: f64,
    /// One line per contribution to the score.
    pub reasons: Vec<String>,
}

/// A model for the task that was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    /// Its id.
    pub id: String,
    /// Why.
    pub reason: String,
}

/// The outcome of a selection.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Every candidate, best first (the first is the choice).
    pub ranking: Vec<Candidate>,
    /// Models for the task that did not meet the requirements.
    pub excluded: Vec<Excluded>,
}

impl Selection {
    /// The chosen model.
    pub fn chosen(&self) -> &Candidate {
        &self.ranking[0]
    }

    /// A human-readable account of the choice.
    pub fn explain(&self) -> String {
        let mut out = format!("chose `{}` (score {:.1})\n", self.chosen().entry.id, self.chosen().score);
        for c in &self.ranking {
            out += &format!("  {:>7.1}  {}: {}\n", c.score, c.entry.id, c.reasons.join(", "));
        }
        for e in &self.excluded {
            out += &format!("  excluded {}: {}\n", e.id, e.reason);
        }
        out
    }
}

/// Capabilities of a model: its task, what its files show, `config.capabilities`, and its plugin's features.
fn capabilities(entry: &ModelEntry, plugins: Option<&PluginManager>) -> Vec<String> {
    let mut caps = vec![entry.task.as_str().to_owned()];
    if entry.task == Task::Chat {
        caps.push("completion".into());
    }
    if entry.meta.chat_template {
        caps.push("chat_template".into());
    }
    if let Some(list) = entry.config.get("capabilities").and_then(|v| v.as_array()) {
        caps.extend(list.iter().filter_map(|v| v.as_str().map(str::to_owned)));
    }
    if let Some(plugin) = plugins.and_then(|p| Registry::plugin_for(entry, p)) {
        caps.extend(plugin.info().capabilities.features.iter().map(|f| f.to_string()));
    }
    caps
}

/// Quality in 0..1: stated, or estimated from the parameter count (log scale).
fn quality(entry: &ModelEntry) -> (f64, &'static str) {
    if let Some(q) = entry.constraints.quality_score {
        return (q.clamp(0.0, 1.0), "stated");
    }
    match entry.meta.parameters {
        // 10M parameters -> 0, 1T -> 1.
        Some(p) if p > 0 => ((((p as f64).log10() - 7.0) / 5.0).clamp(0.05, 1.0), "estimated from parameters"),
        _ => (0.5, "unknown; assumed"),
    }
}

/// Power efficiency in 0..1: from the stated draw, else 1 for remote models and by size for local ones.
fn efficiency(entry: &ModelEntry) -> (f64, String) {
    if let Some(mw) = entry.constraints.max_battery_draw_mw {
        return ((1.0 - mw as f64 / 1000.0).clamp(0.0, 1.0), format!("draws {mw} mW"));
    }
    if !entry.is_local() {
        return (1.0, "remote: no local draw".into());
    }
    let gib = entry.size as f64 / (1u64 << 30) as f64;
    ((1.0 - gib / 8.0).clamp(0.0, 1.0), format!("{gib:.2} GiB local model"))
}

fn check(entry: &ModelEntry, c: &SelectionCriteria, ctx: &SelectContext<'_>) -> std::result::Result<(), String> {
    let missing: Vec<&str> = c.required_tags.iter().filter(|t| !entry.tags.contains(t)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(format!("lacks tag(s) {}", missing.join(", ")));
    }
    let caps = capabilities(entry, ctx.plugins);
    let missing: Vec<&str> = c.required_capabilities.iter().filter(|r| !caps.contains(r)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(format!("lacks capability {}", missing.join(", ")));
    }
    if let Some(plugins) = ctx.plugins {
        if Registry::plugin_for(entry, plugins).is_none() {
            return Err(match &entry.provider {
                Some(p) => format!("its plugin `{p}` is not loaded"),
                None => format!("no loaded plugin reads {} models for {}", entry.format.as_str(), entry.task.as_str()),
            });
        }
    }
    if let Some(r) = ctx.resources {
        let avail_mb = r.memory_available >> 20;
        if let Some(min) = entry.constraints.min_memory_mb.filter(|m| *m > avail_mb) {
            return Err(format!("needs {min} MiB free, {avail_mb} MiB available"));
        }
        if entry.is_local() && entry.size > r.memory_available {
            return Err(format!("its {} MiB do not fit in the {avail_mb} MiB available", entry.size >> 20));
        }
    }
    if let (Some(max), Some(typ)) = (c.max_latency_ms, entry.constraints.typical_latency_ms) {
        if typ > max {
            return Err(format!("typical latency {typ} ms exceeds {max} ms"));
        }
    }
    Ok(())
}

fn score(entry: &ModelEntry, c: &SelectionCriteria, ctx: &SelectContext<'_>) -> Candidate {
    let mut score = f64::from(entry.priority);
    let mut reasons = vec![format!("priority {}", entry.priority)];
    let mut add = |points: f64, why: String| {
        score += points;
        reasons.push(format!("{points:+.1} {why}"));
    };
    if c.prefer_local && entry.is_local() {
        add(50.0, "local".into());
    }
    if c.prefer_cloud && !entry.is_local() {
        add(50.0, "remote (cloud preferred)".into());
    }
    if c.battery_sensitive {
        let (e, why) = efficiency(entry);
        add(e * 30.0, format!("battery efficiency {e:.2} ({why})"));
    }
    if c.prefer_speed {
        let observed = ctx.observed_tokens_per_s.and_then(|m| m.get(&entry.id)).copied();
        match observed.map(|t| (t, "observed")).or(entry.constraints.tokens_per_sec.map(|t| (t, "stated"))) {
            Some((tps, how)) => add(tps * 0.5, format!("speed {tps:.1} tokens/s ({how})")),
            None => add(0.0, "speed unknown".into()),
        }
    }
    if c.prefer_quality {
        let (q, how) = quality(entry);
        add(q * 20.0, format!("quality {q:.2} ({how})"));
    }
    for t in c.preferred_tags.iter().filter(|t| entry.tags.contains(t)) {
        add(10.0, format!("tag {t}"));
    }
    Candidate { entry: entry.clone(), score, reasons }
}

impl Registry {
    /// Choose the best model for `criteria`; the error lists why each model for the task was left out.
    pub fn select(&self, criteria: &SelectionCriteria, ctx: &SelectContext<'_>) -> Result<Selection> {
        let mut ranking = Vec::new();
        let mut excluded = Vec::new();
        for entry in self.entries().iter().filter(|e| e.task.serves(criteria.task)) {
            match check(entry, criteria, ctx) {
                Ok(()) => ranking.push(score(entry, criteria, ctx)),
                Err(reason) => excluded.push(Excluded { id: entry.id.clone(), reason }),
            }
        }
        if ranking.is_empty() {
            let mut reasons: Vec<String> = excluded.iter().map(|e| format!("{}: {}", e.id, e.reason)).collect();
            if reasons.is_empty() {
                reasons.push("no model for this task is installed".into());
            }
            return Err(Error::NoSuitableModel { task: criteria.task.as_str().into(), reasons });
        }
        ranking.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.entry.id.cmp(&b.entry.id)));
        let selection = Selection { ranking, excluded };
        tracing::debug!(explanation = %selection.explain(), "model selection");
        Ok(selection)
    }
}
