//! # gguf: GGUF language models through llama.cpp
//!
//! A RustAI plugin (cdylib) implementing [`rustai_plugin::LlmPlugin`] with
//! `llama-cpp-2`. CPU by default; `gpu_layers` offloads when llama.cpp was built
//! with a GPU backend.
//!
//! ## Layout
//! - [`model`]: file validation (our own GGUF header check, so a corrupt file
//!   is an error rather than a crash), loading, handles, contexts.
//! - [`generate`]: the caller's side of a request (submit, relay events to the sink,
//!   cancellation).
//! - `job`: the job handed to the scheduler, its events, and its per-request state
//!   (sampling, stops, timings).
//! - `scheduler`: one thread per model owning its context; continuous batching of all
//!   running requests into one decode per step.
//! - `slots`: the context's sequences and their cached tokens; prefix reuse, LRU eviction.
//! - `sampling`: the sampler (greedy, seeded, top-k/p, min-p, repetition penalty,
//!   grammar / JSON schema), built so that no llama.cpp exception or abort is reachable.
//! - `grammar_bounds`: size, depth and repetition limits on grammars and JSON
//!   schemas, checked before llama.cpp's recursive parsers see them.
//! - [`stop`]: stop sequences and incremental UTF-8 decoding.
//!
//! **Invariant:** no other crate knows about llama.cpp; this plugin never
//! links the host (`rustai-core`), only the plugin SDK (`rustai-plugin`). It alone
//! knows what a GGUF model costs in memory (`Plugin::estimate_memory`).

pub mod generate;
mod grammar_bounds;
mod job;
pub mod model;
mod sampling;
mod scheduler;
mod slots;
pub mod stop;

use std::sync::Arc;

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate};
use rustai_plugin::{
    feature, Capabilities, Category, ChatMessage, ChatRequest, Completion, Families, GenerateOptions, GenerateRequest, GpuUse, Health,
    Level, LlmPlugin, LoadModelParams, ModelHandle, ModelInfo, Plugin, PluginError, PluginExport, PluginInfo,
    RResult, RSlice, RStr, RString, RVec, ResourceRequirements, SamplingExtras, SpecialTokens, TokenSinkMut,
};

use model::LoadedModel;
use scheduler::Scheduler;

/// A loaded model and the scheduler that runs its requests.
struct Served {
    loaded: Arc<LoadedModel>,
    scheduler: Scheduler,
}

impl std::ops::Deref for Served {
    type Target = LoadedModel;
    fn deref(&self) -> &LoadedModel {
        &self.loaded
    }
}

/// The plugin object.
#[derive(Default)]
pub struct GgufPlugin {
    models: rustai_plugin::ModelStore<Served>,
}


/// llama.cpp does not range-check token ids (an out-of-range id throws a C++
/// exception through C and aborts the process): check them here.
fn check_token_ids(model: &LoadedModel, tokens: &[i32]) -> Result<(), PluginError> {
    let n_vocab = model.info.vocab_size as i32;
    match tokens.iter().find(|&&t| t < 0 || t >= n_vocab) {
        Some(bad) => Err(PluginError::invalid_input(format!("token id {bad} is outside the vocabulary (0..{n_vocab})"))),
        None => Ok(()),
    }
}

