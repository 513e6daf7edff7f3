//! Plain FFI-safe data that crosses the plugin boundary.
//!
//! Every type is `#[repr(C)]` (or `#[repr(u8)]` for enums) and derives
//! `StableAbi`, so `abi_stable` can check at load time that host and plugin
//! agree on its layout. Strings are `RString`, lists `RVec`, optionals `ROption`.
//! Numeric "zero means default" conventions are documented per field.

use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};

/// What kind of capability a plugin mainly provides.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Text generation.
    Llm = 0,
    /// Text embeddings.
    Embedding = 1,
    /// Speech to text.
    Stt = 2,
    /// Text to speech.
    Tts = 3,
    /// Tools an agent can call.
    Tool = 4,
    /// Several families in one plugin.
    Multi = 5,
}

impl Category {
    /// Lower-case name, as shown by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Llm => "llm",
            Self::Embedding => "embedding",
            Self::Stt => "stt",
            Self::Tts => "tts",
            Self::Tool => "tool",
            Self::Multi => "multi",
        }
    }
}

/// A coarse three-step level (battery draw, thermal impact).
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Level {
    /// Negligible.
    #[default]
    Low = 0,
    /// Noticeable.
    Medium = 1,
    /// Heavy.
    High = 2,
}

/// Whether the plugin uses a GPU.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GpuUse {
    /// CPU only.
    #[default]
    None = 0,
    /// Uses a GPU when one is present.
    Optional = 1,
    /// Does not work without a GPU.
    Required = 2,
}

/// What a plugin can do: the model formats it reads and the features it supports
/// (see [`crate::feature`] for the well-known names).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Model formats, e.g. `gguf`, `safetensors`, `onnx`.
    pub formats: RVec<RString>,
    /// Features, e.g. `streaming`, `chat`, `grammar`.
    pub features: RVec<RString>,
}

/// What a plugin needs from the machine, so the host can budget and schedule.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRequirements {
    /// Memory the plugin needs to do anything useful, in MiB (models excluded).
    pub min_memory_mb: u64,
    /// Memory it should have to run well, in MiB (models excluded).
    pub recommended_memory_mb: u64,
    /// CPU cores it wants.
    pub cores: u32,
    /// GPU use.
    pub gpu: GpuUse,
    /// Battery draw while working.
    pub battery_draw: Level,
    /// Heat produced while working.
    pub thermal_impact: Level,
    /// Whether it may keep working while the app is in the background.
    pub background_capable: bool,
}

/// Identity and metadata of a plugin.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Unique, stable id (`[a-z0-9_-]+`), e.g. `gguf`.
    pub id: RString,
    /// Human-readable name.
    pub name: RString,
    /// The plugin's own semver version.
    pub version: RString,
    /// The `rustai-abi` version it was built against.
    pub api_version: RString,
    /// One-line description.
    pub description: RString,
    /// Main category.
    pub category: Category,
    /// Formats and features.
    pub capabilities: Capabilities,
    /// Resource needs.
    pub resources: ResourceRequirements,
}

impl PluginInfo {
    /// Info for a plugin named `name` in `category`, with no formats, features or
    /// resource needs yet. `id`, `version` and `api_version` are left empty: the SDK's
    /// export glue fills them from the one place they are declared (the export macro
    /// and the plugin's `Cargo.toml`).
    pub fn new(name: impl Into<RString>, category: Category) -> Self {
        Self {
            id: RString::new(),
            name: name.into(),
            version: RString::new(),
            api_version: RString::new(),
            description: RString::new(),
            category,
            capabilities: Capabilities::default(),
            resources: ResourceRequirements::default(),
        }
    }

    /// With a one-line description.
    pub fn describe(mut self, description: impl Into<RString>) -> Self {
        self.description = description.into();
        self
    }
}

/// Health of a plugin.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthStatus {
    /// Working normally.
    Healthy = 0,
    /// Working, but something went wrong (e.g. a call panicked).
    Degraded = 1,
    /// Not usable.
    Unhealthy = 2,
}

/// A health report.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Overall status.
    pub status: HealthStatus,
    /// Why, when not healthy.
    pub message: RString,
}

impl Health {
    /// A healthy report.
    pub fn healthy() -> Self {
        Self { status: HealthStatus::Healthy, message: RString::new() }
    }
}

/// A plugin-side handle to a loaded model. Only meaningful to the plugin that issued it.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelHandle(pub u64);

/// How to load a model.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct LoadModelParams {
    /// Path to the model file or folder.
    pub path: RString,
    /// Context length in tokens; 0 = the model's trained context (capped by the plugin).
    pub context_length: u32,
    /// CPU threads; 0 = the plugin picks (usually the number of cores).
    pub threads: u32,
    /// Layers to offload to a GPU; 0 = none, -1 = all.
    pub gpu_layers: i32,
    /// Prompt-processing batch size; 0 = plugin default.
    pub batch_size: u32,
    /// Plugin-specific options as a JSON object (`""` = none).
    pub extra_json: RString,
}

