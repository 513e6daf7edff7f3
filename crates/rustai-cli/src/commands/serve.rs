//! `rustai serve` (the HTTP server, with hot reload of plugins and models) and
//! `rustai ps` (what a running server has loaded, asked through `rustai_server::client`).

use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use rustai_core::{
    engine::{
        adaptive::{AdaptiveConfig, PowerProfile},
        monitor::{ResourceMonitor, SystemSource},
    },
    Budget, Engine, EngineConfig, KeepAlive,
};
use rustai_server::ServerConfig;

use crate::{
    cli::{Cli, PsArgs, ServeArgs},
    commands::plugins::human_size,
    setup,
};

/// "75%" of `total`, or a size such as "2GiB", "500MiB", "1500000000".
fn parse_budget(text: &str, total: u64) -> Result<u64> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        let p: u8 = p.trim().parse().with_context(|| format!("budget {text}: a percentage from 1 to 100"))?;
        return Ok(Budget::percent_of(total, p).max_bytes);
    }
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().with_context(|| format!("budget {text}: use e.g. 75%, 2GiB or 500MiB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => bail!("budget {text}: unknown unit `{other}`"),
    };
    Ok((n * scale as f64) as u64)
}

fn parse_profile(name: &str) -> Result<PowerProfile> {
    Ok(match name {
        "performance" => PowerProfile::Performance,
        "balanced" => PowerProfile::Balanced,
        "power-saver" | "powersaver" => PowerProfile::PowerSaver,
        "ultra-saver" | "ultrasaver" => PowerProfile::UltraSaver,
        other => bail!("unknown power profile `{other}` (performance, balanced, power-saver, ultra-saver)"),
    })
}

fn api_keys(args: &ServeArgs) -> Result<Vec<String>> {
    let mut keys: Vec<String> = std::env::var("RUSTAI_API_KEYS").unwrap_or_default().split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned).collect();
    if let Some(file) = &args.api_key_file {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        keys.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned));
    }
    Ok(keys)
}

pub(crate) fn run(cli: &Cli, args: &ServeArgs) -> Result<()> {
    let plugins = setup::plugins(cli)?;
    let registry = setup::registry(cli)?;
    let monitor = match SystemSource::new() {
        Ok(s) => Some(ResourceMonitor::new(Box::new(s), 60)),
        Err(e) => {
            tracing::warn!("no resource readings ({e}); adapting to the power profile only");
            None
        }
    };
    // Without readings, a percentage budget is taken of 8 GiB.
    let total = monitor.as_ref().map_or(8 << 30, |m| m.sample().memory_total);
    let budget = Budget {
        max_bytes: parse_budget(&args.budget, total)?,
        max_loaded: args.max_loaded.max(1),
        default_keep_alive: KeepAlive::from_secs_f64(args.keep_alive),
    };
    let config = EngineConfig {
        budget,
        profile: parse_profile(&args.profile)?,
        adaptive: AdaptiveConfig::default(),
        reap_every: Duration::from_secs(1),
        slots: u32::try_from(args.parallel).unwrap_or(1),
    };
    let keys = api_keys(args)?;
    let engine = Engine::new(plugins.clone(), registry.clone(), monitor, config);
    // Hot reload: plugins and models follow their folders while serving.
    let _watchers = if args.no_watch { None } else { Some((plugins.watch()?, registry.watch(Duration::from_millis(500))?)) };
    let server = ServerConfig {
        addr: args.host,
        api_keys: keys,
        body_limit: args.body_limit,
        parallel: usize::try_from(args.parallel).unwrap_or(1),
        max_queue: args.max_queue,
        rate_limit_per_minute: args.rate_limit,
        upstream: args.upstream.clone(),
        stall_timeout: Duration::from_secs_f64(args.stall_timeout),
        read_timeout: Duration::from_secs_f64(args.read_timeout),
        tool_timeout: Duration::from_secs_f64(args.tool_timeout),
        max_audio_secs: args.max_audio_secs,
        allow_private_downloads: args.allow_private_downloads,
        max_download_bytes: args.max_download_bytes,
        allowed_origins: args.allowed_origins.clone(),
        allowed_hosts: args.allowed_hosts.clone(),
        ..ServerConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(server.addr).await.with_context(|| format!("cannot listen on {}", server.addr))?;
        let addr = listener.local_addr()?;
        tracing::info!(
            %addr,
            models = registry.len(),
            plugins = plugins.plugins().len(),
            budget = %human_size(budget.max_bytes),
            auth = !server.api_keys.is_empty(),
            "RustAI listening"
        );
        println!("listening on http://{addr}");
        rustai_server::serve(listener, engine, server, shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

pub(crate) fn ps(args: &PsArgs) -> Result<()> {
    let key = std::env::var("RUSTAI_API_KEY").ok().filter(|k| !k.is_empty());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let models = rt
        .block_on(rustai_server::client::running_models(&args.host, key.as_deref()))
        .with_context(|| format!("is `rustai serve` running at {}?", args.host))?;
    if models.is_empty() {
        println!("no models loaded");
        return Ok(());
    }
    let ago = |t: Option<SystemTime>| -> String {
        t.and_then(|t| SystemTime::now().duration_since(t).ok())
            .map_or_else(|| "?".into(), |d| format!("{} ago", humantime::format_duration(Duration::from_secs(d.as_secs()))))
    };
    let until = |t: Option<SystemTime>| -> String {
        match t.and_then(|t| t.duration_since(SystemTime::now()).ok()) {
            Some(d) if d.as_secs() > 10 * 365 * 86_400 => "forever".into(),
            Some(d) => format!("in {}", humantime::format_duration(Duration::from_secs(d.as_secs()))),
            None => "now".into(),
        }
    };
    println!("{:<32} {:>10}  {:<8} {:<10} {:<8} {:<14} UNLOADS", "NAME", "SIZE", "PLUGIN", "FAMILY", "STATE", "LAST USE");
    for m in models {
        let state = if m.in_use { "serving" } else { "idle" };
        println!(
            "{:<32} {:>10}  {:<8} {:<10} {:<8} {:<14} {}",
            m.name.as_deref().unwrap_or("?"),
            human_size(m.size),
            m.plugin.as_deref().unwrap_or("?"),
            m.family.as_deref().unwrap_or("?"),
            state,
            ago(m.last_used),
            if state == "serving" { "after the request".into() } else { until(m.expires_at) }
        );
    }
    Ok(())
}
