//! The text-generation path both APIs share: resolve and lease the model
//! through the engine (off the async runtime: loading blocks), stream the
//! reply, record metrics when it ends, count it as cancelled when the client
//! goes away first (dropping the stream cancels the generation in the plugin).

use std::{collections::VecDeque, sync::atomic::Ordering};

use rustai_core::{
    abi::{Completion, GenerateOptions, GenerateRequest, SamplingExtras, SamplingParams},
    chat::{agent::Agent, Conversation, Reply, ToolReader},
    engine::adaptive::Adjustment,
    Engine, LoadOptions, Logprobs, Prepared, StreamEvent, TextRequest, TokenStream,
};

use crate::{error::ApiResult, state::AppState};

/// What to generate.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    /// Raw text, no template.
    Prompt(String),
    /// A conversation (and its tools), through the model's chat template.
    Chat(Conversation),
}

/// A generation request in core terms.
#[derive(Debug, Clone)]
pub(crate) struct TextJob {
    /// The model's id, already resolved by the handler ([`check_model`]), or `auto`.
    pub(crate) model: String,
    pub(crate) input: Input,
    pub(crate) sampling: SamplingParams,
    /// Options beyond [`SamplingParams`] (penalties, logit bias, mirostat, typical-p).
    pub(crate) extras: SamplingExtras,
    pub(crate) load: LoadOptions,
    /// Log-probabilities: `Some(n)` with the `n` most likely alternatives per token.
    pub(crate) logprobs: Option<u32>,
    /// Server-side tool execution (chat input only): the loop's state.
    pub(crate) agent: Option<Agent>,
}

impl TextJob {
    /// A job with no load options and no log-probabilities.
    pub(crate) fn new(model: String, input: Input, sampling: SamplingParams, extras: SamplingExtras) -> Self {
        Self { model, input, sampling, extras, load: LoadOptions::default(), logprobs: None, agent: None }
    }
}

/// A running generation; dropping it before the end cancels it.
pub(crate) struct Generation {
    // Dropped first: the model lease and the queue place go together.
    pub(crate) prepared: Prepared,
    /// The queue place; held until the plugin has really stopped (see `Drop`).
    ticket: Option<crate::admission::Ticket>,
    stream: Option<TokenStream>,
    /// The first event, read before the response starts.
    pending: Option<StreamEvent>,
    state: AppState,
    finished: bool,
    /// Prompt tokens and how many of them the plugin reused from its cache, once reported.
    prompt: Option<(u32, u32)>,
    /// Reads tool calls out of the output (requests with tools).
    reader: Option<ToolReader>,
    /// Events to hand out before reading the stream again.
    queued: VecDeque<StreamEvent>,
    /// The reply read at the end (requests with tools).
    reply: Option<Reply>,
    /// Log-probabilities received, in order (requests that asked).
    logprobs: Vec<Logprobs>,
    /// Server-side tool execution: the loop, and what the next step needs.
    agent: Option<AgentRun>,
}

/// A tool loop in progress: the loop, the conversation so far, and the step's settings.
struct AgentRun {
    agent: Agent,
    conv: Conversation,
    sampling: SamplingParams,
    extras: SamplingExtras,
    options: GenerateOptions,
    /// Tokens of the steps before this one (prompt, generated).
    tokens: (u32, u32),
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation").field("model", &self.prepared.entry.id).finish_non_exhaustive()
    }
}

/// The id of `model` if it serves `task` (or `auto`, which lets the engine choose).
pub(crate) fn check_model(state: &AppState, model: &str, task: rustai_core::Task) -> ApiResult<String> {
    if model == rustai_core::AUTO {
        return Ok(model.to_owned());
    }
    Ok(state.engine.resolve(model, task)?.id)
}

/// Lease the model (loading it if needed) with the adapted parameters.
pub(crate) async fn prepare(engine: &Engine, model: String, load: LoadOptions, sampling: SamplingParams) -> ApiResult<(Prepared, SamplingParams)> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut sampling = sampling;
        let prepared = engine.prepare_llm(&model, &load, &mut sampling)?;
        Ok((prepared, sampling))
    })
    .await
    .map_err(|e| crate::error::ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("worker failed: {e}")))?
}