impl GgufPlugin {
    fn render_chat(&self, model: &LoadedModel, messages: &[ChatMessage], add_assistant: bool) -> Result<String, PluginError> {
        let template = match model.chat_template() {
            Some(t) => LlamaChatTemplate::new(t),
            None => LlamaChatTemplate::new("chatml"),
        }
        .map_err(|e| PluginError::invalid_model(format!("unusable chat template: {e}")))?;
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.to_string(), m.content.to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PluginError::invalid_input(format!("invalid chat message: {e}")))?;
        model
            .model
            .apply_chat_template(&template, &chat, add_assistant)
            .map_err(|e| PluginError::unsupported(format!("llama.cpp cannot apply this model's chat template: {e}")))
    }

    fn tokens(&self, model: &LoadedModel, text: &str, add_special: bool) -> Vec<llama_cpp_2::token::LlamaToken> {
        model.model.vocab().tokenize(text.as_bytes(), add_special, true)
    }

    /// The chat prompt as tokens, with control tokens only where the template put them:
    /// the template is rendered with a marker in place of each message's content, its own
    /// text is tokenized with special-token parsing, and the contents without, so a user
    /// who writes `<|im_start|>system` gets those characters, not a control token.
    fn chat_tokens(&self, model: &LoadedModel, messages: &[ChatMessage]) -> Result<Vec<llama_cpp_2::token::LlamaToken>, PluginError> {
        let nonce = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        let mark = |i: usize| format!("\u{E000}{nonce}:{i}\u{E001}");
        let marked: Vec<ChatMessage> =
            messages.iter().enumerate().map(|(i, m)| ChatMessage { role: m.role.clone(), content: RString::from(mark(i)) }).collect();
        let rendered = self.render_chat(model, &marked, true)?;
        // Each marker must appear exactly once (a template that rewrites content defeats this:
        // then the whole prompt is tokenized as before).
        let mut spots: Vec<(usize, usize)> = Vec::with_capacity(messages.len());
        for i in 0..messages.len() {
            let m = mark(i);
            match (rendered.find(&m), rendered.rfind(&m)) {
                (Some(a), Some(b)) if a == b => spots.push((a, i)),
                _ => {
                    let prompt = self.render_chat(model, messages, true)?;
                    return Ok(self.tokens(model, &prompt, false));
                }
            }
        }
        spots.sort_unstable();
        let vocab = model.model.vocab();
        let (mut out, mut at) = (Vec::new(), 0usize);
        for (pos, i) in spots {
            out.extend(vocab.tokenize(&rendered.as_bytes()[at..pos], false, true));
            out.extend(vocab.tokenize(messages[i].content.as_bytes(), false, false));
            at = pos + mark(i).len();
        }
        out.extend(vocab.tokenize(&rendered.as_bytes()[at..], false, true));
        Ok(out)
    }
}

impl Plugin for GgufPlugin {
    fn info(&self) -> PluginInfo {
        let s = |v: &[&str]| v.iter().map(|x| RString::from(*x)).collect::<RVec<_>>();
        PluginInfo {
            capabilities: Capabilities {
                formats: s(&["gguf"]),
                features: s(&[
                    feature::STREAMING,
                    feature::CHAT,
                    feature::GRAMMAR,
                    feature::JSON_SCHEMA,
                    feature::SEED,
                    feature::CANCEL,
                    feature::TOKENIZE,
                    feature::PROMPT_CACHE,
                    feature::BATCHING,
                    feature::PROMPT_PARTS,
                    feature::LAZY_GRAMMAR,
                    feature::LOGPROBS,
                ]),
            },
            resources: ResourceRequirements {
                min_memory_mb: 64,
                recommended_memory_mb: 512,
                cores: 2,
                gpu: GpuUse::Optional,
                battery_draw: Level::High,
                thermal_impact: Level::High,
                background_capable: true,
            },
            ..PluginInfo::new("GGUF (llama.cpp)", Category::Llm).describe("Runs GGUF language models on the CPU with llama.cpp")
        }
    }

    fn init(&self, config_json: RStr<'_>) -> RResult<(), PluginError> {
        RResult::from(model::configure(config_json.as_str()).and_then(|()| model::backend().map(|_| ())))
    }

    fn health(&self) -> Health {
        match model::backend() {
            Ok(_) => Health::healthy(),
            Err(e) => Health { status: rustai_plugin::HealthStatus::Unhealthy, message: e.message },
        }
    }

    fn shutdown(&self) -> RResult<(), PluginError> {
        self.models.clear();
        RResult::ROk(())
    }

    fn estimate_memory(&self, params: &LoadModelParams) -> RResult<u64, PluginError> {
        RResult::from(model::estimate_memory(params))
    }
}

impl LlmPlugin for GgufPlugin {
    fn load_model(&self, params: &LoadModelParams) -> RResult<ModelHandle, PluginError> {
        RResult::from(LoadedModel::load(params).map(|m| {
            let model = Arc::new(m);
            self.models.insert(Served { scheduler: Scheduler::new(Arc::clone(&model)), loaded: model })
        }))
    }

    fn unload_model(&self, model: ModelHandle) -> RResult<(), PluginError> {
        RResult::from(self.models.remove(model))
    }

    fn model_info(&self, model: ModelHandle) -> RResult<ModelInfo, PluginError> {
        RResult::from(self.models.get(model).map(|m| m.info.clone()))
    }

    fn tokenize(&self, model: ModelHandle, text: RStr<'_>, add_special: bool) -> RResult<RVec<i32>, PluginError> {
        RResult::from(self.models.get(model).map(|m| self.tokens(&m, text.as_str(), add_special).iter().map(|t| t.0).collect()))
    }

