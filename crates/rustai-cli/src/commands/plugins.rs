//! `rustai plugins`.

use anyhow::Result;
use rustai_core::abi::HealthStatus;

use crate::{
    cli::{Cli, PluginsArgs},
    setup,
};

pub(crate) fn plugins(cli: &Cli, args: &PluginsArgs) -> Result<()> {
    let manager = setup::plugins(cli)?;
    let dirs = setup::plugin_dirs(cli);
    if args.watch {
        return watch(&manager);
    }
    if manager.plugins().is_empty() && manager.rejected().is_empty() {
        println!(
            "no plugins found in {} (build them with scripts/build-plugins.sh)",
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        return Ok(());
    }
    println!("{:<12} {:<9} {:<10} {:<10} {:<9} PATH", "ID", "VERSION", "CATEGORY", "FAMILIES", "STATUS");
    for p in manager.plugins() {
        let health = p.health();
        let status = match health.status {
            HealthStatus::Healthy => "active".to_owned(),
            HealthStatus::Degraded => format!("degraded: {}", health.message),
            HealthStatus::Unhealthy => format!("unhealthy: {}", health.message),
        };
        println!(
            "{:<12} {:<9} {:<10} {:<10} {:<9} {}",
            p.id(),
            p.info().version,
            p.info().category.as_str(),
            p.families().join(","),
            status,
            p.path().display()
        );
    }
    if !manager.rejected().is_empty() {
        println!("\nrejected:");
        for r in manager.rejected() {
            println!("  {}\n    {}", r.path.display(), r.reason);
        }
    }
    Ok(())
}

/// Print the current state, then every lifecycle event until interrupted.
fn watch(manager: &rustai_core::PluginManager) -> Result<()> {
    let mut events = manager.subscribe();
    let watcher = manager.watch()?;
    let dirs: Vec<String> = watcher.dirs().iter().map(|d| d.display().to_string()).collect();
    println!("watching {} (Ctrl-C stops)", dirs.join(", "));
    for p in manager.plugins() {
        println!("{:<10} {} {} ({})", "active", p.id(), p.version(), p.path().display());
    }
    for r in manager.rejected() {
        println!("{:<10} ({}): {}", "rejected", r.path.display(), r.reason);
    }
    loop {
        match events.blocking_recv() {
            Ok(event) => println!("{event}"),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => println!("({n} events missed)"),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}
