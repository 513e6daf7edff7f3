//! Command-line arguments (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// RustAI: a plugin-first local AI engine.
#[derive(Debug, Parser)]
#[command(name = "rustai", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Plugin folders (default: ./plugins-dist and ~/.rustai/plugins).
    #[arg(long = "plugins", global = true, env = "RUSTAI_PLUGINS", value_delimiter = ':', value_name = "DIR")]
    pub(crate) plugin_dirs: Vec<PathBuf>,
    /// Model folders (default: ./models and ~/.rustai/models).
    #[arg(long = "models", global = true, env = "RUSTAI_MODELS", value_delimiter = ':', value_name = "DIR")]
    pub(crate) model_dirs: Vec<PathBuf>,
    /// models.toml with extra or refined model entries (default: models.toml in a model folder).
    #[arg(long = "models-config", global = true, env = "RUSTAI_MODELS_CONFIG", value_name = "FILE")]
    pub(crate) models_config: Option<PathBuf>,
    /// plugins.toml: each plugin's settings, one table per plugin id, given to it at load
    /// (default: ~/.rustai/plugins.toml when it exists).
    #[arg(long = "plugins-config", global = true, env = "RUSTAI_PLUGINS_CONFIG", value_name = "FILE")]
    pub(crate) plugins_config: Option<PathBuf>,
    /// Log filter when RUSTAI_LOG is unset (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn")]
    pub(crate) log_level: String,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate a reply to PROMPT and stream it to stdout.
    Run(RunArgs),
    /// Chat with a model interactively (/bye to quit, /reset to forget).
    Chat(ChatArgs),
    /// List loaded plugins and rejected plugin files; --watch shows lifecycle events live.
    Plugins(PluginsArgs),
    /// List the models found in the model folders or declared in models.toml, and files that are not usable models.
    Models(ModelsArgs),
    /// Choose a model for a task and explain the choice.
    Select(SelectArgs),
    /// Embed texts; prints the cosine similarity of every pair (or the vectors with --vectors).
    Embed(EmbedArgs),
    /// Transcribe a WAV file (any common rate, channels and bit depth).
    Transcribe(TranscribeArgs),
    /// Speak TEXT into a WAV file.
    Speak(SpeakArgs),
    /// Serve the Ollama (/api) and OpenAI (/v1) APIs over HTTP.
    Serve(ServeArgs),
    /// List the models a running server has loaded, with size, last use and expiry.
    Ps(PsArgs),
    /// List the tools of the loaded tool plugins.
    Tools(ToolsArgs),
    /// Call tool NAME with ARGUMENTS (a JSON object) and print its answer.
    Tool(ToolArgs),
    /// Download a model file into the first model folder (resumable, sha256-checked).
    Pull(PullArgs),
    /// Convert a Whisper model in CTranslate2 form (model.bin, tokenizer.json) into the
    /// whisper.cpp ggml file the whisper plugin loads.
    ConvertWhisper(ConvertWhisperArgs),
    /// Measure prompt processing and generation speed (like llama-bench).
    Bench(BenchArgs),
}

/// Which model, and how to load it.
#[derive(Debug, Args)]
pub(crate) struct ModelArgs {
    /// A model file path, or a model name found in the model folders (prefixes work).
    pub(crate) model: String,
    /// Use this plugin instead of the first one that reads the model's format.
    #[arg(long)]
    pub(crate) plugin: Option<String>,
    /// Context length in tokens (0 = the model's, capped at 4096).
    #[arg(long, default_value_t = 0)]
    pub(crate) ctx: u32,
    /// CPU threads (0 = all cores).
    #[arg(short = 't', long, default_value_t = 0)]
    pub(crate) threads: u32,
    /// Layers to offload to a GPU (-1 = all), when the plugin was built with one.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub(crate) gpu_layers: i32,
}