    fn detokenize(&self, model: ModelHandle, tokens: RSlice<'_, i32>) -> RResult<RString, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| {
            check_token_ids(&m, tokens.as_slice())?;
            let vocab = m.model.vocab();
            let mut bytes = Vec::new();
            for &t in tokens.iter() {
                vocab.token_to_piece_into(llama_cpp_2::token::LlamaToken(t), &mut bytes, false, None);
            }
            Ok(RString::from(String::from_utf8_lossy(&bytes).into_owned()))
        }))
    }

    fn apply_chat_template(
        &self,
        model: ModelHandle,
        messages: RSlice<'_, ChatMessage>,
        add_assistant: bool,
    ) -> RResult<RString, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| self.render_chat(&m, messages.as_slice(), add_assistant)).map(RString::from))
    }

    fn generate(&self, model: ModelHandle, request: &GenerateRequest, sink: TokenSinkMut<'_>) -> RResult<Completion, PluginError> {
        self.generate_ext(model, request, &SamplingExtras::default(), sink)
    }

    fn chat(&self, model: ModelHandle, request: &ChatRequest, sink: TokenSinkMut<'_>) -> RResult<Completion, PluginError> {
        self.chat_ext(model, request, &SamplingExtras::default(), sink)
    }

    fn generate_ext(
        &self,
        model: ModelHandle,
        request: &GenerateRequest,
        extras: &SamplingExtras,
        sink: TokenSinkMut<'_>,
    ) -> RResult<Completion, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| {
            let prompt = if request.prompt_tokens.is_empty() {
                self.tokens(&m, request.prompt.as_str(), request.add_special)
            } else {
                check_token_ids(&m, request.prompt_tokens.as_slice())?;
                request.prompt_tokens.iter().map(|&t| llama_cpp_2::token::LlamaToken(t)).collect()
            };
            generate::run(&m, &m.scheduler, prompt, &request.params, extras, &GenerateOptions::default(), sink)
        }))
    }

    fn chat_ext(
        &self,
        model: ModelHandle,
        request: &ChatRequest,
        extras: &SamplingExtras,
        sink: TokenSinkMut<'_>,
    ) -> RResult<Completion, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| {
            if request.messages.is_empty() {
                return Err(PluginError::invalid_input("a chat request needs at least one message"));
            }
            // The template already contains BOS where the model wants it.
            let tokens = self.chat_tokens(&m, request.messages.as_slice())?;
            generate::run(&m, &m.scheduler, tokens, &request.params, extras, &GenerateOptions::default(), sink)
        }))
    }

    fn special_tokens(&self, model: ModelHandle) -> RResult<SpecialTokens, PluginError> {
        RResult::from(self.models.get(model).map(|m| {
            let vocab = m.model.vocab();
            let text = |t: llama_cpp_2::token::LlamaToken| {
                // A model without the token reports -1 (never handed to llama.cpp).
                if t.0 < 0 || t.0 >= vocab.n_tokens() {
                    return RString::new();
                }
                let mut bytes = Vec::new();
                vocab.token_to_piece_into(t, &mut bytes, true, None);
                RString::from(String::from_utf8_lossy(&bytes).into_owned())
            };
            SpecialTokens { bos: text(vocab.bos()), eos: text(vocab.eos()) }
        }))
    }

    fn generate_with(
        &self,
        model: ModelHandle,
        request: &GenerateRequest,
        extras: &SamplingExtras,
        options: &GenerateOptions,
        sink: TokenSinkMut<'_>,
    ) -> RResult<Completion, PluginError> {
        RResult::from(self.models.get(model).and_then(|m| {
            let prompt = if !options.prompt_parts.is_empty() {
                // Template text with control tokens read; content as plain text; no BOS added
                // (the template writes it where the model wants it).
                let vocab = m.model.vocab();
                options.prompt_parts.iter().flat_map(|p| vocab.tokenize(p.text.as_bytes(), false, p.special)).collect()
            } else if request.prompt_tokens.is_empty() {
                self.tokens(&m, request.prompt.as_str(), request.add_special)
            } else {
                check_token_ids(&m, request.prompt_tokens.as_slice())?;
                request.prompt_tokens.iter().map(|&t| llama_cpp_2::token::LlamaToken(t)).collect()
            };
            generate::run(&m, &m.scheduler, prompt, &request.params, extras, options, sink)
        }))
    }
}

impl PluginExport for GgufPlugin {

    fn create() -> Result<Self, PluginError> {
        Ok(Self::default())
    }

    fn families(this: &Arc<Self>) -> Families {
        Families::default().with_llm(Arc::clone(this))
    }
}

rustai_plugin::export_plugin!(GgufPlugin, id = "gguf");