impl LoadModelParams {
    /// Defaults for the model at `path`.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: RString::from(path.into()),
            context_length: 0,
            threads: 0,
            gpu_layers: 0,
            batch_size: 0,
            extra_json: RString::new(),
        }
    }
}

/// What the plugin knows about a loaded model.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Path it was loaded from.
    pub path: RString,
    /// Architecture, e.g. `llama`.
    pub architecture: RString,
    /// Parameter count.
    pub parameters: u64,
    /// Size of the weights in bytes.
    pub size_bytes: u64,
    /// Context length the model was trained with.
    pub trained_context_length: u32,
    /// Context length this instance runs with.
    pub context_length: u32,
    /// Vocabulary size (0 when not applicable).
    pub vocab_size: u32,
    /// Embedding width (0 when not applicable).
    pub embedding_length: u32,
    /// Quantization / file type, e.g. `Q4_1`.
    pub quantization: RString,
    /// The model's own chat template, when it has one.
    pub chat_template: ROption<RString>,
}

/// Sampling and stopping parameters for a generation.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Temperature; `<= 0` means greedy decoding.
    pub temperature: f32,
    /// Top-k; `<= 0` disables.
    pub top_k: i32,
    /// Top-p (nucleus); `>= 1` disables.
    pub top_p: f32,
    /// Min-p; `<= 0` disables.
    pub min_p: f32,
    /// Repetition penalty; `1.0` disables.
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    pub repeat_last_n: i32,
    /// RNG seed for reproducible sampling; `None` = random.
    pub seed: ROption<u64>,
    /// Maximum tokens to generate; 0 = until end of generation or context full.
    pub max_tokens: u32,
    /// Stop sequences: generation ends before the first occurrence of any.
    pub stop: RVec<RString>,
    /// A GBNF grammar to constrain the output.
    pub grammar: ROption<RString>,
    /// A JSON schema to constrain the output (converted to a grammar by the plugin).
    pub json_schema: ROption<RString>,
    /// Keep generating past end-of-generation tokens (benchmarks).
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.05,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: ROption::RNone,
            max_tokens: 0,
            stop: RVec::new(),
            grammar: ROption::RNone,
            json_schema: ROption::RNone,
            ignore_eos: false,
        }
    }
}

impl SamplingParams {
    /// Deterministic greedy decoding.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, repeat_penalty: 1.0, ..Self::default() }
    }
}

/// A token's logit bias (OpenAI `logit_bias`): added to its logit before sampling.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq)]
pub struct LogitBias {
    /// The token id.
    pub token: i32,
    /// Added to the logit; `-100` or less bans the token.
    pub bias: f32,
}

/// Sampling options added in ABI 0.1.1, passed to [`crate::LlmPlugin::generate_ext`]
/// and [`crate::LlmPlugin::chat_ext`]. The defaults change nothing, so a host may
/// always send them; a plugin that does not implement those methods refuses a
/// request that sets any of them (never ignores it).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct SamplingExtras {
    /// Subtracted once per earlier occurrence of a token (OpenAI's, -2..=2); 0 = off.
    pub frequency_penalty: f32,
    /// Subtracted once if a token occurred at all (-2..=2); 0 = off.
    pub presence_penalty: f32,
    /// Locally typical sampling; `>= 1` = off.
    pub typical_p: f32,
    /// Mirostat: 0 = off, 1 = Mirostat, 2 = Mirostat 2.0 (replaces top-k/p/min-p).
    pub mirostat: u8,
    /// Mirostat target entropy (tau).
    pub mirostat_tau: f32,
    /// Mirostat learning rate (eta).
    pub mirostat_eta: f32,
    /// Per-token logit biases.
    pub logit_bias: RVec<LogitBias>,
    /// CPU threads for this request; 0 = the model's load-time setting. A thread count
    /// is per request, never a reason to load a model again. (A plugin that does not
    /// implement the `_ext` methods uses its load-time setting.)
    pub threads: u32,
}

impl Default for SamplingExtras {
    fn default() -> Self {
        Self {
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            typical_p: 1.0,
            mirostat: 0,
            mirostat_tau: 5.0,
            mirostat_eta: 0.1,
            logit_bias: RVec::new(),
            threads: 0,
        }
    }
}

impl SamplingExtras {
    /// The first option set to something other than its default, as the APIs name it.
    pub fn first_set(&self) -> Option<&'static str> {
        let d = Self::default();
        if self.frequency_penalty != d.frequency_penalty {
            Some("frequency_penalty")
        } else if self.presence_penalty != d.presence_penalty {
            Some("presence_penalty")
        } else if self.typical_p < 1.0 {
            Some("typical_p")
        } else if self.mirostat != 0 {
            Some("mirostat")
        } else if !self.logit_bias.is_empty() {
            Some("logit_bias")
        } else {
            None
        }
    }
}