/// Sampling and stopping.
#[derive(Debug, Args)]
pub(crate) struct SamplingArgs {
    /// Temperature; 0 = greedy (deterministic).
    #[arg(long, default_value_t = 0.8)]
    pub(crate) temperature: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 40)]
    pub(crate) top_k: i32,
    /// Top-p (1 = off).
    #[arg(long, default_value_t = 0.9)]
    pub(crate) top_p: f32,
    /// Min-p (0 = off).
    #[arg(long, default_value_t = 0.05)]
    pub(crate) min_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.1)]
    pub(crate) repeat_penalty: f32,
    /// Seed for reproducible sampling.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Most tokens to generate (0 = until the model stops or the context is full).
    #[arg(short = 'n', long, default_value_t = 512)]
    pub(crate) max_tokens: u32,
    /// Stop sequence (repeatable).
    #[arg(long)]
    pub(crate) stop: Vec<String>,
    /// A GBNF grammar file that constrains the output.
    #[arg(long, value_name = "FILE")]
    pub(crate) grammar: Option<PathBuf>,
    /// A JSON schema file that constrains the output.
    #[arg(long, value_name = "FILE", conflicts_with = "grammar")]
    pub(crate) json_schema: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// The prompt.
    pub(crate) prompt: String,
    #[command(flatten)]
    pub(crate) sampling: SamplingArgs,
    /// A system message (chat mode).
    #[arg(long)]
    pub(crate) system: Option<String>,
    /// Send the prompt as raw text, without the model's chat template.
    #[arg(long)]
    pub(crate) raw: bool,
    /// Offer these tools of loaded tool plugins (a tool name, `plugin.tool`, or a plugin id),
    /// run the calls the model makes and give it the results (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub(crate) tools: Vec<String>,
    /// With --tools: the first step's tool choice (`required`, `auto`, or a tool name).
    #[arg(long, default_value = "required")]
    pub(crate) tool_choice: String,
    /// With --tools: the most model steps.
    #[arg(long, default_value_t = rustai_core::chat::agent::DEFAULT_MAX_STEPS)]
    pub(crate) max_steps: usize,
    /// Print the plugin, model and timings to stderr.
    #[arg(short, long)]
    pub(crate) verbose: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) sampling: SamplingArgs,
    /// A system message.
    #[arg(long)]
    pub(crate) system: Option<String>,
    /// Print timings after each reply.
    #[arg(short, long)]
    pub(crate) verbose: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PluginsArgs {
    /// Keep running and print plugin lifecycle events (loaded, reloaded, rejected, retired)
    /// as plugin files are added, replaced or removed. Ctrl-C stops.
    #[arg(long)]
    pub(crate) watch: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, env = "RUSTAI_HOST", default_value = "127.0.0.1:11434")]
    pub(crate) host: std::net::SocketAddr,
    /// A file with one API key per line; requests must then carry one.
    #[arg(long, value_name = "FILE")]
    pub(crate) api_key_file: Option<PathBuf>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    pub(crate) body_limit: usize,
    /// Memory budget for loaded models: a percentage of RAM ("75%") or a size ("2GiB", "500MiB").
    #[arg(long, default_value = "75%")]
    pub(crate) budget: String,
    /// Most models loaded at once, of every family together (language, embedding, speech);
    /// the memory budget is the main limit.
    #[arg(long, default_value_t = 8)]
    pub(crate) max_loaded: usize,
    /// Default keep-alive after a request, in seconds (0 = unload at once, negative = forever).
    #[arg(long, default_value_t = 300.0, allow_hyphen_values = true)]
    pub(crate) keep_alive: f64,
    /// Power profile: performance, balanced, power-saver, ultra-saver.
    #[arg(long, default_value = "balanced")]
    pub(crate) profile: String,
    /// Do not watch plugin and model folders for changes.
    #[arg(long)]
    pub(crate) no_watch: bool,
    /// Log as JSON lines.
    #[arg(long)]
    pub(crate) json_logs: bool,
    /// Requests generating at once per model: a GGUF model gets this many slots, decoded
    /// together in one batch (continuous batching) over one shared KV cache.
    #[arg(long, env = "RUSTAI_NUM_PARALLEL", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(crate) parallel: u64,
    /// Requests that may wait per model; more are refused with 503.
    #[arg(long, env = "RUSTAI_MAX_QUEUE", default_value_t = 64)]
    pub(crate) max_queue: usize,
    /// Requests per minute per client (API key, else IP); 0 = unlimited. Over it: 429 + Retry-After.
    #[arg(long, default_value_t = 0)]
    pub(crate) rate_limit: u32,
    /// Forward requests for models not found here to this Ollama/OpenAI-compatible server.
    #[arg(long, env = "RUSTAI_UPSTREAM", value_name = "URL")]
    pub(crate) upstream: Option<String>,
    /// Seconds a streaming client may read nothing before its stream is cut and its generation cancelled.
    #[arg(long, default_value_t = 30.0, value_parser = positive_secs)]
    pub(crate) stall_timeout: f64,
    /// Seconds a client may send nothing while its request headers or body are incomplete.
    #[arg(long, default_value_t = 30.0, value_parser = positive_secs)]
    pub(crate) read_timeout: f64,
    /// Seconds `POST /v1/tools/{name}` waits for a tool's answer before a 504.
    #[arg(long, default_value_t = 30.0, value_parser = positive_secs)]
    pub(crate) tool_timeout: f64,
    /// Longest audio `/v1/audio/transcriptions` accepts, in seconds.
    #[arg(long, default_value_t = 600.0, value_parser = positive_secs)]
    pub(crate) max_audio_secs: f64,
    /// Let `POST /download/start` fetch from loopback and private-network addresses.
    #[arg(long)]
    pub(crate) allow_private_downloads: bool,
    /// Largest file `POST /download/start` accepts, in bytes.
    #[arg(long, default_value_t = 64 << 30)]
    pub(crate) max_download_bytes: u64,
    /// Web origins (scheme://host[:port]) allowed to call the API from a browser, comma-separated;
    /// `*` allows any. Pages from other origins are refused (403), as Ollama's OLLAMA_ORIGINS does.
    #[arg(long, env = "RUSTAI_ORIGINS", value_delimiter = ',')]
    pub(crate) allowed_origins: Vec<String>,
    /// Extra host names the server answers to (the `Host` header), comma-separated; loopback names
    /// and the listen address are always allowed, `*` allows any (DNS-rebinding protection).
    #[arg(long, env = "RUSTAI_ALLOWED_HOSTS", value_delimiter = ',')]
    pub(crate) allowed_hosts: Vec<String>,
}