/// Plan a conversation on the model (template rendering is CPU work, and its first use
/// compiles the template: off the async runtime).
async fn plan(
    model: &std::sync::Arc<rustai_core::LlmModel>,
    id: &str,
    conv: Conversation,
    sampling: SamplingParams,
    options: GenerateOptions,
) -> ApiResult<(TextRequest, Option<ToolReader>)> {
    let (m, id) = (std::sync::Arc::clone(model), id.to_owned());
    let planned = tokio::task::spawn_blocking(move || rustai_core::chat::plan(&m, &id, &conv, sampling, options))
        .await
        .map_err(|e| crate::error::ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("worker failed: {e}")))??;
    Ok((planned.request, planned.reader))
}

/// Start generating.
pub(crate) async fn start(state: &AppState, job: TextJob) -> ApiResult<Generation> {
    let id = job.model.clone();
    // Refused before queueing, loading or any work (the engine checks `sampling` too).
    job.sampling.validate().map_err(rustai_core::Error::from)?;
    job.extras.validate().map_err(rustai_core::Error::from)?;
    let mut ticket = state.admission.enter(&id).await?;
    let (prepared, sampling) = prepare(&state.engine, id.clone(), job.load, job.sampling).await?;
    if prepared.entry.id != id {
        // `auto` or a fallback chose another model: queue in that model's lane, so requests for it
        // by any name share one limit (the first lane is let go once the right one is held).
        ticket = state.admission.enter(&prepared.entry.id).await?;
    }
    let model = std::sync::Arc::clone(prepared.lease.model());
    let extras = SamplingExtras { threads: prepared.threads, ..job.extras };
    let options = GenerateOptions { logprobs: job.logprobs.is_some(), top_logprobs: job.logprobs.unwrap_or(0), ..GenerateOptions::default() };
    let mut agent = None;
    let (request, reader) = match job.input {
        Input::Prompt(p) if options == GenerateOptions::default() => (TextRequest::Generate(GenerateRequest::new(p, sampling)), None),
        Input::Prompt(p) => (TextRequest::With(GenerateRequest::new(p, sampling), options), None),
        Input::Chat(mut conv) => {
            if let Some(a) = job.agent {
                conv.tools = a.tool_set();
                agent = Some(AgentRun { agent: a, conv: conv.clone(), sampling: sampling.clone(), extras: extras.clone(), options: options.clone(), tokens: (0, 0) });
            }
            plan(&model, &prepared.entry.id, conv, sampling, options).await?
        }
    };
    let stream = model.stream_observed(request, extras);
    state.counters.in_flight.fetch_add(1, Ordering::Relaxed);
    let mut gen = Generation {
        prepared,
        ticket: Some(ticket),
        stream: Some(stream),
        pending: None,
        state: state.clone(),
        finished: false,
        prompt: None,
        reader,
        queued: VecDeque::new(),
        reply: None,
        logprobs: Vec::new(),
        agent,
    };
    // Wait for the first event before any response is sent: a request the plugin refuses
    // (a bad grammar, a prompt too long) then gets its real status instead of a 200 stream
    // that carries an error.
    match gen.next().await {
        Some(StreamEvent::Error(e)) => Err(e.into()),
        first => {
            gen.pending = first;
            Ok(gen)
        }
    }
}

