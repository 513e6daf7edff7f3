//! The text-generation path both APIs share: resolve and lease the model
//! through the engine (off the async runtime: loading blocks), stream the
//! reply, record metrics when it ends, count it as cancelled when the client
//! goes away first (dropping the stream cancels the generation in the plugin).

use std::sync::atomic::Ordering;

use rustai_core::{
    abi::{ChatMessage, ChatRequest, Completion, GenerateRequest, SamplingExtras, SamplingParams},
    engine::adaptive::Adjustment,
    Engine, LoadOptions, Prepared, StreamEvent, TokenStream,
};

use crate::{error::ApiResult, state::AppState};

/// What to generate.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    /// Raw text, no template.
    Prompt(String),
    /// Messages, through the model's chat template.
    Chat(Vec<ChatMessage>),
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
    let stream = match job.input {
        Input::Prompt(p) => model.stream_generate_ext(GenerateRequest::new(p, sampling), extras),
        Input::Chat(messages) => model.stream_chat_ext(ChatRequest { messages: messages.into(), params: sampling }, extras),
    };
    state.counters.in_flight.fetch_add(1, Ordering::Relaxed);
    let mut gen = Generation { prepared, ticket: Some(ticket), stream: Some(stream), pending: None, state: state.clone(), finished: false, prompt: None };
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
    pub(crate) async fn next(&mut self) -> Option<StreamEvent> {
        if let Some(first) = self.pending.take() {
            return Some(first);
        }
        let event = loop {
            let event = match self.stream.as_mut() {
                Some(s) => s.next().await,
                None => None,
            };
            match event {
                Some(StreamEvent::Prompt { tokens, cached }) => self.prompt = Some((tokens, cached)),
                other => break other,
            }
        };
        match &event {
            Some(StreamEvent::Done(done)) => self.finish(Ok(done)),
            Some(StreamEvent::Error(e)) => self.finish(Err(e)),
            _ => {}
        }
        event
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

    /// Run to the end and return the whole text, and the prompt tokens reused from the cache.
    pub(crate) async fn collect(mut self) -> ApiResult<(Completion, u32)> {
        while let Some(event) = self.next().await {
            match event {
                StreamEvent::Piece(_) | StreamEvent::Prompt { .. } => {}
                StreamEvent::Done(done) => return Ok((done, self.cached_tokens())),
                StreamEvent::Error(e) => return Err(e.into()),
            }
        }
        Err(crate::error::ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "generation ended without a result"))
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
                        if !matches!(event, StreamEvent::Piece(_) | StreamEvent::Prompt { .. }) {
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