/// A finite, positive number of seconds (at most a day).
fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("`{s}`: give seconds, more than 0 and at most 86400")),
    }
}

#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// http(s) URL of a model file.
    pub(crate) url: String,
    /// Expected sha256; the file is discarded if it differs.
    #[arg(long)]
    pub(crate) sha256: Option<String>,
    /// File name in the model folder (default: from the URL).
    #[arg(long)]
    pub(crate) name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ConvertWhisperArgs {
    /// The CTranslate2 model folder.
    pub(crate) src: PathBuf,
    /// The ggml file to write (written as OUT.partial, then renamed).
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct EmbedArgs {
    /// An embedding model (id, prefix or name:tag).
    pub(crate) model: String,
    /// The texts.
    #[arg(required = true)]
    pub(crate) texts: Vec<String>,
    /// Print the vectors (JSON lines) instead of similarities.
    #[arg(long)]
    pub(crate) vectors: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TranscribeArgs {
    /// The WAV file.
    pub(crate) file: PathBuf,
    /// A speech-to-text model (default: the first installed one a plugin can serve).
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// Spoken language (e.g. en); default: the model's or detected.
    #[arg(long)]
    pub(crate) language: Option<String>,
    /// Translate to English.
    #[arg(long)]
    pub(crate) translate: bool,
    /// Text that precedes the audio (names, spelling hints).
    #[arg(long)]
    pub(crate) prompt: Option<String>,
    /// CPU threads (0 = default).
    #[arg(short = 't', long, default_value_t = 0)]
    pub(crate) threads: u32,
    /// Print segments with times.
    #[arg(long)]
    pub(crate) segments: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SpeakArgs {
    /// What to say.
    pub(crate) text: String,
    /// Output WAV file.
    #[arg(short, long, default_value = "out.wav")]
    pub(crate) output: PathBuf,
    /// A text-to-speech voice model (default: the first installed one a plugin can serve).
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// Speaker, for multi-speaker voices.
    #[arg(long)]
    pub(crate) voice: Option<String>,
    /// Speaking rate (1 = normal, 2 = twice as fast).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) speed: f32,
}

#[derive(Debug, Args)]
pub(crate) struct ToolsArgs {
    /// Print JSON (with each tool's parameter schema) instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ToolArgs {
    /// The tool: its name, or `plugin.name` when two plugins offer the same name.
    pub(crate) name: String,
    /// The arguments, a JSON object, e.g. '{"expression": "1234*5678"}'.
    #[arg(default_value = "{}")]
    pub(crate) arguments: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 30.0, value_parser = positive_secs)]
    pub(crate) timeout: f64,
}

#[derive(Debug, Args)]
pub(crate) struct PsArgs {
    /// The server's address.
    #[arg(long, env = "RUSTAI_HOST", default_value = "127.0.0.1:11434")]
    pub(crate) host: String,
}

#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Keep running and print changes as model files appear, change or disappear. Ctrl-C stops.
    #[arg(long, conflicts_with = "json")]
    pub(crate) watch: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SelectArgs {
    /// The task: chat, completion, embedding, stt, tts.
    #[arg(long, default_value = "chat")]
    pub(crate) task: rustai_core::Task,
    /// Prefer models on this machine.
    #[arg(long)]
    pub(crate) prefer_local: bool,
    /// Prefer remote models.
    #[arg(long)]
    pub(crate) prefer_cloud: bool,
    /// Prefer faster models.
    #[arg(long)]
    pub(crate) prefer_speed: bool,
    /// Prefer better models.
    #[arg(long)]
    pub(crate) prefer_quality: bool,
    /// Prefer models that draw less power.
    #[arg(long)]
    pub(crate) battery_sensitive: bool,
    /// Leave out models slower than this to the first token.
    #[arg(long, value_name = "MS")]
    pub(crate) max_latency_ms: Option<u64>,
    /// A tag the model must have (repeatable).
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// A tag that counts in a model's favour (repeatable).
    #[arg(long = "prefer-tag")]
    pub(crate) prefer_tags: Vec<String>,
    /// A capability the model must have, e.g. chat_template, grammar (repeatable).
    #[arg(long = "capability")]
    pub(crate) capabilities: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Prompt lengths to test (pp), comma-separated; 0 skips.
    #[arg(short = 'p', long = "n-prompt", value_delimiter = ',', default_value = "512")]
    pub(crate) n_prompt: Vec<u32>,
    /// Generation lengths to test (tg), comma-separated; 0 skips.
    #[arg(short = 'n', long = "n-gen", value_delimiter = ',', default_value = "128")]
    pub(crate) n_gen: Vec<u32>,
    /// Repetitions of each test.
    #[arg(short = 'r', long, default_value_t = 5)]
    pub(crate) repetitions: u32,
    /// Thread counts to test, comma-separated (overrides --threads).
    #[arg(long = "threads-list", value_delimiter = ',')]
    pub(crate) threads_list: Vec<u32>,
    /// Serving mode: streamed OpenAI chat requests as users send them (one request, the same
    /// request again, a multi-turn conversation, simultaneous streams) against a server
    /// started in this process; with `--url`, against that server instead.
    #[arg(long)]
    pub(crate) serving: bool,
    /// Serving mode against an OpenAI-compatible server at this base URL (rustai serve,
    /// llama-server, ...); MODEL is then the model name sent in requests.
    #[arg(long, requires = "serving")]
    pub(crate) url: Option<String>,
    /// Serving mode: short workloads (a smoke run, not a measurement).
    #[arg(long, requires = "serving")]
    pub(crate) quick: bool,
    /// Serving mode: slots of the in-process server (as `rustai serve --parallel`).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) parallel: u32,
    /// Serving mode: also write the results as JSON to this file.
    #[arg(long, requires = "serving")]
    pub(crate) json: Option<std::path::PathBuf>,
    /// Serving mode: a label for the results (e.g. the server's name).
    #[arg(long, default_value = "rustai")]
    pub(crate) label: String,
}
