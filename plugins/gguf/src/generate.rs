//! One request's generation, in two halves.
//!
//! - [`run`], on the caller's thread: checks the prompt, hands a [`Job`] to the model's
//!   [`Scheduler`], then relays [`Event`]s to the host's sink and turns the host's
//!   cancellation into the job's cancel flag. This keeps the ABI call blocking with a sink,
//!   as before, while the decoding happens on the scheduler thread.
//! - [`Generation`], on the scheduler thread: the per-request state around sampling
//!   (sampler, UTF-8 assembly, stop sequences, counters, timings) and how it finishes.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::{self, RecvTimeoutError},
        Arc,
    },
    time::{Duration, Instant},
};

use llama_cpp_2::token::LlamaToken;
use rustai_abi::{Completion, FinishReason, PluginError, RString, SamplingExtras, SamplingParams, Timings, TokenSinkMut};

use crate::{
    model::LoadedModel,
    sampling::Sampler,
    scheduler::{Job, Scheduler},
    stop::{StopMatcher, Utf8Stream},
};

/// What the scheduler tells the waiting caller.
#[derive(Debug)]
pub(crate) enum Event {
    /// The prompt was placed: `tokens` in all, `cached` of them reused.
    Prompt { tokens: u32, cached: u32 },
    /// Text (possibly empty) and the token id (-1 for held-back text released at the end).
    Piece(String, i32),
    /// The end: always the last event.
    Done(Result<Completion, PluginError>),
}

/// How often the caller polls the host's cancellation while no event arrives.
const POLL: Duration = Duration::from_millis(20);

