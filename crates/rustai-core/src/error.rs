//! The host library's error type.

use std::path::PathBuf;

use rustai_abi::PluginError;

/// Errors from the RustAI host library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // -- Plugins --
    /// A plugin call returned an error.
    #[error("plugin `{plugin}`: {source}")]
    Plugin {
        /// The plugin's id.
        plugin: String,
        /// What it said.
        #[source]
        source: PluginError,
    },
    /// No loaded plugin has this id.
    #[error("no plugin with id `{0}` is loaded")]
    UnknownPlugin(String),
    /// No loaded plugin offers what was asked for.
    #[error("no loaded plugin {0}")]
    NoPluginFor(String),
    /// The plugin exists but does not implement this family.
    #[error("plugin `{plugin}` does not implement {family}")]
    MissingFamily {
        /// The plugin's id.
        plugin: String,
        /// The family, e.g. `LlmPlugin`.
        family: &'static str,
    },

    // -- Tools --
    /// No loaded tool plugin offers a tool of this name.
    #[error("no tool named `{name}`{}", tools_hint(.known))]
    UnknownTool {
        /// What was asked for.
        name: String,
        /// The tools there are, qualified (`plugin.name`).
        known: Vec<String>,
    },
    /// Several tool plugins offer a tool of this name.
    #[error("tool name `{name}` is ambiguous: it is offered as {}; name one of those", .candidates.join(", "))]
    AmbiguousTool {
        /// What was asked for.
        name: String,
        /// The qualified names (`plugin.name`) it matches.
        candidates: Vec<String>,
    },
    /// Tool arguments that are not a JSON object.
    #[error("arguments of tool `{tool}` must be a JSON object, not {got}")]
    ToolArguments {
        /// The tool.
        tool: String,
        /// What was given (its JSON type).
        got: &'static str,
    },
    /// A tool call that did not finish in time (it goes on in the background).
    #[error("tool `{tool}` did not finish within {} s", .after.as_secs_f64())]
    ToolTimeout {
        /// The tool.
        tool: String,
        /// The time it was given.
        after: std::time::Duration,
    },
    /// Too many tool calls are still running (calls that timed out included).
    #[error("too many tool calls are still running ({running}); try again later")]
    ToolsBusy {
        /// How many.
        running: usize,
    },

    // -- Models --
    /// A model name that matches no model file.
    #[error("unknown model `{name}`{}", known_hint(.known))]
    UnknownModel {
        /// What was asked for.
        name: String,
        /// The ids that exist.
        known: Vec<String>,
    },
    /// A model name that matches several model files.
    #[error("model name `{name}` is ambiguous: it matches {}", .candidates.join(", "))]
    AmbiguousModel {
        /// What was asked for.
        name: String,
        /// What it matches.
        candidates: Vec<String>,
    },

    /// A file or folder that is not a usable model.
    #[error("{path} is not a usable model: {reason}")]
    InvalidModel {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A model asked to do what it is not for (e.g. chat with an embedding model).
    #[error("model `{model}` is a {task} model; this request needs a {wanted} model")]
    WrongTask {
        /// The model.
        model: String,
        /// What it is for.
        task: &'static str,
        /// What the request needs.
        wanted: &'static str,
    },
    /// No model meets a selection's requirements.
    #[error("no model for {task}: {}", .reasons.join("; "))]
    NoSuitableModel {
        /// The task asked for.
        task: String,
        /// Why each candidate was excluded (or that there were none).
        reasons: Vec<String>,
    },
    /// A configuration file that cannot be used.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A model that does not fit the memory budget, even after evicting idle models.
    #[error("cannot load `{model}`: it needs about {needed}, the budget is {budget}, and {in_use} are held by {loaded} model(s) serving requests or pinned (at most {max_loaded} loaded)")]
    OverBudget {
        /// The model.
        model: String,
        /// Its estimated memory.
        needed: String,
        /// The budget.
        budget: String,
        /// Memory held by models that cannot be evicted.
        in_use: String,
        /// How many models are loaded.
        loaded: usize,
        /// The most that may be loaded.
        max_loaded: usize,
    },

    /// Audio that cannot be used (not a WAV, empty, truncated, a 0 Hz header, ...).
    #[error("bad audio: {0}")]
    Audio(String),

    // -- Requests --
    /// The caller cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A request value out of range (the field is named as the APIs name it).
    #[error("{0}")]
    InvalidParameter(#[from] rustai_abi::InvalidParam),
    /// A model's chat template that cannot render this conversation.
    #[error("the chat template of model `{model}` cannot render this conversation: {message}")]
    Template {
        /// The model.
        model: String,
        /// What went wrong (the template's own `raise_exception` text, or the syntax error).
        message: String,
    },
    /// A conversation or tool request that cannot be served as asked (a tool named in
    /// `tool_choice` that is not offered, tool calls on a model without a chat template, ...).
    #[error("{0}")]
    InvalidChat(String),
    /// The model's output was meant to be a tool call and is not a valid one (it does not
    /// parse, names a tool not offered, or its arguments do not match the schema).
    #[error("the model's tool call is not valid: {0}")]
    BadToolCall(String),

    // -- Environment --
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn known_hint(known: &[String]) -> String {
    if known.is_empty() {
        " (no models found; put a .gguf file or a model folder in ./models)".to_owned()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}

fn tools_hint(known: &[String]) -> String {
    if known.is_empty() {
        " (no tool plugins are loaded)".to_owned()
    } else {
        format!(" (tools: {})", known.join(", "))
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn plugin(plugin: &str, source: PluginError) -> Self {
        Self::Plugin { plugin: plugin.to_owned(), source }
    }
}

/// `Result` with the host library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