impl Generation {
    /// The next piece, the final completion, or an error (the prompt report is kept, see
    /// [`Self::cached_tokens`]).
    ///
    /// With tools, pieces carry only the text meant for the user (a tool call's markup is
    /// held back), and at the end [`Self::reply`] has the calls; a call that is not valid
    /// ends the stream with an error instead.
    pub(crate) async fn next(&mut self) -> Option<StreamEvent> {
        if let Some(first) = self.pending.take() {
            return Some(first);
        }
        if let Some(event) = self.queued.pop_front() {
            self.settle(&event);
            return Some(event);
        }
        let event = loop {
            let event = match self.stream.as_mut() {
                Some(s) => s.next().await,
                None => None,
            };
            match event {
                Some(StreamEvent::Prompt { tokens, cached }) => self.prompt = Some((tokens, cached)),
                Some(StreamEvent::Logprobs(l)) => self.logprobs.push(l),
                Some(StreamEvent::Piece(p)) => match self.reader.as_mut() {
                    None => break Some(StreamEvent::Piece(p)),
                    Some(r) => {
                        let shown = r.push(&p);
                        if !shown.is_empty() {
                            break Some(StreamEvent::Piece(shown));
                        }
                    }
                },
                Some(StreamEvent::Done(mut done)) if self.reader.is_some() => {
                    let reader = self.reader.take().expect("checked");
                    let truncated = done.finish_reason != rustai_core::abi::FinishReason::Eos;
                    let reply = match reader.finish(done.text.as_str(), truncated) {
                        Ok(reply) => reply,
                        Err(why) => break Some(StreamEvent::Error(rustai_core::Error::BadToolCall(why))),
                    };
                    if self.agent.is_some() && done.finish_reason != rustai_core::abi::FinishReason::Cancelled {
                        match self.next_step(&reply, &done).await {
                            Ok(true) => continue,
                            Ok(false) => {}
                            Err(e) => break Some(StreamEvent::Error(e)),
                        }
                    }
                    self.count_earlier_steps(&mut done);
                    self.reply = Some(reply);
                    let rest = reader.unshown().to_owned();
                    if rest.is_empty() {
                        break Some(StreamEvent::Done(done));
                    }
                    self.queued.push_back(StreamEvent::Done(done));
                    break Some(StreamEvent::Piece(rest));
                }
                // The tool loop's last step (no tools offered): the earlier steps' tokens count.
                Some(StreamEvent::Done(mut done)) if self.agent.is_some() => {
                    self.count_earlier_steps(&mut done);
                    break Some(StreamEvent::Done(done));
                }
                other => break other,
            }
        };
        if let Some(e) = &event {
            self.settle(e);
        }
        event
    }

    /// Add the tokens of the tool loop's earlier steps to the last step's completion.
    fn count_earlier_steps(&self, done: &mut Completion) {
        let (tokens_in, tokens_out) = self.agent.as_ref().map_or((0, 0), |a| a.tokens);
        done.tokens_in += tokens_in;
        done.tokens_out += tokens_out;
    }

    /// After a step of the tool loop: run the reply's plugin-tool calls and start the next
    /// step (`true`), or report that `reply` is the answer (`false`).
    async fn next_step(&mut self, reply: &Reply, done: &Completion) -> Result<bool, rustai_core::Error> {
        let Some(mut run) = self.agent.take() else { return Ok(false) };
        let engine = self.state.engine.clone();
        let timeout = self.state.config.tool_timeout;
        let reply = reply.clone();
        let (run_back, go_on) = tokio::task::spawn_blocking(move || {
            let go_on = run.agent.after(&reply, &mut run.conv.turns, |call| engine.run_tool_call(call, timeout));
            (run, go_on)
        })
        .await
        .map_err(|e| rustai_core::Error::InvalidChat(format!("the tool loop failed: {e}")))?;
        let mut run = run_back;
        if !go_on {
            self.agent = Some(run);
            return Ok(false);
        }
        run.tokens.0 += done.tokens_in;
        run.tokens.1 += done.tokens_out;
        let mut conv = run.conv.clone();
        conv.tools = run.agent.tool_set();
        let model = std::sync::Arc::clone(self.prepared.lease.model());
        let id = self.prepared.entry.id.clone();
        let (sampling, extras, options) = (run.sampling.clone(), run.extras.clone(), run.options.clone());
        self.agent = Some(run);
        let planned = tokio::task::spawn_blocking(move || rustai_core::chat::plan(&model, &id, &conv, sampling, options))
            .await
            .map_err(|e| rustai_core::Error::InvalidChat(format!("the tool loop failed: {e}")))??;
        self.reader = planned.reader;
        self.stream = Some(self.prepared.lease.model().stream_observed(planned.request, extras));
        Ok(true)
    }

