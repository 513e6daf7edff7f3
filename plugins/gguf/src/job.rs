//! A job: what the caller hands the scheduler ([`Job`]), what the scheduler sends back
//! ([`Event`]), and the job's generation state while it holds a slot ([`Generation`]: the
//! sampler, UTF-8 assembly, stop sequences, counters, timings, and how it finishes).
//!
//! The scheduler ([`crate::scheduler`]) uses this module; the caller's side
//! ([`crate::generate`]) uses both.

use std::{
    sync::{atomic::AtomicBool, mpsc::Sender, Arc},
    time::{Duration, Instant},
};

use llama_cpp_2::token::LlamaToken;
use rustai_plugin::{Completion, FinishReason, PluginError, RString, SamplingExtras, SamplingParams, Timings, TokenLogprob};

use crate::{
    model::LoadedModel,
    sampling::Sampler,
    stop::{StopMatcher, Utf8Stream},
};

/// A request handed to the scheduler.
pub(crate) struct Job {
    pub(crate) prompt: Vec<LlamaToken>,
    pub(crate) params: SamplingParams,
    pub(crate) extras: SamplingExtras,
    /// Words that switch the grammar on (empty: it applies from the first token).
    pub(crate) triggers: Vec<String>,
    /// Report log-probabilities, with this many alternatives.
    pub(crate) logprobs: Option<u32>,
    pub(crate) events: Sender<Event>,
    pub(crate) cancel: Arc<AtomicBool>,
}

/// What the scheduler tells the waiting caller.
#[derive(Debug)]
pub(crate) enum Event {
    /// The prompt was placed: `tokens` in all, `cached` of them reused.
    Prompt { tokens: u32, cached: u32 },
    /// Text (possibly empty) and the token id (-1 for held-back text released at the end).
    Piece(String, i32),
    /// The log-probability of the token just sent, and the most likely alternatives.
    Logprobs(TokenLogprob, Vec<TokenLogprob>),
    /// The end: always the last event.
    Done(Result<Completion, PluginError>),
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
    events: Sender<Event>,
}

impl Generation {
    /// State for `job`'s parameters (validated; the grammar parsed).
    pub(crate) fn new(model: &LoadedModel, job: &Job) -> Result<Self, PluginError> {
        Ok(Self {
            sampler: Sampler::new(model, &job.params, &job.extras, &job.triggers, job.logprobs)?,
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
        let mut delivered = self.events.send(Event::Piece(step.release.to_owned(), token.0)).is_ok();
        if let Some((logprob, top)) = self.sampler.take_logprobs() {
            let text = |t: i32| {
                let mut bytes = Vec::new();
                model.model.vocab().token_to_piece_into(LlamaToken(t), &mut bytes, false, None);
                RString::from(String::from_utf8_lossy(&bytes).into_owned())
            };
            let chosen = TokenLogprob { token: token.0, text: RString::from(String::from_utf8_lossy(&self.piece).into_owned()), logprob };
            let top = top.into_iter().map(|(t, l)| TokenLogprob { token: t, text: text(t), logprob: l }).collect();
            delivered &= self.events.send(Event::Logprobs(chosen, top)).is_ok();
        }
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