/// Evaluate `prompt` and generate on `scheduler`'s model, streaming to `sink`.
pub(crate) fn run(
    model: &LoadedModel,
    scheduler: &Scheduler,
    prompt: Vec<LlamaToken>,
    params: &SamplingParams,
    extras: &SamplingExtras,
    mut sink: TokenSinkMut<'_>,
) -> Result<Completion, PluginError> {
    if prompt.is_empty() {
        return Err(PluginError::invalid_input("the prompt is empty"));
    }
    let n_ctx = model.info.context_length as usize;
    if prompt.len() >= n_ctx {
        return Err(PluginError::context_length_exceeded(prompt.len(), model.info.context_length));
    }
    let (events, rx) = mpsc::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    scheduler.submit(Job { prompt, params: params.clone(), extras: extras.clone(), events, cancel: Arc::clone(&cancel) })?;
    // What the host was given: after a cancel, the scheduler may produce a token or two before
    // it sees the flag; those were never delivered and are not part of the completion.
    let mut delivered = String::new();
    loop {
        match rx.recv_timeout(POLL) {
            Ok(Event::Prompt { tokens, cached }) => sink.on_prompt(tokens, cached),
            Ok(Event::Piece(text, id)) => {
                if !cancel.load(Ordering::Relaxed) {
                    delivered.push_str(&text);
                    if !sink.on_token(text.as_str().into(), id) {
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
            }
            Ok(Event::Done(Ok(mut done))) if cancel.load(Ordering::Relaxed) => {
                // Cancelled here, whatever the scheduler reached before it saw the flag (an end
                // token, a stop sequence) with pieces the host never got.
                done.text = RString::from(delivered);
                done.finish_reason = FinishReason::Cancelled;
                return Ok(done);
            }
            Ok(Event::Done(result)) => return result,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(PluginError::internal("the model's scheduler stopped during the request"))
            }
        }
        if sink.is_cancelled() {
            cancel.store(true, Ordering::Relaxed);
        }
    }
}

/// Whether `token` ends generation (an end-of-generation token, unless the request ignores them).
pub(crate) fn ends(model: &LoadedModel, token: LlamaToken, ignore_eos: bool) -> bool {
    model.model.vocab().is_eog(token) && !ignore_eos
}

/// A request's generation state while it holds a slot.
pub(crate) struct Generation {
    pub(crate) sampler: Sampler,
    max_tokens: u32,
    ignore_eos: bool,
    utf8: Utf8Stream,
    stops: StopMatcher,
    piece: Vec<u8>,
    tokens_in: u32,
    tokens_out: u32,
    started: Instant,
    prompt_done: Option<Instant>,
    evaluated: u32,
    events: mpsc::Sender<Event>,
}

impl Generation {
    /// State for `job`'s parameters (validated; the grammar parsed).
    pub(crate) fn new(model: &LoadedModel, job: &Job) -> Result<Self, PluginError> {
        Ok(Self {
            sampler: Sampler::new(model, &job.params, &job.extras)?,
            max_tokens: job.params.max_tokens,
            ignore_eos: job.params.ignore_eos,
            utf8: Utf8Stream::default(),
            stops: StopMatcher::new(job.params.stop.iter().map(|s| s.to_string())),
            piece: Vec::with_capacity(32),
            tokens_in: u32::try_from(job.prompt.len()).unwrap_or(u32::MAX),
            tokens_out: 0,
            started: Instant::now(),
            prompt_done: None,
            evaluated: 0,
            events: job.events.clone(),
        })
    }

    /// The prompt was placed with `cached` tokens reused.
    pub(crate) fn placed(&mut self, cached: usize) {
        let cached = u32::try_from(cached).unwrap_or(u32::MAX);
        self.evaluated = self.tokens_in.saturating_sub(cached);
        let _ = self.events.send(Event::Prompt { tokens: self.tokens_in, cached });
    }

    /// The whole prompt is in the cache; generation starts.
    pub(crate) fn prompt_evaluated(&mut self) {
        self.prompt_done.get_or_insert_with(Instant::now);
    }


    /// A sampled token; `Some` when the generation ends with it (an end token is not emitted).
    pub(crate) fn push(&mut self, model: &LoadedModel, token: LlamaToken) -> Option<FinishReason> {
        if ends(model, token, self.ignore_eos) {
            return Some(FinishReason::Eos);
        }
        self.tokens_out += 1;
        self.piece.clear();
        model.model.vocab().token_to_piece_into(token, &mut self.piece, false, None);
        let text = self.utf8.push(&self.piece);
        let step = self.stops.push(&text);
        let stopped = step.stopped;
        // The receiver is gone only when the caller gave up: same as a cancel.
        let delivered = self.events.send(Event::Piece(step.release.to_owned(), token.0)).is_ok();
        if stopped {
            Some(FinishReason::Stop)
        } else if !delivered {
            Some(FinishReason::Cancelled)
        } else if self.max_tokens > 0 && self.tokens_out >= self.max_tokens {
            Some(FinishReason::Length)
        } else {
            None
        }
    }

    /// End with `reason`: release held-back text (unless cancelled) and send the completion.
    pub(crate) fn finish(mut self, reason: FinishReason) {
        let mut finish = reason;
        if finish != FinishReason::Stop {
            // Release what was held back: an incomplete character or a partial stop sequence.
            let rest = self.utf8.finish();
            let step = self.stops.push(&rest);
            let (mut tail, stopped) = (step.release.to_owned(), step.stopped);
            if stopped {
                finish = FinishReason::Stop;
            } else {
                tail.push_str(self.stops.flush());
            }
            if !tail.is_empty() && finish != FinishReason::Cancelled {
                let _ = self.events.send(Event::Piece(tail, -1));
            }
        }
        let now = Instant::now();
        let prompt_done = self.prompt_done.unwrap_or(now);
        let (prompt_eval, generation) = (prompt_done - self.started, now - prompt_done);
        let per_s = |n: u32, d: Duration| if d.is_zero() { 0.0 } else { f64::from(n) / d.as_secs_f64() };
        let completion = Completion {
            text: RString::from(self.stops.text()),
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            finish_reason: finish,
            timings: Timings {
                prompt_eval_ms: prompt_eval.as_secs_f64() * 1e3,
                generation_ms: generation.as_secs_f64() * 1e3,
                prompt_tokens_per_s: per_s(self.evaluated, prompt_eval),
                tokens_per_s: per_s(self.tokens_out, generation),
            },
        };
        let _ = self.events.send(Event::Done(Ok(completion)));
    }

    /// End with an error.
    pub(crate) fn fail(self, error: PluginError) {
        let _ = self.events.send(Event::Done(Err(error)));
    }
}