/// A raw completion request.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    /// The prompt text (used when `prompt_tokens` is empty).
    pub prompt: RString,
    /// Pre-tokenized prompt; takes precedence over `prompt` when not empty.
    pub prompt_tokens: RVec<i32>,
    /// Add the model's special tokens (BOS) when tokenizing `prompt`.
    pub add_special: bool,
    /// Sampling.
    pub params: SamplingParams,
}

impl GenerateRequest {
    /// A request for `prompt` with `params`.
    pub fn new(prompt: impl Into<String>, params: SamplingParams) -> Self {
        Self { prompt: RString::from(prompt.into()), prompt_tokens: RVec::new(), add_special: true, params }
    }
}

/// One chat message.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: RString,
    /// Text content.
    pub content: RString,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: RString::from(role.into()), content: RString::from(content.into()) }
    }
}

/// A chat request; the plugin renders it with the model's own chat template.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: RVec<ChatMessage>,
    /// Sampling.
    pub params: SamplingParams,
}

/// Why a generation ended.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// A stop sequence was produced (it is not part of the text).
    Stop = 0,
    /// `max_tokens` reached, or the context is full.
    Length = 1,
    /// The model produced an end-of-generation token.
    Eos = 2,
    /// The host cancelled.
    Cancelled = 3,
}

impl FinishReason {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Eos => "eos",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Timings of one generation.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Prompt processing, milliseconds.
    pub prompt_eval_ms: f64,
    /// Token generation, milliseconds.
    pub generation_ms: f64,
    /// Prompt tokens per second.
    pub prompt_tokens_per_s: f64,
    /// Generated tokens per second.
    pub tokens_per_s: f64,
}

/// The result of a generation (the text was also streamed through the sink).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Completion {
    /// The full generated text (stop sequence excluded).
    pub text: RString,
    /// Prompt tokens.
    pub tokens_in: u32,
    /// Generated tokens.
    pub tokens_out: u32,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Timings.
    pub timings: Timings,
}

/// A batch of texts to embed.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct EmbedRequest {
    /// The texts.
    pub inputs: RVec<RString>,
    /// L2-normalise each vector.
    pub normalize: bool,
}

/// Embeddings for an [`EmbedRequest`], in input order.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input.
    pub vectors: RVec<RVec<f32>>,
    /// Vector width.
    pub dimensions: u32,
    /// Tokens consumed in total.
    pub tokens_in: u32,
    /// Indices of inputs that were truncated to the model's maximum length.
    pub truncated: RVec<u32>,
}

/// Speech to transcribe.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct TranscribeRequest {
    /// Mono PCM samples in `[-1, 1]`.
    pub pcm: RVec<f32>,
    /// Sample rate of `pcm` (plugins usually want 16 000).
    pub sample_rate: u32,
    /// Spoken language (ISO 639-1); `None` = detect.
    pub language: ROption<RString>,
    /// Translate to English.
    pub translate: bool,
    /// CPU threads; 0 = plugin default.
    pub threads: u32,
    /// Text that primes the decoder (names, spelling).
    pub initial_prompt: ROption<RString>,
    /// Sampling temperature; 0 = greedy.
    pub temperature: f32,
}

/// One timed piece of a transcription.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Start, milliseconds from the beginning of the audio.
    pub start_ms: u64,
    /// End, milliseconds.
    pub end_ms: u64,
    /// Text.
    pub text: RString,
}

/// A transcription.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Transcription {
    /// All text.
    pub text: RString,
    /// Detected or given language.
    pub language: RString,
    /// Timed segments.
    pub segments: RVec<Segment>,
}

/// A voice a TTS model offers.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Voice {
    /// Id to pass in [`SpeakRequest::voice`].
    pub id: RString,
    /// Display name.
    pub name: RString,
    /// Language tag, e.g. `en-US`.
    pub language: RString,
}

/// Text to speak.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct SpeakRequest {
    /// The text.
    pub text: RString,
    /// Voice / speaker id; `None` = default.
    pub voice: ROption<RString>,
    /// Speed factor; 1.0 = normal.
    pub speed: f32,
    /// Noise scale override.
    pub noise_scale: ROption<f32>,
}

/// Summary of synthesized speech (the samples went through the [`crate::AudioSink`]).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeechInfo {
    /// Sample rate of the PCM sent to the sink.
    pub sample_rate: u32,
    /// Channels (1 = mono).
    pub channels: u16,
    /// Samples sent in total (per channel).
    pub samples: u64,
}

/// A tool an agent can call.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct ToolDefinition {
    /// Name, unique within the plugin.
    pub name: RString,
    /// What it does, for the model.
    pub description: RString,
    /// JSON schema of the arguments object.
    pub parameters_schema: RString,
}

/// A tool's result.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// Result text (often JSON).
    pub content: RString,
    /// The tool ran but reports failure (the model should see it).
    pub is_error: bool,
}