    /// The plugin tool calls the server ran (server-side tool execution), as JSON.
    pub(crate) fn executed_calls(&self) -> Option<Vec<serde_json::Value>> {
        let run = self.agent.as_ref()?;
        Some(
            run.agent
                .executed
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "id": e.call.id, "name": e.call.name, "arguments": e.call.arguments,
                        "plugin": e.plugin, "result": e.content, "is_error": e.is_error,
                    })
                })
                .collect(),
        )
    }

    /// Record the end when `event` is one.
    fn settle(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::Done(done) => self.finish(Ok(done)),
            StreamEvent::Error(e) => self.finish(Err(e)),
            _ => {}
        }
    }

    fn finish(&mut self, outcome: Result<&Completion, &rustai_core::Error>) {
        if !self.finished {
            self.finished = true;
            self.state.engine.record(&self.prepared, outcome);
            self.state.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            if outcome.is_ok_and(|d| d.finish_reason == rustai_core::abi::FinishReason::Cancelled) {
                self.state.counters.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The reply read from the output, once the generation is done (requests with tools).
    pub(crate) fn reply(&self) -> Option<&Reply> {
        self.reply.as_ref()
    }

    /// The log-probabilities received so far (requests that asked).
    pub(crate) fn logprobs(&self) -> &[Logprobs] {
        &self.logprobs
    }

    /// Prompt tokens reused from the plugin's cache (0 when it did not say).
    pub(crate) fn cached_tokens(&self) -> u32 {
        self.prompt.map_or(0, |(_, cached)| cached)
    }

    /// The server state this generation belongs to.
    pub(crate) fn state(&self) -> &AppState {
        &self.state
    }

    /// The adjustments the adaptive rules made, as JSON.
    pub(crate) fn metadata(&self) -> serde_json::Value {
        let mut m = metadata(&self.prepared.entry.id, self.prepared.plugin_id(), &self.prepared.adjustments);
        if let Some(calls) = self.executed_calls() {
            m["tool_calls"] = calls.into();
            m["steps"] = self.agent.as_ref().map_or(0, |a| a.agent.steps()).into();
        }
        if !self.prepared.fell_back_from.is_empty() {
            m["fell_back_from"] = self
                .prepared
                .fell_back_from
                .iter()
                .map(|(model, why)| serde_json::json!({ "model": model, "reason": why }))
                .collect();
        }
        m
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if !self.finished {
            // The client went away: cancel the plugin's generation, and keep the queue place
            // until the plugin has stopped, so the next queued request does not overlap it.
            self.finished = true;
            self.state.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.state.counters.cancelled.fetch_add(1, Ordering::Relaxed);
            tracing::info!(model = %self.prepared.entry.id, "client disconnected; generation cancelled");
            if let (Some(mut stream), Ok(rt)) = (self.stream.take(), tokio::runtime::Handle::try_current()) {
                stream.cancel();
                let ticket = self.ticket.take();
                rt.spawn(async move {
                    while let Some(event) = stream.next().await {
                        if !matches!(event, StreamEvent::Piece(_) | StreamEvent::Prompt { .. } | StreamEvent::Logprobs(_)) {
                            break;
                        }
                    }
                    drop(ticket);
                });
            }
        }
    }
}

/// The `rustai` object added to final responses: which model and plugin served, what was adapted.
pub(crate) fn metadata(model: &str, plugin: &str, adjustments: &[Adjustment]) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "plugin": plugin,
        "adjustments": adjustments.iter().map(|a| serde_json::json!({
            "field": a.field, "from": a.from, "to": a.to, "reason": a.reason,
        })).collect::<Vec<_>>(),
    })
}
