//! What every command shares: the plugin and model folders, the configuration files,
//! the [`Engine`] every model command goes through (the same entry points as the
//! server), and turning CLI flags into ABI parameters.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, Result};
use rustai_core::{
    abi::{Completion, ROption, RString, SamplingParams},
    engine::adaptive::{PowerProfile, ProfileLimits},
    Engine, EngineConfig, LlmModel, LoadOptions, PluginConfigs, PluginManager, Prepared, Registry, RegistryOptions,
};

use crate::cli::{Cli, ModelArgs, SamplingArgs};

fn home_dir(sub: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustai").join(sub))
}

/// The plugin folders to search.
pub(crate) fn plugin_dirs(cli: &Cli) -> Vec<PathBuf> {
    if cli.plugin_dirs.is_empty() {
        std::iter::once(PathBuf::from("plugins-dist")).chain(home_dir("plugins")).collect()
    } else {
        cli.plugin_dirs.clone()
    }
}

/// The model folders to search.
pub(crate) fn model_dirs(cli: &Cli) -> Vec<PathBuf> {
    if cli.model_dirs.is_empty() {
        std::iter::once(PathBuf::from("models")).chain(home_dir("models")).collect()
    } else {
        cli.model_dirs.clone()
    }
}

/// The model registry over the model folders and models.toml.
pub(crate) fn registry(cli: &Cli) -> Result<Registry> {
    registry_with(cli, Vec::new())
}

fn registry_with(cli: &Cli, files: Vec<PathBuf>) -> Result<Registry> {
    Ok(Registry::open(RegistryOptions { dirs: model_dirs(cli), config_file: cli.models_config.clone(), files })?)
}

/// What each plugin receives in `init`: `--plugins-config`, else `~/.rustai/plugins.toml`.
pub(crate) fn plugin_configs(cli: &Cli) -> Result<PluginConfigs> {
    match cli.plugins_config.clone().or_else(|| home_dir("plugins.toml")) {
        Some(path) => Ok(PluginConfigs::load(&path)?),
        None => Ok(PluginConfigs::none()),
    }
}

/// Load every plugin, configured; warn about rejected files.
pub(crate) fn plugins(cli: &Cli) -> Result<PluginManager> {
    let manager = PluginManager::new()?;
    manager.set_configs(plugin_configs(cli)?);
    for dir in plugin_dirs(cli) {
        manager.load_dir(&dir)?;
    }
    for r in manager.rejected() {
        tracing::warn!("skipped {r}");
    }
    Ok(manager)
}

/// The engine a one-off command runs on: no device monitor, no profile limits (the
/// flags say what the user wants), `slots` decode slots for a language model (0 = the
/// plugin's default).
fn command_engine(plugins: PluginManager, registry: Registry, slots: u32) -> Engine {
    let config = EngineConfig { profile: PowerProfile::Custom(ProfileLimits::unlimited()), slots, ..EngineConfig::default() };
    Engine::new(plugins, registry, None, config)
}

/// An engine over the plugins and models (for the embedding and speech commands).
pub(crate) fn engine(cli: &Cli) -> Result<Engine> {
    Ok(command_engine(plugins(cli)?, registry(cli)?, 0))
}

/// A language model leased from the engine for a command.
pub(crate) struct Loaded {
    /// The model, the entry it came from, what the engine adapted.
    pub(crate) prepared: Prepared,
    pub(crate) load_ms: f64,
    engine: Engine,
}

impl Loaded {
    /// The loaded model.
    pub(crate) fn model(&self) -> &LlmModel {
        &self.prepared.lease
    }

    /// The engine the model was leased from.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

        /// Record a finished generation in the engine's metrics (as the server does).
    pub(crate) fn record(&self, outcome: std::result::Result<&Completion, &rustai_core::Error>) {
        self.engine.record(&self.prepared, outcome);
    }
}

/// Resolve, pick the plugin, adapt `sampling`, load: [`Engine::prepare_llm`], as the
/// server's requests do.
pub(crate) fn load_model(cli: &Cli, args: &ModelArgs, threads: u32, sampling: &mut SamplingParams) -> Result<Loaded> {
    load_model_with(cli, args, threads, None, sampling)
}

/// [`load_model`] with a number of slots (the `parallel` load option; `None` = the plugin's default).
pub(crate) fn load_model_with(cli: &Cli, args: &ModelArgs, threads: u32, slots: Option<u32>, sampling: &mut SamplingParams) -> Result<Loaded> {
    let plugins = plugins(cli)?;
    // A path on the command line is a model too, whether or not it is in a model folder.
    let path = std::path::Path::new(&args.model);
    let (registry, name) = if path.exists() {
        Registry::entry_for_path(path)?; // a clear error if it is not a model
        let registry = registry_with(cli, vec![path.to_path_buf()])?;
        // Its id in the registry (models.toml may name the file otherwise).
        let id = registry.entry_at(path).map(|e| e.id).with_context(|| format!("{} is not a usable model here", path.display()))?;
        (registry, id)
    } else {
        (registry(cli)?, args.model.clone())
    };
    let engine = command_engine(plugins, registry, slots.unwrap_or(0));
    let options = LoadOptions { context_length: args.ctx, threads, gpu_layers: args.gpu_layers, keep_alive: None, plugin: args.plugin.clone() };
    let started = Instant::now();
    let spinner = indicatif::ProgressBar::new_spinner().with_message(format!("loading {name}"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let prepared = engine.prepare_llm(&name, &options, sampling);
    spinner.finish_and_clear();
    let prepared = prepared.map_err(|e| {
        // Where plugins were looked for, when the trouble is a missing plugin.
        let plugin_trouble = matches!(e, rustai_core::Error::NoPluginFor(_) | rustai_core::Error::UnknownPlugin(_) | rustai_core::Error::MissingFamily { .. });
        let dirs = plugin_dirs(cli).iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
        if plugin_trouble { anyhow::Error::new(e).context(format!("looked for plugins in {dirs}")) } else { e.into() }
    })?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(Loaded { prepared, load_ms, engine })
}

/// ABI sampling parameters from the flags.
pub(crate) fn sampling(args: &SamplingArgs) -> Result<SamplingParams> {
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let opt = |v: Option<String>| match v {
        Some(s) => ROption::RSome(RString::from(s)),
        None => ROption::RNone,
    };
    Ok(SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: 64,
        seed: args.seed.into(),
        max_tokens: args.max_tokens,
        stop: args.stop.iter().map(|s| RString::from(s.as_str())).collect(),
        grammar: opt(args.grammar.as_ref().map(read).transpose()?),
        json_schema: opt(args.json_schema.as_ref().map(read).transpose()?),
        ignore_eos: false,
    })
}
