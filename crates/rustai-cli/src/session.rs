//! What every model command shares: loading plugins, resolving the model name,
//! loading the model, and turning CLI flags into ABI parameters.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, Result};
use rustai_core::{
    abi::{LoadModelParams, ROption, RString, SamplingParams},
    LlmModel, ModelFile, PluginManager, Registry, RegistryOptions,
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
    Ok(Registry::open(RegistryOptions { dirs: model_dirs(cli), config_file: cli.models_config.clone() })?)
}

/// An engine over the plugins and models (for the embedding and speech commands).
pub(crate) fn engine(cli: &Cli) -> Result<rustai_core::Engine> {
    Ok(rustai_core::Engine::new(plugins(cli)?, registry(cli)?, None, rustai_core::EngineConfig::default()))
}

/// Load every plugin; warn about rejected files.
pub(crate) fn plugins(cli: &Cli) -> Result<PluginManager> {
    let dirs = plugin_dirs(cli);
    let manager = PluginManager::from_dirs(&dirs)?;
    for r in manager.rejected() {
        tracing::warn!("skipped {r}");
    }
    Ok(manager)
}

/// A model loaded in the plugin that serves it.
pub(crate) struct Loaded {
    pub(crate) file: ModelFile,
    pub(crate) model: LlmModel,
    pub(crate) load_ms: f64,
    // Keeps the plugins alive as long as the model.
    _plugins: PluginManager,
}

/// Resolve, pick a plugin, load.
pub(crate) fn load_model(cli: &Cli, args: &ModelArgs, threads: u32) -> Result<Loaded> {
    load_model_with(cli, args, threads, None)
}

/// [`load_model`] with a number of slots (the `parallel` load option; `None` = the plugin's default).
pub(crate) fn load_model_with(cli: &Cli, args: &ModelArgs, threads: u32, slots: Option<u32>) -> Result<Loaded> {
    let plugins = plugins(cli)?;
    let entry = if std::path::Path::new(&args.model).exists() {
        Registry::entry_for_path(std::path::Path::new(&args.model))?
    } else {
        registry(cli)?.lookup(&args.model)?
    };
    if !entry.task.serves(rustai_core::Task::Completion) && entry.task != rustai_core::Task::Unknown {
        anyhow::bail!("`{}` is a {} model; this command needs a chat or completion model", entry.id, entry.task.as_str());
    }
    let file = entry.file().with_context(|| format!("`{}` is a remote model; `rustai serve` reaches it through its plugin", entry.id))?;
    let config_u32 = |key: &str| entry.config.get(key).and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok());
    let llm = match args.plugin.as_ref().or(entry.provider.as_ref()) {
        Some(id) => plugins.llm(id)?,
        None => plugins.llm_for_format(file.format.as_str()).with_context(|| {
            format!("looked in {}", plugin_dirs(cli).iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))
        })?,
    };
    let params = LoadModelParams {
        context_length: if args.ctx > 0 { args.ctx } else { config_u32("context_length").unwrap_or(0) },
        threads: if threads > 0 { threads } else { config_u32("threads").unwrap_or(0) },
        gpu_layers: args.gpu_layers,
        extra_json: merged_options(&entry.config, slots).into(),
        ..LoadModelParams::new(file.path.to_string_lossy())
    };
    let started = Instant::now();
    let spinner = indicatif::ProgressBar::new_spinner().with_message(format!("loading {} with plugin {}", entry.id, llm.plugin().id()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let model = llm.load(&params);
    spinner.finish_and_clear();
    let model = model?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(Loaded { file, model, load_ms, _plugins: plugins })
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

/// The model's `models.toml` config as load options, with `parallel` set when given.
fn merged_options(config: &std::collections::BTreeMap<String, serde_json::Value>, slots: Option<u32>) -> String {
    let mut map: serde_json::Map<String, serde_json::Value> = config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(n) = slots {
        map.insert("parallel".into(), n.into());
    }
    if map.is_empty() { String::new() } else { serde_json::Value::Object(map).to_string() }
}
