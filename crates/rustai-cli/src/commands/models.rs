//! `rustai models` (what the registry holds) and `rustai select` (which model, and why).

use anyhow::Result;
use rustai_core::{
    models::{ModelEntry, RegistryEvent, SelectContext},
    engine::monitor::{ResourceMonitor, SystemSource},
    PluginManager, Registry, SelectionCriteria,
};

use super::plugins::human_size;
use crate::{
    cli::{Cli, ModelsArgs, SelectArgs},
    setup,
};

fn count(n: u64) -> String {
    match n {
        0..1_000_000 => format!("{:.0}K", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.0}M", n as f64 / 1e6),
        _ => format!("{:.1}B", n as f64 / 1e9),
    }
}

/// One line of details: architecture, parameters, quantization, context, audio.
fn details(m: &ModelEntry) -> String {
    let meta = &m.meta;
    let mut parts: Vec<String> = Vec::new();
    parts.extend(meta.architecture.clone());
    parts.extend(meta.parameters.map(count));
    parts.extend(meta.quantization.clone());
    parts.extend(meta.context_length.map(|c| format!("ctx {c}")));
    parts.extend(meta.embedding_dim.filter(|_| m.task == rustai_core::Task::Embedding).map(|d| format!("dim {d}")));
    parts.extend(meta.sample_rate.map(|r| format!("{r} Hz")));
    parts.extend(meta.language.clone());
    if let rustai_core::models::Location::Remote(url) = &m.location {
        parts.push(url.clone());
    }
    parts.join(" ")
}

fn plugin_name(m: &ModelEntry, plugins: Option<&PluginManager>) -> String {
    match plugins.and_then(|p| Registry::plugin_for(m, p)) {
        Some(p) => p.id().to_owned(),
        None => match &m.provider {
            Some(p) => format!("({p}: not loaded)"),
            None => "(none loaded)".into(),
        },
    }
}

pub(crate) fn list(cli: &Cli, args: &ModelsArgs) -> Result<()> {
    let registry = setup::registry(cli)?;
    let plugins = setup::plugins(cli).map_err(|e| tracing::warn!("plugins not loaded, so the PLUGIN column is empty: {e:#}")).ok();
    if args.json {
        let models: Vec<serde_json::Value> = registry
            .entries()
            .iter()
            .map(|m| {
                let mut v = serde_json::to_value(m).unwrap_or_default();
                v["plugin"] = plugins.as_ref().and_then(|p| Registry::plugin_for(m, p)).map(|p| p.id().to_owned()).into();
                v
            })
            .collect();
        let out = serde_json::json!({ "models": models, "unrecognised": registry.unrecognised() });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    print_table(&registry, plugins.as_ref());
    if args.watch {
        let mut events = registry.subscribe();
        let _watcher = registry.watch(std::time::Duration::from_millis(300))?;
        println!("\nwatching for changes (Ctrl-C stops)");
        loop {
            match events.blocking_recv() {
                Ok(RegistryEvent::Added(id)) => println!("added    {id}"),
                Ok(RegistryEvent::Changed(id)) => println!("changed  {id}"),
                Ok(RegistryEvent::Removed(id)) => println!("removed  {id}"),
                Ok(RegistryEvent::ConfigError(e)) => println!("models.toml: {e}"),
                Ok(other) => println!("{other:?}"),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => println!("({n} events missed)"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
    Ok(())
}

fn print_table(registry: &Registry, plugins: Option<&PluginManager>) {
    let entries = registry.entries();
    if entries.is_empty() {
        let dirs: Vec<String> = registry.options().dirs.iter().map(|d| d.display().to_string()).collect();
        println!("no models found in {} (scripts/fetch-models.sh fetches small ones)", dirs.join(", "));
    } else {
        println!("{:<34} {:<10} {:<12} {:>9}  {:<12} DETAILS", "ID", "TASK", "FORMAT", "SIZE", "PLUGIN");
        for m in &entries {
            let size = if m.is_local() { human_size(m.size) } else { "-".into() };
            println!("{:<34} {:<10} {:<12} {:>9}  {:<12} {}", m.id, m.task.as_str(), m.format.as_str(), size, plugin_name(m, plugins), details(m));
        }
    }
    let unrecognised = registry.unrecognised();
    if !unrecognised.is_empty() {
        println!("\nnot usable:");
        for u in unrecognised {
            println!("  {}: {}", u.path.display(), u.reason);
        }
    }
}

pub(crate) fn select(cli: &Cli, args: &SelectArgs) -> Result<()> {
    let registry = setup::registry(cli)?;
    let plugins = setup::plugins(cli)?;
    let monitor = SystemSource::new().map(|s| ResourceMonitor::new(Box::new(s), 4)).ok();
    let snapshot = monitor.as_ref().map(ResourceMonitor::sample);
    let criteria = SelectionCriteria {
        prefer_local: args.prefer_local,
        prefer_cloud: args.prefer_cloud,
        prefer_speed: args.prefer_speed,
        prefer_quality: args.prefer_quality,
        battery_sensitive: args.battery_sensitive,
        max_latency_ms: args.max_latency_ms,
        required_tags: args.tags.clone(),
        preferred_tags: args.prefer_tags.clone(),
        required_capabilities: args.capabilities.clone(),
        ..SelectionCriteria::new(args.task)
    };
    let ctx = SelectContext { resources: snapshot.as_ref(), plugins: Some(&plugins), observed_tokens_per_s: None };
    let selection = registry.select(&criteria, &ctx)?;
    print!("{}", selection.explain());
    Ok(())
}
